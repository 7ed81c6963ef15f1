"""PFO 1 - Servidor de chat con un pool de hilos propio que mira cada medio segundo si debe parar.

Los clientes esperan en una cola y los atiende un grupo fijo de hilos trabajadores: mientras haya
menos de MAX_HILOS, cada cliente nuevo crea un trabajador más (y lo atiende el primero que esté
libre); después, los que ya existen se reparten la cola. Para que Ctrl+C los detenga, los
trabajadores no esperan la cola para siempre: la miran con un timeout de medio segundo y, entre
una espera y otra, se fijan si el servidor se está deteniendo. Cada mensaje es una línea
terminada en "\\n".

Uso: python servidor.py [MAX_HILOS]   (por omisión, 32 trabajadores)
"""

import signal
import socket
import sqlite3
import sys
import queue
import threading
from datetime import datetime

HOST = "127.0.0.1"
PORT = 5000
DB = "chat.db"
SALIDA = "éxito"
MAX_HILOS = int(sys.argv[1]) if len(sys.argv) > 1 else 32
MAX_LINEA = 65536

detener = threading.Event()
lock_db = threading.Lock()
lock_conexiones = threading.Lock()
conexiones = set()


def abrir_db():
    db = sqlite3.connect(DB, check_same_thread=False, timeout=5)
    db.execute(
        "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " contenido TEXT NOT NULL, fecha_envio TEXT NOT NULL, ip_cliente TEXT NOT NULL)"
    )
    db.commit()
    return db


def guardar(db, texto, ip):
    with lock_db:
        fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        with db:
            db.execute("INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)", (texto, fecha, ip))
    return fecha


def responder(conn, texto):
    conn.sendall((texto + "\n").encode("utf-8"))


def atender(db, conn, addr):
    try:
        with conn.makefile("rb") as entrada:
            while not detener.is_set():
                linea = entrada.readline(MAX_LINEA + 1)
                if not linea.endswith(b"\n"):
                    if len(linea) <= MAX_LINEA:
                        return  # el cliente se fue (una línea a medias no es un mensaje)
                    responder(conn, "Error: mensaje demasiado largo")
                    while linea and not linea.endswith(b"\n"):  # se descarta el resto de la línea
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
                try:
                    fecha = guardar(db, texto, addr[0])
                except sqlite3.Error as e:
                    print(f"Error: no se pudo guardar un mensaje: {e}", flush=True)
                    responder(conn, "Error: no se pudo guardar el mensaje")
                    continue
                responder(conn, f"Mensaje recibido: {fecha}")
    except OSError:
        pass  # el cliente cortó la conexión o el servidor se está cerrando
    finally:
        with lock_conexiones:
            conexiones.discard(conn)
        conn.close()


def trabajador(db, cola):
    """Atiende clientes de la cola, uno por vez, hasta que se detiene el servidor."""
    while not detener.is_set():
        try:
            cliente = cola.get(timeout=0.5)  # cada medio segundo mira si hay que detenerse
        except queue.Empty:
            continue
        atender(db, *cliente)


def main():
    signal.signal(signal.SIGINT, lambda *_: detener.set())
    signal.signal(signal.SIGTERM, lambda *_: detener.set())
    try:
        db = abrir_db()
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
    cola = queue.Queue()
    hilos = []
    print(f"Servidor escuchando en {HOST}:{PORT}", flush=True)
    try:
        while not detener.is_set():
            try:
                conn, addr = servidor.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            with lock_conexiones:
                conexiones.add(conn)
            if len(hilos) < MAX_HILOS:  # hasta llenar el pool, un trabajador nuevo por cliente
                hilo = threading.Thread(target=trabajador, args=(db, cola))
                hilo.start()
                hilos.append(hilo)
            cola.put((conn, addr))
    finally:
        servidor.close()
        with lock_conexiones:
            for conn in list(conexiones):
                try:
                    conn.shutdown(socket.SHUT_RDWR)  # despierta a los hilos que esperan en readline()
                except OSError:
                    pass
        while True:  # los clientes que todavía esperaban en la cola no se atienden
            try:
                conn, _ = cola.get_nowait()
            except queue.Empty:
                break
            conn.close()
        for hilo in hilos:
            hilo.join()
        db.close()
    print("Servidor detenido", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
