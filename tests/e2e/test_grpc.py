"""End-to-end: the real server driven by Debian's python3-grpcio."""
import concurrent.futures
import socket
import struct
import subprocess
import tempfile
import threading
import time

import grpc
import pytest

import echo_pb2
import health_pb2

ECHO = "/jobhub.test.Echo/"


def unary(channel, method, request, response_class=echo_pb2.EchoResponse, **kw):
    call = channel.unary_unary(ECHO + method,
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response_class.FromString)
    return call(request, **kw)


def cancel_count(channel):
    return unary(channel, "CancelCount", echo_pb2.EchoRequest()).count


def wait_for(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


# The basic exchange.

def test_unary_echoes_message_and_payload(channel):
    payload = bytes(range(256)) * 4
    response = unary(channel, "Unary",
                     echo_pb2.EchoRequest(message="hello", payload=payload),
                     timeout=5)
    assert response.message == "hello"
    assert response.payload == payload
    assert response.index == 0 and response.count == 0


def test_empty_request_gets_empty_response(channel):
    response, state = channel.unary_unary(
        ECHO + "Unary", request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=echo_pb2.EchoResponse.FromString).with_call(
            echo_pb2.EchoRequest(), timeout=5)
    assert response == echo_pb2.EchoResponse()
    assert state.code() == grpc.StatusCode.OK


# Health.

def health_check(channel, service):
    call = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=health_pb2.HealthCheckResponse.FromString)
    return call(health_pb2.HealthCheckRequest(service=service), timeout=5)


def test_health_check_overall_and_per_service(channel):
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health_check(channel, "").status == serving
    assert health_check(channel, "jobhub.test.Echo").status == serving
    assert health_check(channel, "jobhub.v1.Jobs").status == serving


def test_health_check_unknown_service_is_not_found(channel):
    with pytest.raises(grpc.RpcError) as error:
        health_check(channel, "no.such.Service")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no.such.Service" in error.value.details()


def test_health_watch_sends_current_status_first(channel):
    call = channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=health_pb2.HealthCheckResponse.FromString)
    stream = call(health_pb2.HealthCheckRequest(service=""), timeout=5)
    first = next(stream)
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    stream.cancel()


def test_health_watch_of_unknown_service_says_service_unknown(channel):
    call = channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=health_pb2.HealthCheckResponse.FromString)
    stream = call(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
    assert next(stream).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    stream.cancel()


def test_health_watch_sees_not_serving_on_shutdown(fresh_server):
    with grpc.insecure_channel(fresh_server.address) as ch:
        call = ch.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=health_pb2.HealthCheckResponse.FromString)
        stream = call(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        started = time.monotonic()
        fresh_server.process.send_signal(15)
        assert next(stream).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as error:
            next(stream)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        # The watch must not hold the drain for the whole grace period.
        assert fresh_server.process.wait(timeout=10) == 0
        assert time.monotonic() - started < 3


# Errors the runtime answers.

def test_unknown_method_is_unimplemented(channel):
    with pytest.raises(grpc.RpcError) as error:
        unary(channel, "NoSuchMethod", echo_pb2.EchoRequest(), timeout=5)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "NoSuchMethod" in error.value.details()


def test_unknown_service_is_unimplemented(channel):
    call = channel.unary_unary("/no.such.Service/Call")
    with pytest.raises(grpc.RpcError) as error:
        call(b"", timeout=5)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("path", ["/jobhub.v1.Outputs/Add",
                                  "/jobhub.v1.Engine/Fit",
                                  "/jobhub.v1.Hub/Status"])
def test_unbuilt_jobhub_method_is_unimplemented_naming_it(channel, path):
    call = channel.unary_unary(path)
    with pytest.raises(grpc.RpcError) as error:
        call(b"", timeout=5)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert path[1:] in error.value.details()


def test_garbage_request_is_invalid_argument(channel):
    call = channel.unary_unary(ECHO + "Unary")
    with pytest.raises(grpc.RpcError) as error:
        call(b"\xff\xff\xff", timeout=5)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "EchoRequest" in error.value.details()


def test_five_mib_message_is_resource_exhausted_then_channel_works(channel):
    big = echo_pb2.EchoRequest(payload=b"x" * (5 << 20))
    with pytest.raises(grpc.RpcError) as error:
        unary(channel, "Unary", big, timeout=10)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert unary(channel, "Unary", echo_pb2.EchoRequest(message="after"),
                 timeout=5).message == "after"


def test_status_message_round_trips_percent_encoding(channel):
    text = "naïve 100% ünïcødé \u2603 done"
    with pytest.raises(grpc.RpcError) as error:
        unary(channel, "Unary",
              echo_pb2.EchoRequest(fail_code=5, fail_message=text), timeout=5)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error.value.details() == text


# Deadlines and cancellation.

def test_deadline_exceeded_and_handler_learns_it(channel):
    before = cancel_count(channel)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as error:
        unary(channel, "Unary", echo_pb2.EchoRequest(delay_ms=3000), timeout=0.3)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2
    assert wait_for(lambda: cancel_count(channel) > before)


def test_client_cancel_reaches_the_handler(channel):
    before = cancel_count(channel)
    call = channel.unary_unary(ECHO + "Unary",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=echo_pb2.EchoResponse.FromString)
    future = call.future(echo_pb2.EchoRequest(delay_ms=5000), timeout=10)
    time.sleep(0.2)
    assert future.cancel()
    assert wait_for(lambda: cancel_count(channel) > before)


def test_cancel_of_a_server_stream_held_by_backpressure(channel):
    """The client reads one message of a stream far larger than the flow
    control windows, then cancels: the handler, waiting in on_writable,
    learns of it, and the channel keeps working."""
    before = cancel_count(channel)
    call = channel.unary_stream(ECHO + "ServerStream",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=echo_pb2.EchoResponse.FromString)
    stream = call(echo_pb2.EchoRequest(payload=b"b" * 65536, repeat=100000),
                  timeout=20)
    assert next(stream).index == 0
    time.sleep(0.2)
    stream.cancel()
    assert wait_for(lambda: cancel_count(channel) > before)
    assert unary(channel, "Unary", echo_pb2.EchoRequest(message="still"),
                 timeout=5).message == "still"


def paused_requests(first, release, limit=10.0):
    """Yields first, then waits (bounded) until release is set."""
    yield first
    release.wait(limit)


def test_deadline_of_an_open_bidi_stream_reaches_the_handler(channel):
    before = cancel_count(channel)
    release = threading.Event()
    call = channel.stream_stream(ECHO + "Bidi",
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=echo_pb2.EchoResponse.FromString)
    stream = call(paused_requests(echo_pb2.EchoRequest(message="one"), release),
                  timeout=1.0)
    try:
        assert next(stream).message == "one"
        with pytest.raises(grpc.RpcError) as error:
            next(stream)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        release.set()
    assert wait_for(lambda: cancel_count(channel) > before)


def test_client_cancel_of_a_client_stream_reaches_the_handler(channel):
    before = cancel_count(channel)
    release = threading.Event()
    call = channel.stream_unary(ECHO + "ClientStream",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=echo_pb2.EchoResponse.FromString)
    future = call.future(paused_requests(echo_pb2.EchoRequest(message="a"),
                                         release), timeout=10)
    try:
        time.sleep(0.3)
        assert future.cancel()
    finally:
        release.set()
    assert wait_for(lambda: cancel_count(channel) > before)


def test_raw_grpc_timeout_header_is_honoured(server):
    """grpc-timeout in milliseconds, as a non-grpcio client writes it."""
    body = echo_pb2.EchoRequest(delay_ms=3000).SerializeToString()
    with tempfile.NamedTemporaryFile() as f:
        f.write(struct.pack(">BI", 0, len(body)) + body)
        f.flush()
        started = time.monotonic()
        result = subprocess.run(
            ["nghttp", "-v", "-d", f.name, "-H", "content-type: application/grpc",
             "-H", "te: trailers", "-H", "grpc-timeout: 200m",
             "http://%s/jobhub.test.Echo/Unary" % server.address],
            capture_output=True, timeout=20)
    out = result.stdout.decode(errors="replace")
    assert "grpc-status: 4" in out, out
    assert time.monotonic() - started < 2


# Compression and metadata.

def test_gzip_request_is_decompressed(channel):
    payload = b"abcdefgh" * 8192
    response = unary(channel, "Unary",
                     echo_pb2.EchoRequest(message="zip", payload=payload),
                     timeout=5, compression=grpc.Compression.Gzip)
    assert response.payload == payload and response.message == "zip"


def test_gzip_channel_default_both_ways(server):
    payload = b"0123456789" * 10000
    with grpc.insecure_channel(server.address, compression=grpc.Compression.Gzip) as ch:
        assert unary(ch, "Unary", echo_pb2.EchoRequest(payload=payload),
                     timeout=5).payload == payload


def test_gzip_by_channel_option(server):
    payload = b"option" * 20000
    options = [("grpc.default_compression_algorithm",
                grpc.Compression.Gzip.value)]
    with grpc.insecure_channel(server.address, options=options) as ch:
        response = unary(ch, "Unary",
                         echo_pb2.EchoRequest(message="o", payload=payload),
                         timeout=5)
    assert response.payload == payload and response.message == "o"


def test_metadata_echo_in_headers_and_trailers(channel):
    binary = bytes(range(256))
    call = channel.unary_unary(ECHO + "Unary",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=echo_pb2.EchoResponse.FromString)
    response, state = call.with_call(
        echo_pb2.EchoRequest(echo_metadata=True),
        metadata=[("x-echo-token", "abc 123"), ("x-echo-blob-bin", binary),
                  ("x-other", "not echoed")], timeout=5)
    initial = dict(state.initial_metadata())
    trailing = dict(state.trailing_metadata())
    assert initial["x-echo-token"] == "abc 123"
    assert initial["x-echo-blob-bin"] == binary
    assert "x-other" not in initial
    assert trailing["x-trailer-token"] == "abc 123"
    assert trailing["x-trailer-blob-bin"] == binary


def test_metadata_echo_on_an_immediate_error(channel):
    call = channel.unary_unary(ECHO + "Unary",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=echo_pb2.EchoResponse.FromString)
    with pytest.raises(grpc.RpcError) as error:
        call(echo_pb2.EchoRequest(echo_metadata=True, fail_code=5,
                                  fail_message="gone"),
             metadata=[("x-echo-id", "42")], timeout=5)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error.value.details() == "gone"
    assert dict(error.value.trailing_metadata())["x-trailer-id"] == "42"


# The four call shapes.

def test_server_stream_order_and_count(channel):
    call = channel.unary_stream(ECHO + "ServerStream",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=echo_pb2.EchoResponse.FromString)
    indexes = [r.index for r in call(echo_pb2.EchoRequest(message="s", repeat=1000),
                                     timeout=20)]
    assert indexes == list(range(1000))


def test_server_stream_of_ten_thousand(channel):
    call = channel.unary_stream(ECHO + "ServerStream",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=echo_pb2.EchoResponse.FromString)
    indexes = [r.index for r in call(echo_pb2.EchoRequest(message="t", repeat=10000),
                                     timeout=30)]
    assert indexes == list(range(10000))


def test_server_stream_large_with_backpressure(channel):
    call = channel.unary_stream(ECHO + "ServerStream",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=echo_pb2.EchoResponse.FromString)
    total = 0
    for r in call(echo_pb2.EchoRequest(payload=b"p" * 65536, repeat=200), timeout=30):
        assert len(r.payload) == 65536
        total += 1
    assert total == 200


def test_client_stream_counts_messages(channel):
    call = channel.stream_unary(ECHO + "ClientStream",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=echo_pb2.EchoResponse.FromString)
    response = call(iter([echo_pb2.EchoRequest(message=str(i % 10)) for i in range(100)]),
                    timeout=10)
    assert response.count == 100
    assert response.message == "0123456789" * 10


def test_bidi_ping_pong_in_order(channel):
    call = channel.stream_stream(ECHO + "Bidi",
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=echo_pb2.EchoResponse.FromString)
    requests = iter([echo_pb2.EchoRequest(message="m%d" % i) for i in range(100)])
    got = [(r.index, r.message) for r in call(requests, timeout=10)]
    assert got == [(i, "m%d" % i) for i in range(100)]


def test_bidi_failure_mid_stream(channel):
    call = channel.stream_stream(ECHO + "Bidi",
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=echo_pb2.EchoResponse.FromString)
    requests = iter([echo_pb2.EchoRequest(message="ok"),
                     echo_pb2.EchoRequest(fail_code=9, fail_message="stop here")])
    stream = call(requests, timeout=10)
    assert next(stream).message == "ok"
    with pytest.raises(grpc.RpcError) as error:
        next(stream)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.value.details() == "stop here"


def test_concurrent_unary_calls(server):
    def worker(n):
        with grpc.insecure_channel(server.address) as ch:
            for i in range(200):
                text = "%d-%d" % (n, i)
                assert unary(ch, "Unary", echo_pb2.EchoRequest(message=text),
                             timeout=10).message == text
        return n
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(worker, range(8))) == list(range(8))


# Transport.

def test_http1_request_without_a_route_gets_a_clear_error(server):
    """HTTP/1.1 reaches the HTTP face (rpc/http1): a path without a route
    is a 404 with the JSON error body (test_protocol_hook.py checks the
    transport's own 505 when no hook is set)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        reply = b""
        while True:
            data = s.recv(4096)
            if not data:
                break
            reply += data
    assert reply.startswith(b"HTTP/1.1 404"), reply
    assert b"content-type: application/json" in reply.lower()
    assert b'"message":"no route for GET /nothing"' in reply


def test_sigterm_drains_in_flight_calls_and_refuses_new_ones(fresh_server):
    address = fresh_server.address
    result = {}

    def slow_call():
        with grpc.insecure_channel(address) as ch:
            result["message"] = unary(ch, "Unary",
                                      echo_pb2.EchoRequest(message="drained",
                                                           delay_ms=1500),
                                      timeout=10).message
    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.4)
    fresh_server.process.send_signal(15)
    time.sleep(0.3)
    # The listener is closed: a new connection is refused.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", fresh_server.port), timeout=2).close()
    thread.join(timeout=10)
    assert result.get("message") == "drained"
    assert fresh_server.process.wait(timeout=10) == 0
