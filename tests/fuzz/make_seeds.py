"""Writes seed inputs for fuzz_server into a folder: valid HTTP/2 frame
sequences (the target prepends the client preface) for each call shape,
gzip, metadata, and control frames, so the fuzzer starts from real
traffic. Usage: make_seeds.py DIR"""
import os
import struct
import sys
import zlib


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


def literal(name, value):  # HPACK literal without indexing, new name
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def headers(stream, path, extra=(), end_stream=False):
    block = b"".join(literal(n, v) for n, v in [
        (":method", "POST"), (":scheme", "http"), (":path", path),
        (":authority", "fuzz"), ("content-type", "application/grpc"),
        ("te", "trailers")] + list(extra))
    return frame(1, 0x4 | (0x1 if end_stream else 0), stream, block)


def message(body, compressed=False):
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(body)) + body


def data(stream, payload, end_stream=True):
    return frame(0, 0x1 if end_stream else 0, stream, payload)


def field(number, value):  # protobuf: string/bytes or varint field
    if isinstance(value, int):
        return bytes([number << 3]) + bytes([value])
    return bytes([number << 3 | 2, len(value)]) + value


SETTINGS = frame(4, 0, 0)
ECHO = "/jobhub.test.Echo/"

seeds = {
    "unary": headers(1, ECHO + "Unary") + data(1, message(field(1, b"hi"))),
    "unary_timeout_metadata": headers(1, ECHO + "Unary", [
        ("grpc-timeout", "100m"), ("x-echo-a", "b"), ("x-echo-k-bin", "AQI")])
        + data(1, message(field(1, b"hi") + field(7, 1))),
    "server_stream": headers(1, ECHO + "ServerStream")
        + data(1, message(field(1, b"s") + field(3, 3))),
    "client_stream": headers(1, ECHO + "ClientStream")
        + data(1, message(field(1, b"a")), end_stream=False)
        + data(1, message(field(1, b"b"))),
    "bidi": headers(1, ECHO + "Bidi") + data(1, message(field(1, b"x")),
                                            end_stream=False)
        + data(1, message(field(5, 9))),
    "gzip": headers(1, ECHO + "Unary", [("grpc-encoding", "gzip")])
        + data(1, message(zlib.compress(field(1, b"z" * 100), wbits=31),
                          compressed=True)),
    "health": headers(1, "/grpc.health.v1.Health/Check") + data(1, message(b"")),
    "health_watch": headers(1, "/grpc.health.v1.Health/Watch")
        + data(1, message(b"")) + frame(3, 0, 1, struct.pack(">I", 8)),
    "reflection": headers(1, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
        + data(1, message(field(7, b"")), end_stream=False)
        + data(1, message(field(4, b"jobhub.test.Echo"))),
    "two_streams_ping_goaway": headers(1, ECHO + "Unary") + headers(3, ECHO + "Unary")
        + data(3, message(b"")) + frame(6, 0, 0, b"12345678")
        + data(1, message(b"")) + frame(7, 0, 0, struct.pack(">II", 3, 0)),
    "window_update": frame(8, 0, 0, struct.pack(">I", 65536))
        + headers(1, ECHO + "Unary") + data(1, message(b"")),
}

os.makedirs(sys.argv[1], exist_ok=True)
for name, body in seeds.items():
    with open(os.path.join(sys.argv[1], "seed_" + name), "wb") as f:
        f.write(SETTINGS + body)
