"""A typical PFO 1 answer, kept as a third-party target for the harness (not part of the reference).

It does what the assignment asks and what most answers do: localhost:5000, one thread per
client, a new SQLite connection per message, "Mensaje recibido: <timestamp>" as the answer,
and raw ``recv(1024)`` with no framing, so two messages sent back to back, or one longer than
1024 bytes, are stored wrongly. The harness's pipelined and large-message scenarios show it.
"""

import socket
import sqlite3
import sys
import threading
from datetime import datetime

HOST = "127.0.0.1"
PORT = 5000
DB = "chat.db"
lock = threading.Lock()


def inicializar_db():
    """Crea la tabla de mensajes si no existe."""
    with sqlite3.connect(DB) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " contenido TEXT NOT NULL, fecha_envio TEXT NOT NULL, ip_cliente TEXT NOT NULL)"
        )


def guardar_mensaje(contenido, ip):
    """Guarda un mensaje y devuelve su fecha de envío."""
    fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    with lock:
        conn = sqlite3.connect(DB)
        conn.execute(
            "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)", (contenido, fecha, ip)
        )
        conn.commit()
        conn.close()
    return fecha


def manejar_cliente(conn, addr):
    """Recibe mensajes de un cliente hasta que se desconecta o escribe 'éxito'."""
    with conn:
        while True:
            try:
                data = conn.recv(1024)
            except OSError:
                break
            if not data:
                break
            mensaje = data.decode("utf-8", errors="replace")
            if mensaje.strip().lower() == "éxito":
                break
            fecha = guardar_mensaje(mensaje, addr[0])
            try:
                conn.sendall(f"Mensaje recibido: {fecha}".encode())
            except OSError:
                break


def main():
    """Configura el socket y acepta clientes."""
    inicializar_db()
    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    servidor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        servidor.bind((HOST, PORT))
    except OSError as e:
        print(f"Error: el puerto {PORT} ya está en uso ({e})")
        sys.exit(1)
    servidor.listen(128)
    print(f"Servidor escuchando en {HOST}:{PORT}", flush=True)
    try:
        while True:
            conn, addr = servidor.accept()
            threading.Thread(target=manejar_cliente, args=(conn, addr), daemon=True).start()
    except KeyboardInterrupt:
        print("Servidor detenido")
    finally:
        servidor.close()


if __name__ == "__main__":
    main()
