# PFO 1 - Programación sobre Redes
# Servidor de chat con sockets y SQLite
# Cada cliente se atiende en un hilo aparte

import socket
import sqlite3
import threading
from datetime import datetime

HOST = "localhost"
PORT = 5000
BASE_DATOS = "chat.db"

# lock para que dos hilos no escriban la base al mismo tiempo
candado = threading.Lock()


# ----------------------------------------------------------
# Base de datos
# ----------------------------------------------------------
def crear_base():
    try:
        conexion = sqlite3.connect(BASE_DATOS)
        cursor = conexion.cursor()
        cursor.execute("""
            CREATE TABLE IF NOT EXISTS mensajes (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                contenido TEXT,
                fecha_envio TEXT,
                ip_cliente TEXT
            )
        """)
        conexion.commit()
        conexion.close()
    except sqlite3.Error as e:
        print("Error al crear la base de datos:", e)
        raise SystemExit(1)


def guardar_mensaje(contenido, ip_cliente):
    fecha_envio = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    with candado:
        conexion = sqlite3.connect(BASE_DATOS)
        cursor = conexion.cursor()
        cursor.execute(
            "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
            (contenido, fecha_envio, ip_cliente),
        )
        conexion.commit()
        conexion.close()
    return fecha_envio


# ----------------------------------------------------------
# Socket
# ----------------------------------------------------------
def inicializar_socket():
    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        servidor.bind((HOST, PORT))
    except OSError:
        print(f"Error: el puerto {PORT} ya está en uso")
        raise SystemExit(1)
    servidor.listen(5)
    print(f"Servidor escuchando en {HOST}:{PORT}")
    return servidor


def atender_cliente(conexion, direccion):
    ip = direccion[0]
    print(f"Cliente conectado desde {ip}:{direccion[1]}")
    while True:
        try:
            datos = conexion.recv(1024)
        except ConnectionResetError:
            print("El cliente cerró la conexión de golpe")
            break
        if not datos:
            break
        mensaje = datos.decode("utf-8", errors="ignore").strip()
        if mensaje == "éxito":
            print(f"El cliente {ip} terminó la sesión")
            break
        try:
            fecha = guardar_mensaje(mensaje, ip)
        except sqlite3.Error as e:
            print("Error al guardar el mensaje:", e)
            continue
        print(f"[{ip}] {mensaje}")
        try:
            conexion.sendall(f"Mensaje recibido: {fecha}".encode("utf-8"))
        except OSError:
            break
    conexion.close()
    print(f"Cliente {ip} desconectado")


def aceptar_conexiones(servidor):
    while True:
        conexion, direccion = servidor.accept()
        hilo = threading.Thread(target=atender_cliente, args=(conexion, direccion))
        hilo.start()


def main():
    crear_base()
    servidor = inicializar_socket()
    try:
        aceptar_conexiones(servidor)
    except KeyboardInterrupt:
        print("\nServidor detenido")
    finally:
        servidor.close()


if __name__ == "__main__":
    main()
