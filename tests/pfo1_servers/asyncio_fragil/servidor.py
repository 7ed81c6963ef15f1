"""PFO 1 - Servidor de chat asíncrono (asyncio). Guarda cada mensaje en SQLite y responde con la fecha."""

import asyncio
import sqlite3
from datetime import datetime

HOST = "localhost"
PORT = 5000


def inicializar_db():
    conexion = sqlite3.connect("chat.db")
    conexion.execute(
        """CREATE TABLE IF NOT EXISTS mensajes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            contenido TEXT,
            fecha_envio TEXT,
            ip_cliente TEXT
        )"""
    )
    conexion.commit()
    return conexion


conexion = inicializar_db()


def guardar_mensaje(contenido, ip):
    fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    conexion.execute(
        "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)", (contenido, fecha, ip)
    )
    conexion.commit()
    return fecha


async def manejar_cliente(reader, writer):
    ip = writer.get_extra_info("peername")[0]
    print(f"Cliente conectado: {ip}")
    while True:
        datos = await reader.readline()
        if not datos:
            break
        mensaje = datos.decode("utf-8").strip()
        if mensaje == "éxito":
            writer.write("Adiós\n".encode())
            await writer.drain()
            break
        if not mensaje:
            continue
        try:
            fecha = guardar_mensaje(mensaje, ip)
        except sqlite3.Error as e:
            print("Error de base de datos:", e)
            writer.write(f"Error: {e}\n".encode())
            await writer.drain()
            continue
        writer.write(f"Mensaje recibido: {fecha}\n".encode())
        await writer.drain()
    print(f"Cliente desconectado: {ip}")
    writer.close()


async def main():
    servidor = await asyncio.start_server(manejar_cliente, HOST, PORT)
    print(f"Servidor escuchando en {HOST}:{PORT}")
    async with servidor:
        await servidor.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("Servidor detenido")
    except OSError as e:
        print(f"Error: no se pudo iniciar el servidor: {e}")
    finally:
        conexion.close()
