# PFO 1 - Servidor de chat con copia de seguridad
# Un hilo por cliente; una sola conexión a SQLite protegida con un candado.
# Cada 3 segundos un hilo copia la base a respaldo.db, de a una página y con una pausa entre páginas,
# para no trabar el disco.
import datetime
import socket
import sqlite3
import threading
import time

HOST = "0.0.0.0"
PORT = 5000

candado = threading.Lock()
con = sqlite3.connect("chat.db", check_same_thread=False)


def crear_tabla():
    con.execute(
        "CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT, contenido TEXT, fecha_envio TEXT, ip_cliente TEXT)"
    )
    con.commit()


def guardar_mensaje(contenido, ip):
    fecha = datetime.datetime.now().isoformat(sep=" ", timespec="seconds")
    with candado:
        con.execute("INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)", (contenido, fecha, ip))
        con.commit()
    return fecha


def pausa(estado, restantes, total):
    time.sleep(0.25)


def respaldo_periodico():
    while True:
        time.sleep(3)
        with candado:
            destino = sqlite3.connect("respaldo.db")
            try:
                con.backup(destino, pages=1, progress=pausa)
            except sqlite3.Error as e:
                print("Error: no se pudo hacer el respaldo:", e)
            finally:
                destino.close()


def responder(conn, texto):
    try:
        conn.sendall(texto.encode("utf-8"))
        return True
    except OSError:
        return False


def manejar(conn, addr):
    with conn:
        f = conn.makefile("rb")
        while True:
            try:
                linea = f.readline()
            except OSError:
                print("Error: el cliente", addr, "se desconectó abruptamente")
                break
            if not linea or not linea.endswith(b"\n"):
                break
            msg = linea.decode("utf-8", errors="replace").rstrip("\r\n")
            if msg.strip() == "éxito":
                break
            if not msg.strip():
                if not responder(conn, "Error: mensaje vacío\n"):
                    break
                continue
            try:
                fecha = guardar_mensaje(msg, addr[0])
            except sqlite3.Error as e:
                print("Error: no se pudo guardar:", e)
                if not responder(conn, "Error: no se pudo guardar el mensaje\n"):
                    break
                continue
            if not responder(conn, f"Mensaje recibido: {fecha}\n"):
                break
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
    threading.Thread(target=respaldo_periodico, daemon=True).start()
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
