"""Writes seed inputs for fuzz_server into a folder, each starting with
the mode byte of fuzz_server.c: valid HTTP/2 frame sequences (mode 0: the
target prepends the client preface; mode 3: the same inside TLS) for each
call shape, gzip, metadata, control frames, and the hub's Jobs and
Workers calls (among them the requests rpc/wire_check refuses); HTTP/1.1
requests and stray bytes (mode 1); a TLS ClientHello (mode 2). The
committed corpus tests/fuzz/corpus/fuzz_server/ was made by this script.
Usage: make_seeds.py DIR"""
import os
import ssl
import struct
import sys
import zlib

MODE_H2, MODE_RAW, MODE_RAW_TLS, MODE_TLS_H2 = range(4)


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


def literal(name, value):  # HPACK literal without indexing, new name
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def headers(stream, path, extra=(), end_stream=False,
            content_type="application/grpc", method="POST"):
    block = b"".join(literal(n, v) for n, v in [
        (":method", method), (":scheme", "http"), (":path", path),
        (":authority", "fuzz"), ("content-type", content_type),
        ("te", "trailers")] + list(extra))
    return frame(1, 0x4 | (0x1 if end_stream else 0), stream, block)


def message(body, compressed=False):
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(body)) + body


def data(stream, payload, end_stream=True):
    return frame(0, 0x1 if end_stream else 0, stream, payload)


def varint(n):
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, value):  # protobuf: string/bytes or varint field
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def nested_struct(levels):  # google.protobuf.Struct {"k": {"k": ...}}
    body = b""
    for _ in range(levels):
        body = field(1, field(1, b"k") + field(2, field(5, body)))
    return body


def client_hello():
    """The first flight of a TLS client offering h2."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="fuzz")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


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

JOBS, WORKERS = "/jobhub.v1.Jobs/", "/jobhub.v1.Workers/"
SUBMIT = field(1, 1) + field(2, 1) + field(3, b"subject") \
    + field(4, field(3, b"m") + field(5, nested_struct(2))) \
    + field(5, b"\x00payload") + field(6, field(1, b"k") + field(2, b"v"))
hub_seeds = {
    "submit": headers(1, JOBS + "Submit") + data(1, message(SUBMIT)),
    "submit_get_list": headers(1, JOBS + "Submit") + data(1, message(SUBMIT))
        + headers(3, JOBS + "Get") + data(3, message(field(1, b"0000000000000001")))
        + headers(5, JOBS + "List") + data(5, message(field(2, 1) + field(3, 1))),
    "watch_history_cancel": headers(1, JOBS + "Watch")
        + data(1, message(field(3, 1) + field(4, 1)), end_stream=False)
        + headers(3, JOBS + "History") + data(3, message(field(1, b"1")))
        + headers(5, JOBS + "Cancel") + data(5, message(field(1, b"1"))),
    "register_lease": headers(1, WORKERS + "Register")
        + data(1, message(field(1, b"w") + field(2, 1) + field(3, 1)))
        + headers(3, WORKERS + "Lease")
        + data(3, message(field(1, b"w") + field(3, 1) + field(4, 1)
                          + field(6, 10))),
    "connect": headers(1, WORKERS + "Connect")
        + data(1, message(field(1, field(1, b"w") + field(3, 1) + field(4, 1)
                                + field(6, 2))), end_stream=False)
        + data(1, message(field(7, b""))),
    # Refused by rpc/wire_check: too deep, not UTF-8, a NUL; and a deep
    # request to a method without a handler.
    "submit_deep": headers(1, JOBS + "Submit")
        + data(1, message(field(4, field(5, nested_struct(40))))),
    "submit_bad_strings": headers(1, JOBS + "Submit")
        + data(1, message(field(3, b"\xff") + field(6, field(1, b"a\x00")))),
    "unimplemented_deep": headers(1, "/jobhub.v1.Hub/UpdateSettings")
        + data(1, message(field(1, nested_struct(40)))),
}
# The HTTP face: gRPC-Web (binary, text), Connect (unary JSON and proto,
# streams of JSON and proto envelopes), a CORS preflight, no route.
WEB, WEB_TEXT = "application/grpc-web+proto", "application/grpc-web-text"
face_seeds = {
    "grpc_web": headers(1, ECHO + "Unary", content_type=WEB,
                        extra=[("x-echo-a", "1")])
        + data(1, message(field(1, b"hi") + field(7, 1))),
    "grpc_web_text": headers(1, JOBS + "Get", content_type=WEB_TEXT)
        + data(1, b"AAAAAAMKATE=", end_stream=False) + data(1, b""),
    "connect_json": headers(1, JOBS + "Submit",
                            content_type="application/json",
                            extra=[("connect-timeout-ms", "5000")])
        + data(1, b'{"poolId":1,"jobTypeId":1,"config":{"moduleParams":'
                  b'{"a":[1,{"b":null}]}}}'),
    "connect_proto": headers(1, JOBS + "Get",
                             content_type="application/proto")
        + data(1, field(1, b"1")),
    "connect_json_stream": headers(1, ECHO + "Bidi",
                                   content_type="application/connect+json")
        + data(1, message(b'{"message":"a"}'), end_stream=False)
        + data(1, message(b'{"message":"b","repeat":2}')),
    "connect_proto_stream": headers(1, ECHO + "ServerStream",
                                    content_type="application/connect+proto")
        + data(1, message(field(1, b"s") + field(3, 3))),
    "preflight": headers(1, JOBS + "Get", method="OPTIONS", end_stream=True,
                         content_type="text/plain",
                         extra=[("origin", "https://app.example"),
                                ("access-control-request-method", "POST")]),
    "no_route": headers(1, "/nothing/1", method="GET", end_stream=True,
                        content_type="application/json"),
    "json_get": headers(1, "/v1/jobs/1?x=%41", method="GET", end_stream=True,
                        content_type="application/json"),
    "json_submit": headers(1, "/v1/jobs?priority=2", content_type=
                           "application/json", extra=[("x-request-timeout",
                                                       "1.5")])
        + data(1, b'{"poolId":1,"jobTypeId":1,"config":{"moduleParams":'
                  b'{"a":1}}}'),
    "json_watch": headers(1, "/v1/jobs:watch?poolId=1&anyJobType=true",
                          method="GET", end_stream=True,
                          content_type="application/json"),
    "legacy_get_work": headers(1, "/getWork?client=g&pool=1&jobType=1",
                               end_stream=True, content_type="text/plain"),
    "legacy_store": headers(1, "/storeResult/t?client=g", method="PUT",
                            content_type="application/json")
        + data(1, b'{"r":1}'),
    "legacy_jobs": headers(1, "/jobs", content_type="application/json")
        + data(1, b'{"start":1,"end":2}'),
}
raw_seeds = {
    "http1_get": b"GET / HTTP/1.1\r\nHost: fuzz\r\n\r\n",
    "http1_post": b"POST /jobhub.v1.Jobs/Submit HTTP/1.1\r\nHost: fuzz\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    "http1_json_get": b"GET /v1/jobs/1?x=1 HTTP/1.1\r\nHost: fuzz\r\n\r\n"
        b"GET /jobs/2/results HTTP/1.1\r\nHost: fuzz\r\n\r\n",
    "http1_json_submit": b"POST /v1/jobs HTTP/1.1\r\nHost: fuzz\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n9\r\n{\"poolId\"\r\n4\r\n:1}\n\r\n0\r\n\r\n",
    "http1_get_work": b"POST /getWork?client=g&pool=1&jobType=1 HTTP/1.1\r\n"
        b"Host: fuzz\r\nContent-Length: 0\r\n\r\n",
    "http1_upgrade": b"GET / HTTP/1.1\r\nHost: fuzz\r\nConnection: Upgrade, "
        b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__"
        b"\r\n\r\n",
    "preface_raw": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SETTINGS
        + seeds["unary"],
    "garbage": b"\x16\x03\x01\x00\x05hello",
}

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def write(name, mode, body):
    with open(os.path.join(out, "seed_" + name), "wb") as f:
        f.write(bytes([mode]) + body)


for name, body in (list(seeds.items()) + list(hub_seeds.items())
                   + list(face_seeds.items())):
    write(name, MODE_H2, SETTINGS + body)
for name in ("unary", "submit_get_list", "connect"):
    body = seeds.get(name) or hub_seeds[name]
    write("tls_" + name, MODE_TLS_H2, SETTINGS + body)
for name, body in raw_seeds.items():
    write(name, MODE_RAW, body)
write("tls_client_hello", MODE_RAW_TLS, client_hello())
write("tls_raw_http1", MODE_RAW_TLS, raw_seeds["http1_get"])
