"""PFO 1 - Servidor de chat con difusión: cada mensaje se guarda en SQLite, se confirma al emisor
y se reenvía a los demás clientes conectados."""

import signal
import socket
import sqlite3
import sys
import threading
from datetime import datetime

HOST = "0.0.0.0"
PUERTO = 5000

clientes = {}  # socket -> ip
clientes_lock = threading.Lock()
db_lock = threading.Lock()


def conectar_db():
    con = sqlite3.connect("chat.db", check_same_thread=False)
    con.execute(
        "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT, "
        "fecha_envio TEXT, ip_cliente TEXT)"
    )
    con.commit()
    return con


db = conectar_db()


def guardar(contenido, ip):
    fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    with db_lock:
        db.execute("INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)", (contenido, fecha, ip))
        db.commit()
    return fecha


def difundir(texto, origen):
    with clientes_lock:
        destinos = [c for c in clientes if c is not origen]
    for c in destinos:
        try:
            c.sendall(texto.encode("utf-8"))
        except OSError:
            pass


def atender(conn, direccion):
    ip = direccion[0]
    with clientes_lock:
        clientes[conn] = ip
    buffer = b""
    try:
        while True:
            datos = conn.recv(1024)
            if not datos:
                break
            buffer += datos
            while b"\n" in buffer:
                linea, buffer = buffer.split(b"\n", 1)
                mensaje = linea.decode("utf-8", errors="replace").strip()
                if not mensaje:
                    continue
                if mensaje == "éxito":
                    conn.sendall("Adiós\n".encode())
                    return
                try:
                    fecha = guardar(mensaje, ip)
                except sqlite3.Error as e:
                    print(f"Error al guardar: {e}")
                    conn.sendall(f"Error: no se pudo guardar ({e})\n".encode())
                    continue
                conn.sendall(f"Mensaje recibido: {fecha}\n".encode())
                difundir(f"[{ip}] {mensaje}\n", conn)
    except OSError as e:
        print(f"Conexión con {ip} perdida: {e}")
    finally:
        with clientes_lock:
            clientes.pop(conn, None)
        conn.close()


def main():
    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    servidor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        servidor.bind((HOST, PUERTO))
    except OSError as e:
        print(f"Error: no se puede usar el puerto {PUERTO}: {e}")
        sys.exit(1)
    servidor.listen(100)
    servidor.settimeout(1.0)
    corriendo = threading.Event()
    corriendo.set()
    signal.signal(signal.SIGTERM, lambda *_: corriendo.clear())
    print(f"Servidor escuchando en el puerto {PUERTO}")
    try:
        while corriendo.is_set():
            try:
                conn, direccion = servidor.accept()
            except socket.timeout:
                continue
            threading.Thread(target=atender, args=(conn, direccion), daemon=True).start()
    except KeyboardInterrupt:
        pass
    finally:
        print("Servidor detenido")
        servidor.close()
        db.close()


if __name__ == "__main__":
    main()
