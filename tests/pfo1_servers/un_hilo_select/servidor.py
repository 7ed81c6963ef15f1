"""PFO 1 - servidor de chat sin hilos: un solo bucle con select() atiende a todos los clientes."""

import select
import socket
import sqlite3
from datetime import datetime

HOST = "127.0.0.1"
PORT = 5000

db = sqlite3.connect("chat.db")
db.execute("CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT, fecha_envio TEXT, ip_cliente TEXT)")
db.commit()

servidor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    servidor.bind((HOST, PORT))
except OSError as e:
    print(f"Error: no se pudo usar el puerto {PORT}: {e}")
    raise SystemExit(1)
servidor.listen(100)
print(f"Servidor escuchando en {HOST}:{PORT}")

buffers = {}  # socket -> bytes recibidos que todavía no forman una línea


def cerrar(s):
    buffers.pop(s, None)
    s.close()


def procesar(s, linea):
    texto = linea.decode("utf-8", errors="replace").strip()
    if texto == "éxito":
        s.sendall("Adiós\n".encode())
        cerrar(s)
        return False
    if not texto:
        return True
    fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    db.execute("INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)", (texto, fecha, s.getpeername()[0]))
    db.commit()
    s.sendall(f"Mensaje recibido: {fecha}\n".encode())
    return True


try:
    while True:
        listos, _, _ = select.select([servidor, *buffers], [], [])
        for s in listos:
            if s is servidor:
                cliente, addr = servidor.accept()
                buffers[cliente] = b""
                continue
            try:
                datos = s.recv(4096)
            except ConnectionError:
                cerrar(s)
                continue
            if not datos:
                cerrar(s)  # lo que quedó sin "\n" se descarta
                continue
            buffers[s] += datos
            while s in buffers and b"\n" in buffers[s]:
                linea, buffers[s] = buffers[s].split(b"\n", 1)
                try:
                    if not procesar(s, linea):
                        break
                except ConnectionError:
                    cerrar(s)
except KeyboardInterrupt:
    print("Servidor detenido")
finally:
    for s in list(buffers):
        cerrar(s)
    servidor.close()
    db.close()
