"""Opens N idle HTTP/2 (h2c, prior knowledge) connections to 127.0.0.1:PORT,
completes the SETTINGS exchange on each, prints "ready" and holds them
until stdin closes. Usage: hold_connections.py PORT N"""
import socket
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    held = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(PREFACE + EMPTY_SETTINGS)
        held.append(s)
    for s in held:  # the server's SETTINGS: the connection is really up
        if not s.recv(9):
            sys.exit("connection closed by the server")
    print("ready", flush=True)
    sys.stdin.read()
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
