"""PFO 1 - Servidor de chat con socketserver.ForkingTCPServer (un proceso por cliente, de la biblioteca estándar).

Cada cliente lo atiende un proceso hijo con su propia conexión SQLite. El servidor recoge a los hijos
que terminan entre una conexión y otra (cada medio segundo, serve_forever) y, al cerrarlo con Ctrl+C,
espera a todos (block_on_close).
"""

import socketserver
import sqlite3
import sys
from datetime import datetime

HOST, PORT = "localhost", 5000
DB = "chat.db"
SALIDA = "éxito"
MAX_LINEA = 65536


def inicializar_db():
    con = sqlite3.connect(DB)
    con.execute(
        "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT,"
        " fecha_envio TEXT, ip_cliente TEXT)"
    )
    con.commit()
    con.close()


class ManejadorChat(socketserver.StreamRequestHandler):
    def responder(self, texto):
        self.wfile.write((texto + "\n").encode("utf-8"))

    def handle(self):
        ip = self.client_address[0]
        con = sqlite3.connect(DB, timeout=30)
        try:
            while True:
                linea = self.rfile.readline(MAX_LINEA + 1)
                if not linea.endswith(b"\n"):
                    if len(linea) <= MAX_LINEA:
                        break  # el cliente se fue (lo que quedó sin "\n" no es un mensaje)
                    self.responder("Error: mensaje demasiado largo")
                    while linea and not linea.endswith(b"\n"):
                        linea = self.rfile.readline(MAX_LINEA + 1)
                    continue
                try:
                    mensaje = linea.decode("utf-8").strip()
                except UnicodeDecodeError:
                    self.responder("Error: el mensaje no es UTF-8 válido")
                    continue
                if mensaje == SALIDA:
                    self.responder("Adiós")
                    break
                if not mensaje:
                    self.responder("Error: mensaje vacío")
                    continue
                fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
                try:
                    with con:
                        con.execute(
                            "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
                            (mensaje, fecha, ip),
                        )
                except sqlite3.Error as e:
                    print(f"Error de base de datos: {e}", flush=True)
                    self.responder("Error: no se pudo guardar el mensaje")
                    continue
                self.responder(f"Mensaje recibido: {fecha}")
        except ConnectionError:
            print(f"El cliente {self.client_address} se desconectó de golpe", flush=True)
        finally:
            con.close()


class Servidor(socketserver.ForkingTCPServer):
    allow_reuse_address = True
    request_queue_size = 1024  # muchos clientes a la vez
    max_children = 1024


def main():
    inicializar_db()
    try:
        servidor = Servidor((HOST, PORT), ManejadorChat)
    except OSError as e:
        print(f"Error: no se pudo abrir el puerto {PORT}: {e}", flush=True)
        sys.exit(1)
    print(f"Servidor escuchando en {HOST}:{PORT}", flush=True)
    with servidor:
        try:
            servidor.serve_forever()
        except KeyboardInterrupt:
            print("\nServidor detenido", flush=True)


if __name__ == "__main__":
    main()
