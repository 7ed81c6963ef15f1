"""
Trabajo Práctico PFO 1 - Chat básico cliente/servidor
Servidor: recibe los mensajes de un cliente, los guarda en SQLite
y le responde con la fecha y hora de recepción.
"""
import socket
import sqlite3
import datetime

# Configuración
HOST = '127.0.0.1'
PORT = 5000
DB_NAME = 'mensajes.db'


def conectar_db():
    """Abre la base de datos y crea la tabla si hace falta."""
    try:
        con = sqlite3.connect(DB_NAME)
        con.execute('''CREATE TABLE IF NOT EXISTS mensajes (
                            id INTEGER PRIMARY KEY AUTOINCREMENT,
                            contenido TEXT,
                            fecha_envio TEXT,
                            ip_cliente TEXT)''')
        con.commit()
        return con
    except sqlite3.Error as error:
        print('No se pudo acceder a la base de datos:', error)
        return None


def guardar(con, contenido, ip):
    """Inserta un mensaje en la tabla y devuelve la fecha usada."""
    fecha = datetime.datetime.now().strftime('%d/%m/%Y %H:%M:%S')
    cur = con.cursor()
    cur.execute('INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?,?,?)',
                (contenido, fecha, ip))
    con.commit()
    return fecha


def configurar_socket():
    """Crea el socket TCP/IP y lo deja escuchando."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, PORT))
    except OSError as error:
        print(f'Error: no se puede usar el puerto {PORT} ({error})')
        return None
    s.listen(5)
    return s


def atender(cliente, direccion, con):
    """Recibe mensajes de un cliente hasta que se desconecta."""
    print('Conexión establecida con', direccion)
    while True:
        try:
            datos = cliente.recv(1024)
        except ConnectionError:
            break
        if not datos:
            break
        texto = datos.decode('utf-8', 'replace')
        if texto.strip() == 'éxito':
            break
        try:
            fecha = guardar(con, texto, direccion[0])
        except sqlite3.Error as error:
            print('Error al guardar:', error)
            cliente.send('Error al guardar el mensaje\n'.encode())
            continue
        print(f'{direccion[0]} dice: {texto}')
        respuesta = f'Mensaje recibido: [{fecha}]\n'
        try:
            cliente.send(respuesta.encode('utf-8'))
        except ConnectionError:
            break
    cliente.close()
    print('Se desconectó', direccion)


def main():
    con = conectar_db()
    if con is None:
        return
    servidor = configurar_socket()
    if servidor is None:
        return
    print(f'Servidor escuchando en {HOST}:{PORT} ...')
    try:
        while True:
            # se atiende un cliente por vez
            cliente, direccion = servidor.accept()
            atender(cliente, direccion, con)
    except KeyboardInterrupt:
        print('\nCerrando servidor...')
    finally:
        servidor.close()
        con.close()


if __name__ == '__main__':
    main()
