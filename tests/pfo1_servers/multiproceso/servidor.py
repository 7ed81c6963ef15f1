"""PFO 1 - Servidor de chat con multiprocessing: un Process por cliente.

El proceso principal acepta conexiones y atiende a cada cliente en un multiprocessing.Process
(daemon: si el servidor se cierra, multiprocessing los termina). Cada proceso abre su propia conexión
SQLite. Los procesos que terminan los recoge multiprocessing al crear el siguiente (o con
active_children()). Ctrl+C y SIGTERM cierran el servidor.
"""

import multiprocessing
import signal
import socket
import sqlite3
import sys
from datetime import datetime

HOST = "127.0.0.1"
PORT = 5000
DB = "chat.db"
SALIDA = "éxito"


def atender(conn, addr):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # el Ctrl+C es para el servidor
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    db = sqlite3.connect(DB, timeout=30)
    try:
        with conn, conn.makefile("rb") as entrada:
            for linea in entrada:
                if not linea.endswith(b"\n"):
                    break  # el cliente se fue a mitad de una línea: no es un mensaje
                try:
                    texto = linea.rstrip(b"\r\n").decode("utf-8")
                except UnicodeDecodeError:
                    conn.sendall("Error: el mensaje no es UTF-8 válido\n".encode())
                    continue
                if texto.strip() == SALIDA:
                    conn.sendall("Adiós\n".encode())
                    break
                if not texto.strip():
                    conn.sendall("Error: mensaje vacío\n".encode())
                    continue
                fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
                try:
                    with db:
                        db.execute(
                            "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
                            (texto, fecha, addr[0]),
                        )
                except sqlite3.Error as e:
                    print(f"Error: no se pudo guardar el mensaje: {e}", flush=True)
                    conn.sendall("Error: no se pudo guardar el mensaje\n".encode())
                    continue
                conn.sendall(f"Mensaje recibido: {fecha}\n".encode())
    except OSError:
        pass  # el cliente cortó la conexión
    finally:
        db.close()


def main():
    try:
        db = sqlite3.connect(DB)
        db.execute(
            "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " contenido TEXT NOT NULL, fecha_envio TEXT NOT NULL, ip_cliente TEXT NOT NULL)"
        )
        db.commit()
        db.close()
    except sqlite3.Error as e:
        print(f"Error: no se puede abrir la base {DB}: {e}", flush=True)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # sale por el finally, como con Ctrl+C
    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    servidor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        servidor.bind((HOST, PORT))
    except OSError as e:
        print(f"Error: el puerto {PORT} ya está en uso ({e.strerror})", flush=True)
        return 1
    servidor.listen(128)
    print(f"Servidor escuchando en {HOST}:{PORT}", flush=True)
    try:
        while True:
            conn, addr = servidor.accept()
            p = multiprocessing.Process(target=atender, args=(conn, addr), daemon=True)
            # Ctrl+C o SIGTERM entre el fork y el registro del hijo lo dejarían fuera de active_children():
            # esperan a que start() termine (el hijo las desbloquea cuando tiene sus manejadores).
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            try:
                p.start()
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
            conn.close()  # el hijo tiene su copia
    except KeyboardInterrupt:
        pass
    finally:
        servidor.close()
        for p in multiprocessing.active_children():
            p.terminate()
            p.join(2)
    print("Servidor detenido", flush=True)
    return 0


if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    sys.exit(main())
