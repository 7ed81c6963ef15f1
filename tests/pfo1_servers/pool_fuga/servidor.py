"""PFO 1 - Chat con ThreadPoolExecutor y una conexión a la base por cliente.

Cada cliente abre su propia conexión SQLite (sqlite3 no deja usar una conexión desde otro hilo)
y la guarda en una lista para cerrarlas todas al apagar el servidor.
"""

import socket
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

conexiones_db = []  # se cierran todas al final
lock = threading.Lock()


def crear_tabla():
    con = sqlite3.connect("mensajes.db")
    con.execute(
        "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT,"
        " fecha_envio TEXT, ip_cliente TEXT)"
    )
    con.commit()
    con.close()


def manejar_cliente(sock, direccion):
    con = sqlite3.connect("mensajes.db", timeout=5)
    conexiones_db.append(con)
    pendiente = b""
    try:
        while True:
            datos = sock.recv(4096)
            if not datos:
                break
            pendiente += datos
            while b"\n" in pendiente:
                linea, pendiente = pendiente.split(b"\n", 1)
                texto = linea.decode("utf-8", errors="replace").strip()
                if texto == "éxito":
                    sock.sendall("Chau\n".encode())
                    return
                if not texto:
                    sock.sendall("Error: mensaje vacío\n".encode())
                    continue
                fecha = datetime.now().strftime("%d/%m/%Y %H:%M:%S")
                with lock:
                    con.execute(
                        "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
                        (texto, fecha, direccion[0]),
                    )
                    con.commit()
                sock.sendall(f"Mensaje recibido: {fecha}\n".encode())
    except (ConnectionError, OSError):
        pass
    finally:
        sock.close()


def main():
    crear_tabla()
    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    servidor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    servidor.bind(("localhost", 5000))
    servidor.listen(100)
    print("Servidor escuchando en el puerto 5000")
    pool = ThreadPoolExecutor(max_workers=100)
    try:
        while True:
            sock, direccion = servidor.accept()
            pool.submit(manejar_cliente, sock, direccion)
    except KeyboardInterrupt:
        print("Cerrando servidor")
    finally:
        servidor.close()
        pool.shutdown(wait=False)
        for con in conexiones_db:
            con.close()


if __name__ == "__main__":
    main()
