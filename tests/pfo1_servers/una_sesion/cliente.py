# cliente.py
# PFO 1 - Cliente del chat: manda mensajes hasta que el usuario escribe "éxito"

import socket

HOST = "localhost"
PORT = 5000

cliente = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    cliente.connect((HOST, PORT))
except ConnectionRefusedError:
    print("No se pudo conectar con el servidor")
    exit()

print("Conectado. Escribí 'éxito' para salir.")
while True:
    mensaje = input("Mensaje: ")
    cliente.send(mensaje.encode("utf-8"))
    if mensaje == "éxito":
        break
    respuesta = cliente.recv(1024)
    print("Servidor:", respuesta.decode("utf-8"))

cliente.close()
print("Chat terminado")
