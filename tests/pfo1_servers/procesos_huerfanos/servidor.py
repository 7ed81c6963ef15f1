"""PFO 1 - Servidor de chat con un proceso por cliente (fork), como en C, que al cerrar no espera a sus hijos.

(Como procesos/servidor.py, pero al cerrar el padre sale sin avisar a los hijos: siguen atendiendo a
sus clientes, y guardando, con el servidor ya "detenido".)

El proceso principal acepta conexiones y crea un proceso hijo por cliente con os.fork(); cada hijo
abre su propia conexión SQLite (SQLite coordina a varios procesos con sus bloqueos de archivo) y
atiende líneas terminadas en "\\n". Al cerrar (Ctrl+C o SIGTERM) el padre deja de aceptar, avisa a
los hijos con SIGTERM y los espera.
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

parar = False
hijos = set()


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
    """Lo que hace cada hijo: atender a un cliente hasta que se vaya."""
    terminar = False

    def al_terminar(*_):
        nonlocal terminar
        terminar = True
        try:
            conn.shutdown(socket.SHUT_RD)  # despierta al readline(); la respuesta en curso igual sale
        except OSError:
            pass

    signal.signal(signal.SIGTERM, al_terminar)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # el padre decide cuándo cerrar
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    db = sqlite3.connect(DB, timeout=30)
    try:
        with conn.makefile("rb") as entrada:
            while not terminar:
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
    except OSError:
        pass
    finally:
        db.close()
        conn.close()


def recoger(*_):
    """SIGCHLD: recoge a los hijos que terminaron (sin esto quedan zombis)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        hijos.discard(pid)


def main():
    global parar

    def detener(*_):
        global parar
        parar = True

    signal.signal(signal.SIGINT, detener)
    signal.signal(signal.SIGTERM, detener)
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
    servidor.settimeout(0.2)
    signal.signal(signal.SIGCHLD, recoger)
    print(f"Servidor escuchando en {HOST}:{PORT}", flush=True)
    try:
        while not parar:
            try:
                conn, addr = servidor.accept()
            except (TimeoutError, InterruptedError):
                continue
            # Las señales esperan hasta que el hijo ponga sus manejadores (si no, un SIGTERM en ese
            # instante lo tomaría el manejador del padre, y el hijo seguiría atendiendo).
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
            pid = os.fork()
            if pid == 0:
                servidor.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                conn.settimeout(None)
                try:
                    atender(conn, addr)
                finally:
                    os._exit(0)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
            hijos.add(pid)
            conn.close()
    finally:
        servidor.close()
    print("Servidor detenido", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
