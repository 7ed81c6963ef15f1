"""PFO 1: servidor de chat multicliente con SQLite.

Cada cliente se atiende en un hilo. Un cliente que no envía nada durante TIEMPO_INACTIVIDAD
segundos se desconecta, para no dejar hilos colgados.
"""

import signal
import socket
import sqlite3
import sys
import threading
from datetime import datetime

HOST = "127.0.0.1"
PORT = 5000
TIEMPO_INACTIVIDAD = 5

candado = threading.Lock()


def conectar_db():
    try:
        db = sqlite3.connect("chat.db", check_same_thread=False)
        db.execute(
            "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "contenido TEXT NOT NULL, fecha_envio TEXT NOT NULL, ip_cliente TEXT NOT NULL)"
        )
        db.commit()
        return db
    except sqlite3.Error as error:
        print(f"Error de base de datos: {error}")
        sys.exit(1)


def atender(cliente, direccion, db):
    cliente.settimeout(TIEMPO_INACTIVIDAD)
    archivo = cliente.makefile("r", encoding="utf-8", errors="replace", newline="\n")
    try:
        for linea in archivo:
            if not linea.endswith("\n"):
                break  # el cliente cortó a mitad de un mensaje
            mensaje = linea.strip()
            if mensaje == "éxito":
                cliente.sendall(b"Chau\n")
                break
            if not mensaje:
                cliente.sendall("Error: mensaje vacío\n".encode())
                continue
            fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            try:
                with candado:
                    db.execute(
                        "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
                        (mensaje, fecha, direccion[0]),
                    )
                    db.commit()
            except sqlite3.Error as error:
                print(f"Error al guardar el mensaje: {error}")
                cliente.sendall("Error: no se pudo guardar\n".encode())
                continue
            cliente.sendall(f"Mensaje recibido: {fecha}\n".encode())
    except socket.timeout:
        print(f"{direccion} inactivo por {TIEMPO_INACTIVIDAD} s: se desconecta")
    except OSError as error:
        print(f"Error con {direccion}: {error}")
    finally:
        archivo.close()
        cliente.close()


def main():
    db = conectar_db()
    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    servidor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        servidor.bind((HOST, PORT))
    except OSError as error:
        print(f"Error: no se puede abrir el puerto {PORT}: {error}")
        sys.exit(1)
    servidor.listen(100)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"Servidor escuchando en {HOST}:{PORT}")
    try:
        while True:
            cliente, direccion = servidor.accept()
            threading.Thread(target=atender, args=(cliente, direccion, db), daemon=True).start()
    except KeyboardInterrupt:
        print("Servidor detenido")
    finally:
        servidor.close()
        db.close()


if __name__ == "__main__":
    main()
