# servidor.py
# PFO 1 - Chat básico con sockets
# El servidor espera a un cliente, guarda lo que manda en la base y le contesta.

import socket
import sqlite3
from datetime import datetime

HOST = "localhost"
PORT = 5000


# Función para crear la base de datos y la tabla
def crear_tabla():
    conexion = sqlite3.connect("base_chat.db")
    cursor = conexion.cursor()
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS mensajes ("
        "id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "contenido TEXT, "
        "fecha_envio TEXT, "
        "ip_cliente TEXT)"
    )
    conexion.commit()
    return conexion


# Función para guardar un mensaje
def guardar_mensaje(conexion, contenido, ip):
    fecha = datetime.now().strftime("%d-%m-%Y %H:%M:%S")
    cursor = conexion.cursor()
    cursor.execute(
        "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
        (contenido, fecha, ip),
    )
    conexion.commit()
    return fecha


# Función para inicializar el socket
def iniciar_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, PORT))
    s.listen(1)
    return s


# Función que recibe los mensajes del cliente
def recibir_mensajes(cliente, ip, conexion):
    while True:
        datos = cliente.recv(1024)
        if not datos:
            print("El cliente se desconectó")
            break
        mensaje = datos.decode("utf-8", errors="replace")
        if mensaje == "éxito":
            print("El cliente escribió éxito, fin del chat")
            break
        try:
            fecha = guardar_mensaje(conexion, mensaje, ip)
        except sqlite3.Error as e:
            print("Error de base de datos:", e)
            break
        print("Mensaje de", ip, ":", mensaje)
        cliente.send(("Mensaje recibido: " + fecha).encode("utf-8"))


def main():
    try:
        conexion = crear_tabla()
    except sqlite3.Error as e:
        print("No se pudo abrir la base de datos:", e)
        return

    try:
        servidor = iniciar_socket()
    except OSError:
        print("Error: el puerto", PORT, "está ocupado")
        return

    print("Esperando conexión en el puerto", PORT, "...")
    cliente, direccion = servidor.accept()
    print("Conectado con", direccion)
    try:
        recibir_mensajes(cliente, direccion[0], conexion)
    except ConnectionResetError:
        print("Se perdió la conexión con el cliente")

    cliente.close()
    servidor.close()
    conexion.close()
    print("Servidor cerrado")


main()
