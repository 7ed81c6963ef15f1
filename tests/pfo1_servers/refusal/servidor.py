# PFO 1 - Servidor de chat
# Protocolo: cada mensaje es una línea de texto terminada en "\n".
# Respuestas: "Mensaje recibido: <fecha>" o "Error: <motivo>".

import socket
import sqlite3
import sys
import threading
from datetime import datetime

HOST = "127.0.0.1"
PORT = 5000
DB_FILE = "messages.db"
MAX_LARGO = 500   # caracteres como máximo por mensaje

lock = threading.Lock()


def init_db():
    """Crea la tabla (los nombres están en inglés como en el resto del proyecto)."""
    con = sqlite3.connect(DB_FILE)
    con.execute(
        "CREATE TABLE IF NOT EXISTS messages ("
        "id INTEGER PRIMARY KEY AUTOINCREMENT, content TEXT NOT NULL, "
        "sent_at TEXT NOT NULL, client_ip TEXT NOT NULL)"
    )
    con.commit()
    con.close()


def guardar(contenido, ip):
    fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    with lock:
        con = sqlite3.connect(DB_FILE)
        try:
            con.execute(
                "INSERT INTO messages (content, sent_at, client_ip) VALUES (?, ?, ?)",
                (contenido, fecha, ip),
            )
            con.commit()
        finally:
            con.close()
    return fecha


def validar(mensaje):
    """Devuelve el motivo por el que se rechaza el mensaje, o None si está bien."""
    if not mensaje.strip():
        return "mensaje vacío"
    if len(mensaje) > MAX_LARGO:
        return f"el mensaje supera los {MAX_LARGO} caracteres"
    return None


def procesar_linea(conn, linea, ip):
    """Procesa un mensaje completo. Devuelve False si el cliente se despide."""
    mensaje = linea.decode("utf-8", errors="replace").rstrip("\r")
    if mensaje == "éxito":
        conn.sendall("Hasta luego\n".encode("utf-8"))
        return False
    motivo = validar(mensaje)
    if motivo:
        conn.sendall(f"Error: {motivo}\n".encode("utf-8"))
        return True
    try:
        fecha = guardar(mensaje, ip)
    except sqlite3.Error as e:
        print("Error en la base de datos:", e)
        conn.sendall("Error: no se pudo guardar el mensaje\n".encode("utf-8"))
        return True
    conn.sendall(f"Mensaje recibido: {fecha}\n".encode("utf-8"))
    return True


def atender(conn, addr):
    buffer = b""
    seguir = True
    try:
        while seguir:
            datos = conn.recv(1024)
            if not datos:
                break
            buffer += datos
            # puede venir más de una línea en un mismo recv, o media línea
            while seguir and b"\n" in buffer:
                linea, buffer = buffer.split(b"\n", 1)
                seguir = procesar_linea(conn, linea, addr[0])
    except OSError as e:
        print(f"Conexión con {addr} terminada: {e}")
    finally:
        conn.close()


def main():
    try:
        init_db()
    except sqlite3.Error as e:
        print("Error: no se pudo abrir la base de datos:", e)
        sys.exit(1)

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        srv.bind((HOST, PORT))
    except OSError:
        print(f"Error: el puerto {PORT} ya está en uso")
        sys.exit(1)
    srv.listen(50)
    print(f"Escuchando en {HOST}:{PORT}")

    try:
        while True:
            conn, addr = srv.accept()
            threading.Thread(target=atender, args=(conn, addr), daemon=True).start()
    except KeyboardInterrupt:
        print("Servidor detenido")
    finally:
        srv.close()


if __name__ == "__main__":
    main()
