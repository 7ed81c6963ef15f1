"""PFO 1 - Cliente: manda mensajes al servidor hasta escribir "éxito"."""
import socket

HOST = "localhost"
PORT = 5000


def main():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.connect((HOST, PORT))
    except ConnectionRefusedError:
        print("Error: el servidor no está disponible")
        return
    print("Conectado al servidor. Escribí 'éxito' para terminar.")
    while True:
        msg = input("> ")
        if msg == "éxito":
            break
        if not msg:
            continue
        s.sendall(msg.encode("utf-8"))
        respuesta = s.recv(1024).decode("utf-8")
        print(respuesta)
    s.close()
    print("Desconectado")


if __name__ == "__main__":
    main()
