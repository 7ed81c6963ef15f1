"""PFO 1 - Servidor de chat: un hilo por cliente y un único hilo escritor que guarda en SQLite.

Los hilos de clientes ponen cada mensaje en una cola; el escritor los guarda por lotes (una
transacción por lote) y avisa a cada hilo cuando su mensaje ya está guardado, recién entonces
se responde al cliente."""

import queue
import signal
import socket
import sqlite3
import threading
from datetime import datetime

HOST = "127.0.0.1"
PORT = 5000
cola = queue.Queue()
FIN = object()


class Pendiente:
    def __init__(self, contenido, ip):
        self.contenido = contenido
        self.ip = ip
        self.fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        self.listo = threading.Event()
        self.error = None


def escritor():
    db = sqlite3.connect("chat.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT NOT NULL, "
        "fecha_envio TEXT NOT NULL, ip_cliente TEXT NOT NULL)"
    )
    db.commit()
    listo_para_servir.set()
    terminar = False
    while not terminar:
        lote = [cola.get()]
        while len(lote) < 500:
            try:
                lote.append(cola.get_nowait())
            except queue.Empty:
                break
        if any(p is FIN for p in lote):
            terminar = True
            lote = [p for p in lote if p is not FIN]
        if not lote:
            continue
        try:
            with db:
                db.executemany(
                    "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
                    [(p.contenido, p.fecha, p.ip) for p in lote],
                )
        except sqlite3.Error as e:
            print(f"Error al guardar {len(lote)} mensaje(s): {e}", flush=True)
            for p in lote:
                p.error = str(e)
        for p in lote:
            p.listo.set()
    db.close()


listo_para_servir = threading.Event()


def atender(conn, addr):
    ip = addr[0]
    archivo = conn.makefile("rb")
    try:
        for linea in archivo:
            if not linea.endswith(b"\n"):
                break  # el cliente cortó a mitad de una línea: no se guarda
            texto = linea.decode("utf-8", errors="replace").strip()
            if not texto:
                conn.sendall(b"Error: mensaje vacio\n")
                continue
            if texto == "éxito":
                conn.sendall("Adiós\n".encode())
                break
            p = Pendiente(texto, ip)
            cola.put(p)
            p.listo.wait()
            if p.error:
                conn.sendall(f"Error: no se pudo guardar: {p.error}\n".encode())
            else:
                conn.sendall(f"Mensaje recibido: {p.fecha}\n".encode())
    except (ConnectionError, OSError) as e:
        print(f"[{ip}] conexión perdida: {e}", flush=True)
    finally:
        archivo.close()
        conn.close()


def main():
    hilo_escritor = threading.Thread(target=escritor)
    hilo_escritor.start()
    listo_para_servir.wait()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        srv.bind((HOST, PORT))
    except OSError as e:
        print(f"Error: el puerto {PORT} no está disponible: {e}", flush=True)
        cola.put(FIN)
        hilo_escritor.join()
        raise SystemExit(1)
    srv.listen(1024)
    parar = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: parar.set())
    signal.signal(signal.SIGINT, lambda *a: parar.set())
    srv.settimeout(0.5)
    print(f"Servidor escuchando en {HOST}:{PORT}", flush=True)
    while not parar.is_set():
        try:
            conn, addr = srv.accept()
        except socket.timeout:
            continue
        except OSError:
            break
        conn.settimeout(None)
        threading.Thread(target=atender, args=(conn, addr), daemon=True).start()
    srv.close()
    cola.put(FIN)
    hilo_escritor.join()
    print("Servidor detenido", flush=True)


if __name__ == "__main__":
    main()
