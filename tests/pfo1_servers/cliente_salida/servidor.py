"""PFO 1 - Servidor.

Funciones:
  - configurar_servidor(): crea el socket y lo pone a escuchar
  - aceptar_clientes(): acepta conexiones y lanza un hilo por cliente
  - recibir_mensajes(): recibe los mensajes de un cliente
  - guardar_mensaje(): guarda en la base de datos
"""
import socket
import sqlite3
import sys
import threading
from datetime import datetime

HOST = "localhost"
PORT = 5000
DB = "chat.db"


def crear_db():
    with sqlite3.connect(DB) as con:
        con.execute("""CREATE TABLE IF NOT EXISTS mensajes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            contenido TEXT,
            fecha_envio TEXT,
            ip_cliente TEXT
        )""")


def guardar_mensaje(contenido, ip):
    fecha = str(datetime.now())
    with sqlite3.connect(DB) as con:   # el with hace el commit solo
        con.execute("INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
                    (contenido, fecha, ip))
    return fecha


def recibir_mensajes(conexion, direccion):
    with conexion:
        while True:
            try:
                data = conexion.recv(1024)
            except OSError as e:
                print("Error de conexión:", e)
                break
            if not data:
                break
            texto = data.decode("utf-8", errors="replace")
            try:
                fecha = guardar_mensaje(texto, direccion[0])
            except sqlite3.Error as e:
                print("Error al guardar el mensaje:", e)
                conexion.sendall(b"Error al guardar el mensaje")
                continue
            print(f"({fecha}) {direccion}: {texto}")
            try:
                conexion.sendall(("Mensaje recibido: " + fecha).encode())
            except OSError:
                break
    print("Cliente desconectado:", direccion)


def aceptar_clientes(servidor):
    while True:
        conexion, direccion = servidor.accept()
        print("Conexión de", direccion)
        threading.Thread(target=recibir_mensajes, args=(conexion, direccion), daemon=True).start()


def configurar_servidor():
    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        servidor.bind((HOST, PORT))
    except OSError as e:
        print(f"Error: el puerto {PORT} está en uso ({e})")
        sys.exit(1)
    servidor.listen()
    return servidor


if __name__ == "__main__":
    try:
        crear_db()
    except sqlite3.Error as e:
        print("Error: no se pudo abrir la base de datos:", e)
        sys.exit(1)
    servidor = configurar_servidor()
    print("Servidor escuchando en el puerto", PORT)
    try:
        aceptar_clientes(servidor)
    except KeyboardInterrupt:
        print("Servidor finalizado")
    finally:
        servidor.close()
