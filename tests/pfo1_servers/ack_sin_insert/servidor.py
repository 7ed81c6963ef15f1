"""
Programación sobre Redes - PFO 1
Servidor de chat: cada línea que manda el cliente es un mensaje.
Se guarda en SQLite y se responde "Mensaje recibido: <fecha>".
"""

import socket
import sqlite3
import sys
import threading
import time

HOST = "localhost"
PORT = 5000
DB = "chat_mensajes.db"

lock_db = threading.Lock()


def preparar_db():
    # crea la tabla mensajes
    conexion = sqlite3.connect(DB)
    conexion.execute("CREATE TABLE IF NOT EXISTS mensajes ("
                     "id INTEGER PRIMARY KEY AUTOINCREMENT, "
                     "contenido TEXT, fecha_envio TEXT, ip_cliente TEXT)")
    conexion.commit()
    conexion.close()


def guardar_mensaje(texto, ip):
    # guarda el mensaje, si falla muestra el error pero sigue andando
    try:
        with lock_db:
            conexion = sqlite3.connect(DB)
            conexion.execute("INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
                             (texto, time.strftime("%Y-%m-%d %H:%M:%S"), ip))
            conexion.commit()
            conexion.close()
    except Exception as e:
        print("Error al guardar en la base:", e)


def atender_cliente(conn, addr):
    ip = addr[0]
    print("Nuevo cliente:", addr)
    archivo = conn.makefile("r", encoding="utf-8", errors="replace")
    try:
        for linea in archivo:
            mensaje = linea.rstrip("\r\n")
            if mensaje == "éxito":
                conn.sendall("Hasta luego!\n".encode())
                break
            guardar_mensaje(mensaje, ip)
            respuesta = "Mensaje recibido: " + time.strftime("%d/%m/%Y - %H:%M:%S") + "\n"
            conn.sendall(respuesta.encode("utf-8"))
    except (ConnectionResetError, BrokenPipeError):
        print("Se cortó la conexión con", addr)
    finally:
        archivo.close()
        conn.close()
        print("Cliente desconectado:", addr)


def main():
    try:
        preparar_db()
    except sqlite3.Error as e:
        print("Error: no se puede abrir la base de datos:", e)
        sys.exit(1)

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((HOST, PORT))
    except OSError:
        print("Error: el puerto", PORT, "ya está en uso")
        sys.exit(1)
    s.listen(20)
    print("Servidor en marcha en", HOST, PORT)

    try:
        while True:
            conn, addr = s.accept()
            hilo = threading.Thread(target=atender_cliente, args=(conn, addr))
            hilo.daemon = True
            hilo.start()
    except KeyboardInterrupt:
        print("Servidor detenido por el usuario")
    finally:
        s.close()


if __name__ == "__main__":
    main()
