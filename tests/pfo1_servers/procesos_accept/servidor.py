"""PFO 1 - Servidor de chat con un proceso por cliente (fork), al estilo de C: recoge a los hijos en cada accept().

El padre, antes de cada accept() (que bloquea), recoge con waitpid(WNOHANG) a los hijos que terminaron:
los zombis de los últimos clientes esperan al cliente siguiente. Ctrl+C (KeyboardInterrupt) o SIGTERM
cortan el accept(); el padre avisa a los hijos con SIGTERM y los espera.
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


class Terminar(Exception):
    pass


def terminar(*_):
    raise Terminar()


def atender(conn, addr):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    db = sqlite3.connect(DB, timeout=30)
    try:
        with conn.makefile("rb") as entrada:
            for linea in entrada:
                if not linea.endswith(b"\n"):
                    return  # una línea a medias no es un mensaje
                try:
                    texto = linea.rstrip(b"\r\n").decode("utf-8")
                except UnicodeDecodeError:
                    conn.sendall("Error: el mensaje no es UTF-8 válido\n".encode())
                    continue
                if texto.strip() == SALIDA:
                    conn.sendall("Adiós\n".encode())
                    return
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
                    print(f"Error: no se pudo guardar: {e}", flush=True)
                    conn.sendall("Error: no se pudo guardar el mensaje\n".encode())
                    continue
                conn.sendall(f"Mensaje recibido: {fecha}\n".encode())
    except OSError:
        pass
    finally:
        db.close()
        conn.close()


def main():
    db = sqlite3.connect(DB)
    db.execute(
        "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " contenido TEXT NOT NULL, fecha_envio TEXT NOT NULL, ip_cliente TEXT NOT NULL)"
    )
    db.commit()
    db.close()
    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    servidor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        servidor.bind((HOST, PORT))
    except OSError as e:
        print(f"Error: el puerto {PORT} ya está en uso ({e.strerror})", flush=True)
        return 1
    servidor.listen(128)
    signal.signal(signal.SIGTERM, terminar)
    signal.signal(signal.SIGINT, terminar)
    hijos = set()
    print(f"Servidor escuchando en {HOST}:{PORT}", flush=True)
    try:
        while True:
            while hijos:  # los zombis de los clientes que se fueron
                try:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                hijos.discard(pid)
            conn, addr = servidor.accept()
            pid = os.fork()
            if pid == 0:
                servidor.close()
                try:
                    atender(conn, addr)
                finally:
                    os._exit(0)
            hijos.add(pid)
            conn.close()
    except Terminar:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        servidor.close()
        for pid in hijos:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in hijos:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    print("Servidor detenido", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
