"""Opens COUNT idle HTTP/2 (h2c, prior knowledge) connections to
127.0.0.1:PORT and completes the SETTINGS exchange on each (client preface
and SETTINGS, the server's SETTINGS read and acknowledged), prints
"ready COUNT" and holds them, idle, until SIGTERM or HOLD_SECONDS
(default 120), whichever comes first.
Usage: hold_connections.py PORT COUNT [HOLD_SECONDS]
Exit codes: 0 held and closed, 1 a connection failed, 2 usage error."""
import signal
import socket
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
FRAME_SETTINGS = 0x4
FLAG_ACK = 0x1
TIMEOUT = 10  # seconds for any one connect or read


def read_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        data += chunk
    return data


def await_server_settings(sock):
    """Reads frames until the server's own (non-ACK) SETTINGS; at most 8."""
    for _ in range(8):
        header = read_exactly(sock, 9)
        length = int.from_bytes(header[0:3], "big")
        frame_type, flags = header[3], header[4]
        read_exactly(sock, length)
        if frame_type == FRAME_SETTINGS and not flags & FLAG_ACK:
            return
    raise ConnectionError("no SETTINGS from the server in its first frames")


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    port, count = int(sys.argv[1]), int(sys.argv[2])
    hold_seconds = float(sys.argv[3]) if len(sys.argv) == 4 else 120.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    held = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port),
                                            timeout=TIMEOUT)
            sock.sendall(PREFACE + EMPTY_SETTINGS)
            held.append(sock)
        for sock in held:
            await_server_settings(sock)
            sock.sendall(SETTINGS_ACK)
    except OSError as error:
        print(f"hold_connections: connection {len(held)}: {error}",
              file=sys.stderr)
        return 1
    print(f"ready {len(held)}", flush=True)
    time.sleep(hold_seconds)
    for sock in held:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
