# Servidor de chat - PFO 1
# Un hilo por cliente; Enter en la consola detiene el servidor.

import socket
import sqlite3
import threading
from datetime import datetime

HOST = "127.0.0.1"
PORT = 5000
DB = "chat.db"

lock = threading.Lock()


def init_db():
    """Crea la tabla si no existe y devuelve la conexión compartida."""
    conn = sqlite3.connect(DB, check_same_thread=False)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS mensajes ("
        "id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT, fecha_envio TEXT, ip_cliente TEXT)"
    )
    conn.commit()
    return conn


def guardar(db, texto, ip):
    fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    with lock:
        db.execute("INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)", (texto, fecha, ip))
        db.commit()
    return fecha


def manejar_cliente(sock, addr, db):
    print(f"[+] Conectado {addr}")
    buffer = b""
    with sock:
        while True:
            try:
                data = sock.recv(1024)
            except OSError as e:
                print(f"Error: se perdió la conexión con {addr}: {e}")
                break
            if not data:
                break
            buffer += data
            while b"\n" in buffer:
                linea, buffer = buffer.split(b"\n", 1)
                try:
                    texto = linea.decode("utf-8").strip()
                except UnicodeDecodeError:
                    sock.sendall("Error: el mensaje no es texto UTF-8\n".encode())
                    continue
                if texto == "éxito":
                    sock.sendall("Adiós\n".encode())
                    print(f"[-] {addr} salió")
                    return
                if not texto:
                    sock.sendall("Error: mensaje vacío\n".encode())
                    continue
                try:
                    fecha = guardar(db, texto, addr[0])
                except sqlite3.Error as e:
                    print(f"Error al guardar: {e}")
                    sock.sendall("Error: no se pudo guardar el mensaje\n".encode())
                    continue
                sock.sendall(f"Mensaje recibido: {fecha}\n".encode())
    print(f"[-] Desconectado {addr}")


def aceptar(servidor, db):
    while True:
        try:
            sock, addr = servidor.accept()
        except OSError:
            break  # el socket se cerró: el servidor se está deteniendo
        threading.Thread(target=manejar_cliente, args=(sock, addr, db), daemon=True).start()


def main():
    db = init_db()
    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        servidor.bind((HOST, PORT))
    except OSError:
        print(f"Error: no se pudo usar el puerto {PORT} (¿ya hay un servidor corriendo?)")
        return
    servidor.listen()
    print(f"Servidor escuchando en {HOST}:{PORT}. Presione Enter para detenerlo.")
    threading.Thread(target=aceptar, args=(servidor, db), daemon=True).start()
    try:
        input()
    except (KeyboardInterrupt, EOFError):
        pass
    print("Deteniendo el servidor...")
    servidor.close()
    with lock:
        db.close()


if __name__ == "__main__":
    main()
