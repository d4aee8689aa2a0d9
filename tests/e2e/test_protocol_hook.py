"""End-to-end: the server's protocol hook (rpc/protocol_hook.h). With the
test hook of jobhub-test-server (JOBHUB_TEST_PROTOCOL_HOOK=1,
tests/echo/echo_protocol_hook.c) HTTP/1.1 connections (served by
rpc/http1) and HTTP/2 requests that are not gRPC reach its one handler,
cleartext and TLS, while gRPC on the same port (and the same connection)
still works; without any hook (JOBHUB_TEST_PROTOCOL_HOOK=none) the answers
are the
server's own: 505, 405, 415, and no ALPN http/1.1."""
import os
import socket
import struct
import subprocess
import time

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

import echo_pb2
from conftest import SERVER, THREADS, Server
from test_transport import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


def start(args=(), hook=True, extra_env=None):
    env = dict(os.environ)
    # Without the test hook, none at all (not jobhubd's HTTP face): the
    # server's own answers.
    env["JOBHUB_TEST_PROTOCOL_HOOK"] = "1" if hook else "none"
    env.update(extra_env or {})
    return Server(SERVER, ["--threads", THREADS, "--shutdown-grace", "5"]
                  + list(args), env=env)


@pytest.fixture(scope="module")
def hooked():
    s = start()
    yield s
    code = s.stop()
    assert code == 0, "exit code %s\n%s" % (code, s.output())


def curl(*args):
    """curl's answer (status line and headers, then the body) as text."""
    result = subprocess.run(["curl", "-sS", "-i", "--max-time", "10"]
                            + list(args), capture_output=True, timeout=20)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode(errors="replace")


def echo(channel, text):
    call = channel.unary_unary(
        "/jobhub.test.Echo/Unary",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=echo_pb2.EchoResponse.FromString)
    return call(echo_pb2.EchoRequest(message=text), timeout=5).message


# With the hook.

def test_http1_request_reaches_the_hook(hooked):
    answer = curl("http://%s/hello?x=1" % hooked.address)
    assert answer.startswith("HTTP/1.1 200 "), answer
    assert answer.endswith(
        "\r\n\r\nhook: GET /hello?x=1 content-type=- body=0\n"), answer


def test_http2_request_that_is_not_grpc_reaches_the_hook(hooked):
    answer = curl("--http2-prior-knowledge", "http://%s/page" % hooked.address)
    assert answer.startswith("HTTP/2 200"), answer
    assert "x-hook: yes" in answer
    assert answer.endswith("hook: GET /page content-type=- body=0\n")


def test_http2_request_body_and_content_type_reach_the_hook(hooked, tmp_path):
    body = "k=" + "v" * 200000  # several DATA frames
    (tmp_path / "body").write_text(body)
    answer = curl("--http2-prior-knowledge", "-H", "content-type: text/json",
                  "--data-binary", "@%s" % (tmp_path / "body"),
                  "http://%s/jobs" % hooked.address)
    assert answer.endswith(
        "hook: POST /jobs content-type=text/json body=%d\n" % len(body)), \
        answer


def test_grpc_web_content_type_is_not_grpc(hooked):
    answer = curl("--http2-prior-knowledge", "-H",
                  "content-type: application/grpc-web+proto", "--data-binary",
                  "x", "http://%s/jobhub.test.Echo/Unary" % hooked.address)
    assert "content-type=application/grpc-web+proto body=1" in answer, answer


def test_hook_streams_a_large_answer_under_the_output_bound(hooked, tmp_path):
    """20 MB through a queue bounded at 8 MiB a stream: the hook's writes
    are refused when full and resume from on_writable."""
    size = 20_000_000
    out = tmp_path / "big"
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "--http2-prior-knowledge", "-o",
         str(out), "http://%s/big/%d" % (hooked.address, size)],
        capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size == size


def test_hook_refusing_the_body_resets_only_that_stream(hooked, tmp_path):
    (tmp_path / "body").write_bytes(b"x" * 100000)
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge",
         "--data-binary", "@%s" % (tmp_path / "body"),
         "http://%s/refuse" % hooked.address],
        capture_output=True, timeout=20)
    assert result.returncode != 0  # the stream was reset
    answer = curl("--http2-prior-knowledge", "http://%s/after" % hooked.address)
    assert answer.startswith("HTTP/2 200"), answer


def test_hook_trailers_are_sent(hooked):
    result = subprocess.run(["nghttp", "-v", "http://%s/trailers" %
                             hooked.address], capture_output=True, timeout=20)
    out = result.stdout.decode(errors="replace")
    assert "x-hook-trailer: done" in out, out
    assert "hook: GET /trailers" in out


def test_grpc_still_works_beside_the_hook(hooked):
    with grpc.insecure_channel(hooked.address) as channel:
        assert echo(channel, "still gRPC") == "still gRPC"


def test_grpc_and_hook_share_one_connection(hooked):
    """Two streams on one HTTP/2 connection: one gRPC call, one plain GET;
    each is answered by its own layer."""
    config = h2.config.H2Configuration(client_side=True,
                                       header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=config)
    host, port = hooked.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        conn.initiate_connection()
        message = echo_pb2.EchoRequest(message="shared").SerializeToString()
        conn.send_headers(1, [(":method", "POST"), (":scheme", "http"),
                              (":authority", hooked.address),
                              (":path", "/jobhub.test.Echo/Unary"),
                              ("content-type", "application/grpc"),
                              ("te", "trailers")])
        conn.send_data(1, struct.pack(">BI", 0, len(message)) + message,
                       end_stream=True)
        conn.send_headers(3, [(":method", "GET"), (":scheme", "http"),
                              (":authority", hooked.address),
                              (":path", "/plain")], end_stream=True)
        s.sendall(conn.data_to_send())
        bodies, headers, ended = {1: b"", 3: b""}, {}, set()
        deadline = time.monotonic() + 10
        while ended != {1, 3} and time.monotonic() < deadline:
            data = s.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    headers[event.stream_id] = dict(event.headers)
                elif isinstance(event, h2.events.TrailersReceived):
                    headers[event.stream_id].update(dict(event.headers))
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] += event.data
                    conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    ended.add(event.stream_id)
            s.sendall(conn.data_to_send())
    assert ended == {1, 3}, (headers, bodies)
    assert headers[1]["content-type"] == "application/grpc"
    assert headers[1]["grpc-status"] == "0"
    answer = echo_pb2.EchoResponse.FromString(bodies[1][5:])
    assert answer.message == "shared"
    assert headers[3][":status"] == "200" and headers[3]["x-hook"] == "yes"
    assert bodies[3] == b"hook: GET /plain content-type=- body=0\n"


def test_tls_alpn_picks_the_hook_or_grpc(pki):
    server = start(["--tls-cert", pki["server.pem"],
                    "--tls-key", pki["server.key"]])
    try:
        url = "https://127.0.0.1:%d/secure" % server.port
        ca = ["--cacert", pki["ca.pem"]]
        # curl offers h2 and http/1.1: h2 wins, the request is not gRPC.
        answer = curl(*ca, url)
        assert answer.startswith("HTTP/2 200"), answer
        assert answer.endswith("hook: GET /secure content-type=- body=0\n")
        # Only http/1.1 offered: the server takes it and hands it over.
        answer = curl(*ca, "--http1.1", url)
        assert answer.startswith("HTTP/1.1 200 "), answer
        assert answer.endswith("hook: GET /secure content-type=- body=0\n"), answer
        credentials = grpc.ssl_channel_credentials(
            open(pki["ca.pem"], "rb").read())
        with grpc.secure_channel(server.address, credentials) as channel:
            assert echo(channel, "tls gRPC") == "tls gRPC"
    finally:
        code = server.stop()
    assert code == 0, server.output()


def test_shutdown_closes_connections_the_hook_holds():
    """An HTTP/1.1 request head never completed: the hook holds the
    connection until shutdown closes it, and the server exits 0 at once."""
    server = start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        started = time.monotonic()
        code = server.stop()
        assert code == 0, server.output()
        assert time.monotonic() - started < 3
        s.settimeout(5)
        assert s.recv(4096) == b""  # closed by the hook's close_loop


# Without the hook: the server's own answers, unchanged.

@pytest.fixture(scope="module")
def plain():
    s = start(hook=False)
    yield s
    code = s.stop()
    assert code == 0, "exit code %s\n%s" % (code, s.output())


def test_without_hook_http1_gets_505(plain):
    answer = curl("http://%s/hello" % plain.address)
    assert answer.startswith("HTTP/1.1 505 "), answer
    assert "this port speaks HTTP/2 (gRPC)" in answer


def test_without_hook_http2_get_gets_405(plain):
    answer = curl("--http2-prior-knowledge", "http://%s/page" % plain.address)
    assert answer.startswith("HTTP/2 405"), answer
    assert answer.endswith("gRPC requires POST\n")


def test_without_hook_http2_post_of_json_gets_415(plain):
    # Without a body: curl 7.88 reports the server's RST_STREAM NO_ERROR
    # after a complete answer to a request still sending as an error.
    answer = curl("--http2-prior-knowledge", "-X", "POST", "-H",
                  "content-type: application/json",
                  "http://%s/jobhub.test.Echo/Unary" % plain.address)
    assert answer.startswith("HTTP/2 415"), answer
    assert answer.endswith("content-type must be application/grpc\n")


def test_without_hook_tls_offers_no_http1(pki):
    server = start(["--tls-cert", pki["server.pem"],
                    "--tls-key", pki["server.key"]], hook=False)
    try:
        result = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--cacert", pki["ca.pem"],
             "--http1.1", "https://127.0.0.1:%d/x" % server.port],
            capture_output=True, timeout=20)
        assert result.returncode != 0, result.stdout
        assert b"alert" in result.stderr or b"SSL" in result.stderr, \
            result.stderr
    finally:
        code = server.stop()
    assert code == 0, server.output()
