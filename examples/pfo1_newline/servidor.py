"""PFO 1 - Servidor de chat, resuelto con cuidado (ejemplo correcto para el harness).

Lo que pide la consigna: localhost:5000, cada mensaje guardado en SQLite (tabla ``mensajes``
con id, contenido, fecha_envio, ip_cliente), la respuesta "Mensaje recibido: <fecha>" y la
palabra "éxito" para terminar. Lo que la consigna deja abierto, resuelto así:

* Protocolo: cada mensaje es una línea UTF-8 terminada en "\\n" (se acepta "\\r\\n"). El
  servidor junta lo que llega en un buffer y corta por "\\n", así que dos mensajes que llegan
  en un mismo recv() o un mensaje que llega en varios pedazos se guardan bien.
* Respuestas (una línea cada una):
    - "Mensaje recibido: <fecha_envio>" sólo después del commit (la fecha es la de la fila);
    - "Error: <motivo>" para una línea que no es UTF-8 válido, vacía, demasiado larga o que
      no se pudo guardar: nada se guarda en ese caso;
    - "Adiós" para la palabra de salida, y después el servidor cierra la conexión.
  Una línea incompleta cuando el cliente se va (sin "\\n") no es un mensaje: se descarta.
* Un hilo por cliente (daemon), una sola conexión SQLite protegida por un lock.
* Se detiene con Ctrl+C (SIGINT) o SIGTERM: cierra el socket de escucha y los de los
  clientes, espera a los hilos un momento y sale con código 0 en menos de un segundo.
* Errores de arranque (puerto ocupado, base de datos inaccesible): un mensaje en stdout y
  código de salida 1. Nunca un traceback.
"""

import contextlib
import errno
import signal
import socket
import sqlite3
import sys
import threading
import time
from datetime import datetime

HOST = "127.0.0.1"
PORT = 5000
ARCHIVO_DB = "chat.db"
PALABRA_SALIDA = "éxito"
MAX_LINEA = 64 * 1024  # bytes por mensaje como máximo
ESPERA_HILOS = 0.5  # segundos que el cierre espera a los hilos de los clientes


class Servidor:
    """El estado compartido: la base, el socket de escucha y los clientes conectados."""

    def __init__(self):
        self.detener = threading.Event()
        self.lock_db = threading.Lock()
        self.lock_clientes = threading.Lock()
        self.clientes = set()  # sockets de los clientes conectados
        self.hilos = []
        self.db = None
        self.escucha = None

    # ------------------------------------------------------------------
    # Base de datos
    # ------------------------------------------------------------------
    def abrir_db(self):
        """Abre la base y crea la tabla; lanza sqlite3.Error si no se puede."""
        self.db = sqlite3.connect(ARCHIVO_DB, timeout=5.0, check_same_thread=False)
        with self.db:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS mensajes ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " contenido TEXT NOT NULL,"
                " fecha_envio TEXT NOT NULL,"
                " ip_cliente TEXT NOT NULL)"
            )

    def guardar(self, contenido, ip):
        """Inserta y confirma (commit) un mensaje; devuelve su fecha_envio. Lanza sqlite3.Error."""
        with self.lock_db:
            fecha = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            with self.db:  # commit al salir, rollback si algo falla
                self.db.execute(
                    "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)",
                    (contenido, fecha, ip),
                )
        return fecha

    def cerrar_db(self):
        """Cierra la base si ningún hilo la está usando."""
        if self.db is not None and self.lock_db.acquire(timeout=ESPERA_HILOS):
            try:
                self.db.close()
            finally:
                self.lock_db.release()

    # ------------------------------------------------------------------
    # Socket de escucha
    # ------------------------------------------------------------------
    def abrir_socket(self):
        """Crea el socket, lo asocia al puerto y escucha; lanza OSError si no puede."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((HOST, PORT))
            s.listen(128)
            s.settimeout(0.2)  # para revisar seguido si hay que detenerse
        except OSError:
            s.close()
            raise
        self.escucha = s

    def aceptar(self):
        """Acepta clientes hasta que se pida detener el servidor."""
        while not self.detener.is_set():
            try:
                conn, addr = self.escucha.accept()
            except TimeoutError:
                continue
            except OSError as e:
                if self.detener.is_set():
                    break
                print(f"Error al aceptar una conexión: {e}", flush=True)
                time.sleep(0.1)  # p. ej. demasiados archivos abiertos: no girar en vacío
                continue
            conn.settimeout(None)
            with self.lock_clientes:
                if self.detener.is_set():
                    conn.close()
                    break
                self.clientes.add(conn)
            hilo = threading.Thread(target=self.atender, args=(conn, addr), daemon=True)
            hilo.start()
            self.hilos = [h for h in self.hilos if h.is_alive()]
            self.hilos.append(hilo)

    # ------------------------------------------------------------------
    # Un cliente
    # ------------------------------------------------------------------
    def atender(self, conn, addr):
        """Recibe líneas de un cliente hasta que se va, dice la palabra de salida o se apaga el servidor."""
        ip = addr[0]
        try:
            self.recibir_mensajes(conn, ip)
        except OSError:
            pass  # el cliente se fue de golpe (reset) o el servidor se está cerrando
        except Exception as e:  # nunca un traceback: se informa y se cierra la conexión
            print(f"Error inesperado con {ip}: {e!r}", flush=True)
        finally:
            with self.lock_clientes:
                self.clientes.discard(conn)
            conn.close()

    def recibir_mensajes(self, conn, ip):
        buffer = b""
        descartando = False  # dentro de una línea demasiado larga: se ignora hasta el próximo "\n"
        while not self.detener.is_set():
            datos = conn.recv(65536)
            if not datos:
                return  # el cliente cerró; una línea a medias no es un mensaje
            buffer += datos
            while True:
                fin = buffer.find(b"\n")
                if fin < 0:
                    if not descartando and len(buffer) > MAX_LINEA:
                        self.responder(conn, f"Error: mensaje demasiado largo (máximo {MAX_LINEA} bytes)")
                        descartando = True
                    if descartando:
                        buffer = b""
                    break
                linea, buffer = buffer[:fin], buffer[fin + 1 :]
                if descartando:
                    descartando = False  # termina la línea larga, ya respondida
                    continue
                if len(linea) > MAX_LINEA:
                    self.responder(conn, f"Error: mensaje demasiado largo (máximo {MAX_LINEA} bytes)")
                    continue
                if not self.procesar_linea(conn, linea, ip):
                    return

    def procesar_linea(self, conn, linea, ip):
        """Guarda y responde una línea; devuelve False si el cliente terminó la sesión."""
        if linea.endswith(b"\r"):
            linea = linea[:-1]
        try:
            texto = linea.decode("utf-8")
        except UnicodeDecodeError:
            self.responder(conn, "Error: el mensaje no es texto UTF-8 válido")
            return True
        if texto.strip() == PALABRA_SALIDA:
            self.responder(conn, "Adiós")
            return False
        if not texto.strip():
            self.responder(conn, "Error: mensaje vacío")
            return True
        try:
            fecha = self.guardar(texto, ip)
        except sqlite3.Error as e:
            print(f"Error: no se pudo guardar un mensaje de {ip}: {e}", flush=True)
            self.responder(conn, f"Error: no se pudo guardar el mensaje ({e})")
            return True
        self.responder(conn, f"Mensaje recibido: {fecha}")
        return True

    @staticmethod
    def responder(conn, texto):
        conn.sendall((texto + "\n").encode("utf-8"))

    # ------------------------------------------------------------------
    # Cierre
    # ------------------------------------------------------------------
    def pedir_detener(self, signum=None, frame=None):
        """Manejador de SIGINT y SIGTERM: sólo avisa; el hilo principal hace el cierre."""
        self.detener.set()

    def cerrar(self):
        """Cierra el socket de escucha y los clientes, espera a los hilos y cierra la base."""
        self.detener.set()
        if self.escucha is not None:
            self.escucha.close()
        with self.lock_clientes:
            clientes = list(self.clientes)
        for conn in clientes:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # despierta al hilo bloqueado en recv()/sendall()
        limite = time.monotonic() + ESPERA_HILOS
        for hilo in self.hilos:
            hilo.join(max(0.0, limite - time.monotonic()))
        self.cerrar_db()


def main():
    servidor = Servidor()
    signal.signal(signal.SIGINT, servidor.pedir_detener)
    signal.signal(signal.SIGTERM, servidor.pedir_detener)

    try:
        servidor.abrir_db()
    except sqlite3.Error as e:
        print(f"Error: no se puede usar la base de datos {ARCHIVO_DB}: {e}", flush=True)
        return 1

    try:
        servidor.abrir_socket()
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            print(f"Error: el puerto {PORT} ya está en uso", flush=True)
        else:
            print(f"Error: no se puede escuchar en {HOST}:{PORT}: {e.strerror or e}", flush=True)
        servidor.cerrar_db()
        return 1

    print(f"Servidor escuchando en {HOST}:{PORT} (Ctrl+C para detenerlo)", flush=True)
    try:
        servidor.aceptar()
    finally:
        servidor.cerrar()
    print("Servidor detenido", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
