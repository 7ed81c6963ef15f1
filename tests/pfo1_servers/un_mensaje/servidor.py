#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""
PFO 1 - Servidor de chat
Alumno: (completar)

Cada conexión trae un mensaje: el servidor lo lee, lo guarda en la base
SQLite, contesta con la hora y cierra la conexión. Cada conexión se atiende
en un hilo para no bloquear al resto.
"""

import socket
import sqlite3
import threading
from datetime import datetime

HOST = "127.0.0.1"
PORT = 5000
ARCHIVO_DB = "mensajes.db"


def inicializar_base():
    """Crea la tabla 'mensajes' si todavía no existe."""
    con = sqlite3.connect(ARCHIVO_DB)
    con.execute(
        """CREATE TABLE IF NOT EXISTS mensajes(
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               contenido TEXT,
               fecha_envio TEXT,
               ip_cliente TEXT
           )"""
    )
    con.commit()
    con.close()


def guardar_en_base(contenido, ip):
    """Guarda el mensaje. Cada hilo abre su propia conexión (sqlite no deja compartirla)."""
    fecha = datetime.now().isoformat(sep=" ", timespec="seconds")
    con = sqlite3.connect(ARCHIVO_DB)
    try:
        con.execute(
            "INSERT INTO mensajes(contenido, fecha_envio, ip_cliente) VALUES(?, ?, ?)",
            (contenido, fecha, ip),
        )
        con.commit()
    finally:
        con.close()
    return fecha


def manejar_conexion(conn, addr):
    """Lee UN mensaje, lo guarda, responde y cierra."""
    try:
        datos = conn.recv(1024)
        if not datos:
            return
        mensaje = datos.decode("utf-8", errors="replace").strip()
        if mensaje.lower() == "éxito":
            conn.sendall("Chau!\n".encode("utf-8"))
            return
        fecha = guardar_en_base(mensaje, addr[0])
        conn.sendall(f"OK - Mensaje recibido: {fecha}\n".encode("utf-8"))
        print(f"{fecha} {addr[0]}: {mensaje}")
    except sqlite3.Error as e:
        print(f"Error de base de datos: {e}")
    except OSError as e:
        print(f"Error con el cliente {addr}: {e}")
    finally:
        conn.close()


def iniciar_servidor():
    """Configura el socket del servidor."""
    servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        servidor.bind((HOST, PORT))
    except OSError as e:
        print(f"Error: no se pudo abrir el puerto {PORT}: {e}")
        return None
    servidor.listen(10)
    return servidor


def main():
    try:
        inicializar_base()
    except sqlite3.Error as e:
        print(f"Error: la base de datos no está accesible: {e}")
        return
    servidor = iniciar_servidor()
    if servidor is None:
        return
    print(f"Escuchando en {HOST}:{PORT} (Ctrl+C para salir)")
    try:
        while True:
            conn, addr = servidor.accept()
            t = threading.Thread(target=manejar_conexion, args=(conn, addr), daemon=True)
            t.start()
    except KeyboardInterrupt:
        print("Servidor apagado")
    servidor.close()


if __name__ == "__main__":
    main()
