"""End-to-end: the connection limits, watched on a raw HTTP/2 socket:
keepalive PING and its timeout, idle GOAWAY, GOAWAY on SIGTERM, advertised
SETTINGS, and the header-size limit (python3-grpcio for the last)."""
import socket
import struct
import time

import grpc
import pytest

import echo_pb2
from conftest import start_server

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, GOAWAY = 4, 6, 7


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


def read_frame(sock):
    """Returns (type, flags, payload), or None at end of stream."""
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
    return header[3], header[4], payload


def connect(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
    return sock


def frames_until(sock, seconds, answer_pings=False):
    """Every frame received within seconds (or until the server closes)."""
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            f = read_frame(sock)
        except (socket.timeout, ConnectionResetError):
            if got and got[-1] is None:
                break
            continue
        got.append(f)
        if f is None:
            break
        kind, flags, payload = f
        if answer_pings and kind == PING and not flags & 1:
            sock.sendall(frame(PING, 1, 0, payload))
    return got


@pytest.fixture
def limited():
    s = start_server(["--keepalive-interval", "0.3", "--keepalive-timeout",
                      "0.6", "--idle-timeout", "30", "--max-concurrent-streams",
                      "7", "--max-header-bytes", "2048"])
    yield s
    assert s.stop() == 0


def test_settings_advertise_the_limits(limited):
    sock = connect(limited)
    kind, _, payload = read_frame(sock)
    assert kind == SETTINGS
    settings = {int.from_bytes(payload[i:i + 2], "big"):
                int.from_bytes(payload[i + 2:i + 6], "big")
                for i in range(0, len(payload), 6)}
    assert settings[0x3] == 7      # MAX_CONCURRENT_STREAMS
    assert settings[0x6] == 2048   # MAX_HEADER_LIST_SIZE
    sock.close()


def test_keepalive_ping_then_close_when_unanswered(limited):
    sock = connect(limited)
    got = frames_until(sock, 3)
    kinds = [f[0] for f in got if f is not None]
    assert PING in kinds, "the server pings a quiet connection"
    assert got[-1] is None, "and closes it when the PING is not answered"
    sock.close()


def test_answered_pings_keep_the_connection(limited):
    sock = connect(limited)
    got = frames_until(sock, 2, answer_pings=True)
    assert [f for f in got if f is not None and f[0] == PING]
    assert None not in got
    sock.close()


def test_idle_connection_gets_goaway():
    s = start_server(["--idle-timeout", "0.4", "--keepalive-interval", "60"])
    try:
        sock = connect(s)
        got = frames_until(sock, 3)
        kinds = [f[0] for f in got if f is not None]
        assert GOAWAY in kinds
        error = struct.unpack(">I", [f for f in got if f and f[0] == GOAWAY][0][2][4:8])[0]
        assert error == 0  # NO_ERROR: a graceful close
        sock.close()
    finally:
        assert s.stop() == 0


def test_headers_over_the_limit_are_refused(limited):
    with grpc.insecure_channel(limited.address) as ch:
        call = ch.unary_unary("/jobhub.test.Echo/Unary",
                              request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=echo_pb2.EchoResponse.FromString)
        assert call(echo_pb2.EchoRequest(message="small"), timeout=5,
                    metadata=[("x-small", "y")]).message == "small"
        with pytest.raises(grpc.RpcError) as error:
            call(echo_pb2.EchoRequest(), timeout=5,
                 metadata=[("x-big", "v" * 4096)])
        # RST_STREAM ENHANCE_YOUR_CALM, which gRPC maps to this code: the
        # server stops at the first header over the limit (rpc/server.c).
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The connection survives: the limit is per request.
        assert call(echo_pb2.EchoRequest(message="again"),
                    timeout=5).message == "again"


def test_sigterm_sends_goaway_to_open_connections():
    """Graceful shutdown tells every open connection with GOAWAY (NO_ERROR)
    before it closes, and the process still exits 0."""
    s = start_server()
    try:
        sock = connect(s)
        assert read_frame(sock)[0] == SETTINGS
        s.process.send_signal(15)
        got = frames_until(sock, 5, answer_pings=True)
        goaways = [f for f in got if f is not None and f[0] == GOAWAY]
        assert goaways, "no GOAWAY before the close: %r" % got
        assert struct.unpack(">I", goaways[0][2][4:8])[0] == 0
        assert got[-1] is None, "the server closes the connection afterwards"
        sock.close()
        assert s.process.wait(timeout=10) == 0
    finally:
        s.stop()
