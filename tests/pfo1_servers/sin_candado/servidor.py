# PFO 1 - Servidor de chat
# Hilo por cliente. Cada mensaje abre su propia conexión a SQLite (sqlite ya maneja la concurrencia).
import socket
import sqlite3
import threading
import datetime

HOST = "0.0.0.0"
PORT = 5000


def crear_tabla():
    con = sqlite3.connect("chat.db")
    con.execute(
        "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT, fecha_envio TEXT, ip_cliente TEXT)"
    )
    con.commit()
    con.close()


def guardar_mensaje(contenido, ip):
    fecha = datetime.datetime.now().isoformat(sep=" ", timespec="seconds")
    con = sqlite3.connect("chat.db")
    try:
        con.execute("INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)", (contenido, fecha, ip))
        con.commit()
    finally:
        con.close()
    return fecha


def manejar(conn, addr):
    with conn:
        f = conn.makefile("rb")
        while True:
            try:
                linea = f.readline()
            except ConnectionError:
                print("Error: el cliente", addr, "se desconectó abruptamente")
                break
            if not linea:
                break
            if not linea.endswith(b"\n"):
                break
            try:
                msg = linea.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                conn.sendall(b"Error: codificacion invalida\n")
                continue
            if msg.strip() == "éxito":
                break
            if not msg.strip():
                conn.sendall("Error: mensaje vacío\n".encode())
                continue
            try:
                fecha = guardar_mensaje(msg, addr[0])
            except sqlite3.Error as e:
                print("Error: no se pudo guardar:", e)
                conn.sendall(b"Error: no se pudo guardar el mensaje\n")
                continue
            conn.sendall(f"Mensaje recibido: {fecha}\n".encode())
        f.close()


def main():
    crear_tabla()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((HOST, PORT))
    except OSError as e:
        print(f"Error: puerto {PORT} ocupado: {e}")
        raise SystemExit(1)
    s.listen(1024)
    print("Servidor escuchando en el puerto", PORT)
    try:
        while True:
            conn, addr = s.accept()
            threading.Thread(target=manejar, args=(conn, addr), daemon=True).start()
    except KeyboardInterrupt:
        print("Cerrando servidor")
    finally:
        s.close()


if __name__ == "__main__":
    main()
