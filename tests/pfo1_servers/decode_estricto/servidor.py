# ==========================================================
#  PFO 1 - Programación sobre Redes
#  Servidor de chat multi-cliente (sockets + hilos + SQLite)
# ==========================================================

import socket
import sqlite3
import threading
from datetime import datetime

HOST = "127.0.0.1"
PORT = 5000
RUTA_DB = "chat.sqlite3"

# Una sola conexión a la base para todo el servidor, protegida con un lock
db = None
db_lock = threading.Lock()


# ---------- Base de datos ----------
def abrir_base_de_datos():
    global db
    try:
        db = sqlite3.connect(RUTA_DB, check_same_thread=False)
        db.execute(
            "CREATE TABLE IF NOT EXISTS mensajes ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " contenido TEXT,"
            " fecha_envio TEXT,"
            " ip_cliente TEXT)"
        )
        db.commit()
    except sqlite3.Error as error:
        print("[ERROR] No se pudo acceder a la base de datos:", error)
        exit(1)


def insertar_mensaje(contenido, ip):
    ahora = datetime.now()
    with db_lock:
        db.execute(
            "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
            (contenido, ahora.strftime("%Y-%m-%d %H:%M:%S"), ip),
        )
        db.commit()
    return ahora


# ---------- Sockets ----------
def crear_socket_servidor():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        srv.bind((HOST, PORT))
        srv.listen()
    except OSError as error:
        print(f"[ERROR] El puerto {PORT} está ocupado: {error}")
        exit(1)
    return srv


def manejar_cliente(sock_cliente, direccion):
    ip, puerto = direccion
    print(f"[+] Conectado {ip}:{puerto}")
    while True:
        datos = sock_cliente.recv(1024)
        if not datos:
            break
        mensaje = datos.decode("utf-8")
        if mensaje == "éxito":
            sock_cliente.send("Sesión finalizada\n".encode("utf-8"))
            break
        ahora = insertar_mensaje(mensaje, ip)
        print(f"[{ip}] {mensaje}")
        respuesta = f"Mensaje recibido: {ahora.strftime('%H:%M:%S')} del {ahora.strftime('%d/%m/%Y')}\n"
        sock_cliente.send(respuesta.encode("utf-8"))
    sock_cliente.close()
    print(f"[-] Desconectado {ip}:{puerto}")


def aceptar_clientes(srv):
    while True:
        sock_cliente, direccion = srv.accept()
        hilo = threading.Thread(target=manejar_cliente, args=(sock_cliente, direccion), daemon=True)
        hilo.start()


# ---------- Programa principal ----------
if __name__ == "__main__":
    abrir_base_de_datos()
    servidor = crear_socket_servidor()
    print(f"Servidor de chat escuchando en {HOST}:{PORT}")
    try:
        aceptar_clientes(servidor)
    except KeyboardInterrupt:
        print("\nApagando el servidor...")
    finally:
        servidor.close()
        db.close()
