"""Hand-built HTTP/2 on a raw socket, for the tests that must send what a
well-behaved client library would not (floods, bombs, silence) or watch
frames a library hides (PING, GOAWAY, SETTINGS): frame building and
reading, HPACK literals without Huffman coding, and a connection that
has sent the client preface."""
import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Frame types (RFC 9113 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0, 1, 2, 3, 4
PING, GOAWAY, WINDOW_UPDATE = 6, 7, 8
# Flags.
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
# Error codes.
NO_ERROR, ENHANCE_YOUR_CALM = 0x0, 0xb


def frame(kind, flags, stream, payload=b""):
    """One frame: the 9-byte header, then payload."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


def read_frame(sock):
    """(type, flags, stream, payload), or None at end of stream."""
    header = b""
    while len(header) < 9:
        chunk = sock.recv(9 - len(header))
        if not chunk:
            return None
        header += chunk
    length = int.from_bytes(header[:3], "big")
    payload = b""
    while len(payload) < length:
        chunk = sock.recv(length - len(payload))
        if not chunk:
            return None
        payload += chunk
    stream = struct.unpack(">I", header[5:9])[0] & 0x7fffffff
    return header[3], header[4], stream, payload


def connect(server, timeout=10):
    """A TCP connection to server (.port on 127.0.0.1) that has sent the
    client preface and an empty SETTINGS."""
    sock = socket.create_connection(("127.0.0.1", server.port),
                                    timeout=timeout)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
    return sock


def frames_until_closed(sock, seconds, answer_pings=False):
    """Every frame the server sends until it closes (None last; a reset
    counts as closed) or seconds pass. answer_pings: acknowledges each
    PING, as a live client does."""
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            f = read_frame(sock)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            f = None
        got.append(f)
        if f is None:
            break
        kind, flags, _, payload = f
        if answer_pings and kind == PING and not flags & ACK:
            sock.sendall(frame(PING, ACK, 0, payload))
    return got


def goaway_error(goaway):
    """The error code of a GOAWAY frame as read_frame returns it."""
    return struct.unpack(">I", goaway[3][4:8])[0]


def hpack_int(value, prefix_bits, first_byte):
    """An HPACK integer (RFC 7541 5.1) in a prefix of prefix_bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = [first_byte | limit]
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name, value, indexed=False):
    """A literal header with a new name, without Huffman coding; indexed:
    also added to the HPACK dynamic table (RFC 7541 6.2.1)."""
    return (b"\x40" if indexed else b"\x00") + \
        hpack_int(len(name), 7, 0) + name + hpack_int(len(value), 7, 0) + value


def request_headers(path):
    """:method POST, :scheme http (static table), then the rest."""
    return b"\x83\x86" + literal(b":path", path) + \
        literal(b":authority", b"localhost") + \
        literal(b"content-type", b"application/grpc") + \
        literal(b"te", b"trailers")
