"""End-to-end: HTTP/1.1 on the server's port (rpc/http1), through the test
server's protocol hook (JOBHUB_TEST_PROTOCOL_HOOK=1,
tests/echo/echo_protocol_hook.c), with real clients: curl, python's
http.client, and raw sockets where a client would hide what is tested
(pipelining, malformed requests, slowloris)."""
import http.client
import socket
import subprocess
import time

import grpc
import pytest

from test_protocol_hook import curl, start as start_with_hook
from test_transport import echo, pki  # noqa: F401 (pki: a fixture)

HEADER_TIMEOUT = 2.0
IDLE_TIMEOUT = 3.0
MAX_BODY = 100000
MAX_HEADER = 8192


def start(args=()):
    return start_with_hook(args, extra_env={
        "JOBHUB_TEST_HTTP1_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "JOBHUB_TEST_HTTP1_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
        "JOBHUB_TEST_HTTP1_MAX_BODY": str(MAX_BODY),
        "JOBHUB_TEST_HTTP1_MAX_HEADER": str(MAX_HEADER),
    })


@pytest.fixture(scope="module")
def server():
    s = start()
    yield s
    s.stop()


def run_curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "10"] + list(args),
                          capture_output=True, timeout=30)


def connect(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def read_until_closed(s, limit=10.0):
    """What the server sends until it closes (or limit seconds pass: then
    the text ends with <open>)."""
    data = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data + b"<open>"
        except ConnectionResetError:
            return data + b"<reset>"
        if not chunk:
            return data
        data += chunk
    return data + b"<open>"


def read_response(s):
    """One response read with http.client from a raw socket."""
    response = http.client.HTTPResponse(s)
    response.begin()
    return response.status, dict(response.getheaders()), response.read()


def test_curl_without_flags_speaks_http11(server):
    answer = curl("http://%s/hello?x=1" % server.address)
    assert answer.startswith("HTTP/1.1 200 OK\r\n"), answer
    assert "content-length: 43\r\n" in answer
    assert answer.endswith("\r\n\r\nhook: GET /hello?x=1 content-type=- body=0\n")


def test_pseudo_headers_are_synthesized_and_names_lower_cased(server):
    answer = curl("-H", "X-Mixed-Case: Value", "-H", "Connection: keep-alive",
                  "http://%s/headers?q=1" % server.address)
    body = answer.split("\r\n\r\n", 1)[1]
    lines = body.splitlines()
    assert lines[:4] == [":method: GET", ":scheme: http", ":path: /headers?q=1",
                         ":authority: %s" % server.address], body
    assert "x-mixed-case: Value" in lines
    # Hop-by-hop headers and Host are the connection's, not the request's.
    assert not any(line.startswith(("host:", "connection:")) for line in lines)


def test_keep_alive_reuses_the_connection(server):
    result = run_curl("-v", "http://%s/a" % server.address,
                      "http://%s/b" % server.address)
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 0, err
    assert "Re-using existing connection" in err, err
    assert result.stdout == (b"hook: GET /a content-type=- body=0\n"
                             b"hook: GET /b content-type=- body=0\n")


def test_three_requests_on_one_http_client_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for i in range(3):
            conn.request("POST", "/echo", body=b"n%d" % i)
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == b"n%d" % i
        assert conn.sock is not None  # never reconnected
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(server):
    with connect(server) as s:
        s.sendall(b"GET /stream/3 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
                  b"hello"
                  b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_until_closed(s)
    assert not data.endswith(b"<open>"), data
    first = data.index(b"chunk 2")
    second = data.index(b"\r\n\r\nhello")
    third = data.index(b"hook: GET /last")
    assert first < second < third, data
    assert data.count(b"HTTP/1.1 200 OK") == 3


def test_chunked_request_body(server):
    body = b"x" * 5000
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-H", "Transfer-Encoding: chunked",
         "--data-binary", "@-", "http://%s/echo" % server.address],
        input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == body


def test_chunked_response_without_content_length(server):
    answer = curl("--raw", "http://%s/stream/3" % server.address)
    assert "transfer-encoding: chunked\r\n" in answer, answer
    assert "content-length" not in answer
    assert answer.endswith("8\r\nchunk 2\n\r\n0\r\n\r\n"), answer


def test_trailers_only_when_the_request_says_te_trailers(server):
    with connect(server) as s:
        s.sendall(b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n"
                  b"Connection: close\r\n\r\n")
        with_te = read_until_closed(s)
    with connect(server) as s:
        s.sendall(b"GET /trailers HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        without = read_until_closed(s)
    assert with_te.endswith(b"\r\n0\r\nx-hook-trailer: done\r\n\r\n"), with_te
    assert without.endswith(b"\r\n0\r\n\r\n"), without
    assert b"x-hook-trailer" not in without


def test_expect_100_continue(server, tmp_path):
    body = b"y" * 3000
    (tmp_path / "body").write_bytes(body)
    result = run_curl("-v", "-H", "Expect: 100-continue", "--data-binary",
                      "@%s" % (tmp_path / "body"),
                      "http://%s/echo" % server.address)
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 0, err
    assert "< HTTP/1.1 100 Continue" in err, err
    assert result.stdout == body


def test_expect_100_continue_over_the_limit_is_413_at_once(server):
    with connect(server) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1))
        data = read_until_closed(s, 5)
    assert data.startswith(b"HTTP/1.1 413 "), data
    assert b"100 Continue" not in data
    assert not data.endswith(b"<open>")


def test_declared_body_over_the_limit_is_413(server, tmp_path):
    (tmp_path / "body").write_bytes(b"z" * (MAX_BODY + 1))
    answer = curl("--data-binary", "@%s" % (tmp_path / "body"),
                  "http://%s/echo" % server.address)
    assert answer.startswith("HTTP/1.1 413 "), answer
    assert "connection: close" in answer


def test_chunked_body_over_the_limit_is_413(server):
    with connect(server) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (10000, b"c" * 10000)
        try:
            for _ in range(MAX_BODY // 10000 + 2):
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = read_until_closed(s, 5)
    assert data.startswith(b"HTTP/1.1 413 "), data
    assert not data.endswith(b"<open>")


def test_header_block_over_the_limit_is_431(server):
    with connect(server) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n"
                  % (b"b" * MAX_HEADER))
        data = read_until_closed(s, 5)
    assert data.startswith(b"HTTP/1.1 431 "), data
    assert not data.endswith(b"<open>")


@pytest.mark.parametrize("garbage", [
    b"garbage\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"\x00\x01\x02\x03 HTTP/1.1\r\n\r\n",
    # Request smuggling: both framings.
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
])
def test_malformed_request_is_400_and_closed(server, garbage):
    with connect(server) as s:
        s.sendall(garbage)
        data = read_until_closed(s, 5)
    assert data.startswith(b"HTTP/1.1 400 "), data
    assert not data.endswith(b"<open>")


def test_slowloris_head_is_closed_by_the_header_timeout(server):
    """One byte a second, never a whole head: closed after HEADER_TIMEOUT
    (well before the head could complete), while the bytes keep coming."""
    head = b"/ HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100
    with connect(server) as s:
        # The first bytes at once: the server's sniffing reads four before
        # the connection is HTTP/1.1's, and the timeout starts there.
        s.sendall(b"GET ")
        started = time.monotonic()
        closed_after = None
        for byte in head:
            try:
                s.sendall(bytes([byte]))
                s.settimeout(1.0)
                if s.recv(4096) == b"":
                    closed_after = time.monotonic() - started
                    break
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None, "never closed"
    assert HEADER_TIMEOUT - 0.5 <= closed_after <= HEADER_TIMEOUT + 2.5, \
        closed_after


def test_idle_keep_alive_connection_is_closed(server):
    with connect(server) as s:
        s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = read_response(s)
        assert status == 200
        started = time.monotonic()
        s.settimeout(IDLE_TIMEOUT + 5)
        assert s.recv(4096) == b""
        waited = time.monotonic() - started
    assert IDLE_TIMEOUT - 0.5 <= waited <= IDLE_TIMEOUT + 2.5, waited


def test_http10_closes_unless_keep_alive(server):
    with connect(server) as s:
        s.sendall(b"GET /a HTTP/1.0\r\n\r\n")
        data = read_until_closed(s, 5)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert data.endswith(b"hook: GET /a content-type=- body=0\n"), data
    # With keep-alive: two answers on one connection.
    with connect(server) as s:
        s.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, body = read_response(s)
        assert status == 200 and headers["connection"] == "keep-alive"
        s.sendall(b"GET /b HTTP/1.0\r\n\r\n")
        data = read_until_closed(s, 5)
    assert data.endswith(b"hook: GET /b content-type=- body=0\n"), data
    # A body without content-length ends with the connection.
    with connect(server) as s:
        s.sendall(b"GET /stream/2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data = read_until_closed(s, 5)
    assert b"transfer-encoding" not in data
    assert data.endswith(b"\r\n\r\nchunk 0\nchunk 1\n"), data


def test_answer_before_the_body_then_the_body_is_read_and_dropped(server):
    with connect(server) as s:
        s.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 10\r\n\r\n")
        status, _, body = read_response(s)
        assert (status, body) == (200, b"early\n")
        # The body still comes, and is dropped; the connection lives on.
        s.sendall(b"0123456789GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(s)
        assert (status, body) == (200, b"hook: GET /next content-type=- body=0\n")


def test_answer_before_100_continue_closes_after_it(server):
    """The client was told nothing to go on: it may never send the body,
    so the connection ends with the answer instead of waiting for it."""
    with connect(server) as s:
        s.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\nExpect: 100-continue"
                  b"\r\nContent-Length: 10\r\n\r\n")
        data = read_until_closed(s, 5)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert b"100 Continue" not in data and b"connection: close\r\n" in data
    assert data.endswith(b"\r\n\r\nearly\n"), data


def test_upgrade_h2c_is_ignored(server):
    with connect(server) as s:
        s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, "
                  b"HTTP2-Settings\r\nUpgrade: h2c\r\n"
                  b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
                  b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_until_closed(s)
    assert b"101" not in data.split(b"\r\n", 1)[0]
    assert data.count(b"HTTP/1.1 200 OK") == 2, data
    assert data.endswith(b"hook: GET /b content-type=- body=0\n")


def test_large_answer_under_the_output_bound(server, tmp_path):
    size = 20_000_000
    out = tmp_path / "big"
    result = run_curl("-o", str(out), "http://%s/big/%d" % (server.address,
                                                            size))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size == size


def test_client_gone_mid_stream_cancels_and_server_stays_healthy(server):
    before = int(curl("http://%s/cancels" % server.address)
                 .split("\r\n\r\n", 1)[1])
    with connect(server) as s:
        s.sendall(b"GET /stream/100 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"chunk 0" in s.recv(4096) + s.recv(4096)
    deadline = time.monotonic() + 5
    cancels = before
    while cancels == before and time.monotonic() < deadline:
        time.sleep(0.1)
        cancels = int(curl("http://%s/cancels" % server.address)
                      .split("\r\n\r\n", 1)[1])
    assert cancels == before + 1
    # Mid-request too: a body announced and never sent.
    with connect(server) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100"
                  b"\r\n\r\nhalf")
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while cancels == before + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
        cancels = int(curl("http://%s/cancels" % server.address)
                      .split("\r\n\r\n", 1)[1])
    assert cancels == before + 2
    assert curl("http://%s/ok" % server.address).startswith("HTTP/1.1 200")


def test_grpc_on_the_same_port_is_unaffected(server):
    with grpc.insecure_channel(server.address) as channel:
        assert echo(channel, "beside http/1.1") == "beside http/1.1"
    answer = curl("--http2-prior-knowledge", "http://%s/h2" % server.address)
    assert answer.startswith("HTTP/2 200"), answer
    assert answer.endswith("hook: GET /h2 content-type=- body=0\n")


def test_tls_http11_and_h2_on_one_port(pki):
    server = start(["--tls-cert", pki["server.pem"],
                    "--tls-key", pki["server.key"]])
    try:
        ca = ["--cacert", pki["ca.pem"]]
        base = "https://127.0.0.1:%d" % server.port
        result = run_curl(*ca, "-v", "--http1.1", base + "/a", base + "/headers")
        err = result.stderr.decode(errors="replace")
        assert result.returncode == 0, err
        assert "ALPN: server accepted http/1.1" in err, err
        assert "Re-using existing connection" in err, err
        out = result.stdout.decode()
        assert out.startswith("hook: GET /a content-type=- body=0\n"), out
        assert ":scheme: https\n" in out
        answer = curl(*ca, base + "/b")
        assert answer.startswith("HTTP/2 200"), answer
        credentials = grpc.ssl_channel_credentials(
            open(pki["ca.pem"], "rb").read())
        with grpc.secure_channel(server.address, credentials) as channel:
            assert echo(channel, "tls gRPC") == "tls gRPC"
    finally:
        server.stop()


def test_shutdown_closes_http1_connections_mid_exchange():
    server = start()
    with connect(server) as s:
        s.sendall(b"GET /stream/1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in s.recv(4096)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3
        assert read_until_closed(s, 5).endswith(b"<open>") is False
