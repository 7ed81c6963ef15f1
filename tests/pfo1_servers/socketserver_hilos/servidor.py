"""PFO 1 - Servidor de chat con socketserver (un hilo por cliente, de la biblioteca estándar)."""

import socketserver
import sqlite3
import sys
import threading
from datetime import datetime

HOST, PORT = "localhost", 5000
DB = "chat.db"
lock = threading.Lock()


def inicializar_db():
    con = sqlite3.connect(DB)
    con.execute(
        "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT,"
        " fecha_envio TEXT, ip_cliente TEXT)"
    )
    con.commit()
    con.close()


class ManejadorChat(socketserver.StreamRequestHandler):
    def handle(self):
        ip = self.client_address[0]
        print(f"Cliente conectado desde {self.client_address}")
        con = sqlite3.connect(DB, timeout=10)
        try:
            for linea in self.rfile:
                mensaje = linea.decode("utf-8", errors="replace").strip()
                if mensaje == "éxito":
                    self.wfile.write("Adiós\n".encode())
                    break
                if not mensaje:
                    continue
                fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
                try:
                    with lock:
                        con.execute(
                            "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
                            (mensaje, fecha, ip),
                        )
                        con.commit()
                except sqlite3.Error as e:
                    print(f"Error de base de datos: {e}")
                    self.wfile.write(f"Error: no se pudo guardar el mensaje ({e})\n".encode())
                    continue
                self.wfile.write(f"Mensaje recibido: {fecha}\n".encode())
        except ConnectionError:
            print(f"El cliente {self.client_address} se desconectó de golpe")
        finally:
            con.close()
            print(f"Cliente {self.client_address} desconectado")


class Servidor(socketserver.ThreadingTCPServer):
    daemon_threads = True


def main():
    inicializar_db()
    try:
        servidor = Servidor((HOST, PORT), ManejadorChat)
    except OSError as e:
        print(f"Error: no se pudo abrir el puerto {PORT}: {e}")
        sys.exit(1)
    print(f"Servidor escuchando en {HOST}:{PORT}")
    with servidor:
        try:
            servidor.serve_forever()
        except KeyboardInterrupt:
            print("\nServidor detenido")


if __name__ == "__main__":
    main()
