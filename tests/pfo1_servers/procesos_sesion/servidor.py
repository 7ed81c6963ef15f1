"""PFO 1 - Servidor de chat con un proceso por cliente (fork), cada hijo en una sesión propia.

El proceso principal acepta conexiones y crea un proceso hijo por cliente con os.fork(); cada hijo
se separa de la terminal con os.setsid() (así un Ctrl+C no corta a los clientes que se están
atendiendo), abre su propia conexión SQLite y atiende líneas terminadas en "\\n". Con SIGCHLD
ignorada el sistema recoge solo a los hijos que terminan (no quedan zombis).
"""

import os
import signal
import socket
import sqlite3
import sys
from datetime import datetime

HOST = "127.0.0.1"
PORT = 5000
DB = "chat.db"
SALIDA = "éxito"
MAX_LINEA = 65536


def crear_tabla():
    db = sqlite3.connect(DB, timeout=30)
    db.execute(
        "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " contenido TEXT NOT NULL, fecha_envio TEXT NOT NULL, ip_cliente TEXT NOT NULL)"
    )
    db.commit()
    db.close()


def responder(conn, texto):
    conn.sendall((texto + "\n").encode("utf-8"))


def atender(conn, addr):
    """Lo que hace cada hijo: atender a un cliente hasta que se vaya (o hasta el Ctrl+C)."""
    db = sqlite3.connect(DB, timeout=30)
    try:
        with conn.makefile("rb") as entrada:
            while True:
                linea = entrada.readline(MAX_LINEA + 1)
                if not linea.endswith(b"\n"):
                    if len(linea) <= MAX_LINEA:
                        return
                    responder(conn, "Error: mensaje demasiado largo")
                    while linea and not linea.endswith(b"\n"):
                        linea = entrada.readline(MAX_LINEA + 1)
                    continue
                try:
                    texto = linea.rstrip(b"\n").removesuffix(b"\r").decode("utf-8")
                except UnicodeDecodeError:
                    responder(conn, "Error: el mensaje no es UTF-8 válido")
                    continue
                if texto.strip() == SALIDA:
                    responder(conn, "Adiós")
                    return
                if not texto.strip():
                    responder(conn, "Error: mensaje vacío")
                    continue
                fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
                try:
                    with db:
                        db.execute(
                            "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
                            (texto, fecha, addr[0]),
                        )
                except sqlite3.Error as e:
                    print(f"Error: no se pudo guardar un mensaje: {e}", flush=True)
                    responder(conn, "Error: no se pudo guardar el mensaje")
                    continue
                responder(conn, f"Mensaje recibido: {fecha}")
    except (OSError, KeyboardInterrupt):  # el cliente se fue, o Ctrl+C
        pass
    finally:
        db.close()
        conn.close()


def main():
    try:
        crear_tabla()
    except sqlite3.Error as e:
        print(f"Error: no se puede abrir la base {DB}: {e}", flush=True)
        return 1
    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    servidor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        servidor.bind((HOST, PORT))
    except OSError as e:
        print(f"Error: el puerto {PORT} ya está en uso ({e.strerror})", flush=True)
        servidor.close()
        return 1
    servidor.listen(128)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # los hijos que terminan no quedan zombis
    print(f"Servidor escuchando en {HOST}:{PORT}", flush=True)
    try:
        while True:
            conn, addr = servidor.accept()
            pid = os.fork()
            if pid == 0:
                servidor.close()
                os.setsid()  # el hijo sigue atendiendo aunque la terminal reciba Ctrl+C
                try:
                    atender(conn, addr)
                finally:
                    os._exit(0)
            conn.close()
    except KeyboardInterrupt:
        pass
    finally:
        servidor.close()
    print("Servidor detenido", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
