"""PFO 1 - Servidor de chat con asyncio (una corrutina por cliente).

Si un cliente se corta de golpe, un hilo aparte espera que vuelva (mirando cada medio segundo si
llegó un aviso por el socket de avisos), para decirle que sus mensajes quedaron guardados.
"""

import asyncio
import select
import signal
import socket
import sqlite3
import threading
from datetime import datetime

HOST, PORT = "127.0.0.1", 5000
db = sqlite3.connect("chat.db")
db.execute(
    "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT NOT NULL,"
    " fecha_envio TEXT NOT NULL, ip_cliente TEXT NOT NULL)"
)
db.commit()


async def descartar_linea(reader):
    """Descarta el resto de una línea más larga que el límite del StreamReader (64 KiB), hasta su "\\n".

    Devuelve False si el cliente cerró antes de terminarla."""
    while True:
        try:
            await reader.readuntil(b"\n")
            return True
        except asyncio.LimitOverrunError as e:
            await reader.readexactly(e.consumed)
        except asyncio.IncompleteReadError:
            return False


avisar, avisos = socket.socketpair()  # por "avisar" se despierta a los hilos que esperan en "avisos"


def esperar_regreso(ip):
    """Espera que el cliente vuelva; mira el socket de avisos cada medio segundo."""
    while True:
        listos, _, _ = select.select([avisos], [], [], 0.5)
        if listos:
            print(f"{ip} volvió: {avisos.recv(1024)!r}", flush=True)


async def atender(reader, writer):
    ip = writer.get_extra_info("peername")[0]
    try:
        while True:
            try:
                linea = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                break  # el cliente cerró (una línea a medias no cuenta)
            except asyncio.LimitOverrunError:
                if not await descartar_linea(reader):
                    break
                writer.write("Error: mensaje demasiado largo\n".encode())
                continue
            try:
                texto = linea.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                writer.write("Error: el mensaje no es UTF-8\n".encode())
                continue
            if texto.strip() == "éxito":
                writer.write("Adiós\n".encode())
                await writer.drain()
                break
            if not texto.strip():
                writer.write("Error: mensaje vacío\n".encode())
                continue
            fecha = datetime.now().isoformat(sep=" ", timespec="seconds")
            try:
                db.execute("INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)", (texto, fecha, ip))
                db.commit()
            except sqlite3.Error as e:
                print(f"Error: no se pudo guardar: {e}", flush=True)
                writer.write("Error: no se pudo guardar el mensaje\n".encode())
                continue
            writer.write(f"Mensaje recibido: {fecha}\n".encode())
            await writer.drain()
    except ConnectionError:
        threading.Thread(target=esperar_regreso, args=(ip,), daemon=True).start()
    finally:
        writer.close()


async def main():
    try:
        server = await asyncio.start_server(atender, HOST, PORT)
    except OSError as e:
        print(f"Error: el puerto {PORT} está ocupado ({e.strerror})", flush=True)
        return 1
    parar = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, parar.set)
    print(f"Servidor escuchando en {HOST}:{PORT}", flush=True)
    async with server:
        await parar.wait()
    print("Servidor detenido", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
