"""End-to-end: the connection limits, watched on a raw HTTP/2 socket:
keepalive PING and its timeout, idle GOAWAY, GOAWAY on SIGTERM, advertised
SETTINGS, and the header-size limit (python3-grpcio for the last)."""
import grpc
import pytest

import echo_pb2
from conftest import start_server
from raw_h2 import (GOAWAY, NO_ERROR, PING, SETTINGS, connect,
                    frames_until_closed, goaway_error, read_frame)

@pytest.fixture
def limited():
    s = start_server(["--keepalive-interval", "0.3", "--keepalive-timeout",
                      "0.6", "--idle-timeout", "30", "--max-concurrent-streams",
                      "7", "--max-header-bytes", "2048"])
    yield s
    assert s.stop() == 0


def test_settings_advertise_the_limits(limited):
    sock = connect(limited)
    kind, _, _, payload = read_frame(sock)
    assert kind == SETTINGS
    settings = {int.from_bytes(payload[i:i + 2], "big"):
                int.from_bytes(payload[i + 2:i + 6], "big")
                for i in range(0, len(payload), 6)}
    assert settings[0x3] == 7      # MAX_CONCURRENT_STREAMS
    assert settings[0x6] == 2048   # MAX_HEADER_LIST_SIZE
    sock.close()


def test_keepalive_ping_then_close_when_unanswered(limited):
    sock = connect(limited)
    got = frames_until_closed(sock, 3)
    kinds = [f[0] for f in got if f is not None]
    assert PING in kinds, "the server pings a quiet connection"
    assert got[-1] is None, "and closes it when the PING is not answered"
    sock.close()


def test_answered_pings_keep_the_connection(limited):
    sock = connect(limited)
    got = frames_until_closed(sock, 2, answer_pings=True)
    assert [f for f in got if f is not None and f[0] == PING]
    assert None not in got
    sock.close()


def test_idle_connection_gets_goaway():
    s = start_server(["--idle-timeout", "0.4", "--keepalive-interval", "60"])
    try:
        sock = connect(s)
        got = frames_until_closed(sock, 3)
        kinds = [f[0] for f in got if f is not None]
        assert GOAWAY in kinds
        goaway = [f for f in got if f and f[0] == GOAWAY][0]
        assert goaway_error(goaway) == NO_ERROR  # a graceful close
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
        got = frames_until_closed(sock, 5, answer_pings=True)
        goaways = [f for f in got if f is not None and f[0] == GOAWAY]
        assert goaways, "no GOAWAY before the close: %r" % got
        assert goaway_error(goaways[0]) == NO_ERROR
        assert got[-1] is None, "the server closes the connection afterwards"
        sock.close()
        assert s.process.wait(timeout=10) == 0
    finally:
        s.stop()
