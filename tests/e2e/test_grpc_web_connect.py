"""End-to-end: gRPC-Web and the Connect protocol on jobhubd's port (SPEC
"HTTP face, auth, browsers, operations"), through the call bridge
(rpc/call_bridge.h) and the HTTP face (server/http/): outside clients only,
`buf curl --protocol grpcweb|connect` (through server reflection) and
curl, plus python3-h2 where a client must stop reading.

Every request goes over each HTTP version of the `http_version` fixture:
HTTP/1.1 (rpc/http1) and HTTP/2 with prior knowledge."""
import base64
import functools
import glob
import json
import os
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import JOBHUBD, RSS_FACTOR, THREADS, Server
from hub_client import (DONE, HubClient, common_pb2, jobs_pb2, new_pool,
                        start_hub, stop_hub, wait_until)
from test_auth import BEARER, auth_file, guarded_hub  # noqa: F401
from test_flood_limits import MIB, RawGrpc, rss_bytes

ORIGIN = "https://app.example"
CURL_TIMEOUT = 20


class HttpVersion:
    """How curl and buf curl reach the hub over one HTTP version."""

    def __init__(self, name, curl_args, buf_args):
        self.name = name
        self.curl_args = curl_args
        self.buf_args = buf_args


HTTP_VERSIONS = {
    "h1": HttpVersion("h1", ["--http1.1"], []),
    "h2": HttpVersion("h2", ["--http2-prior-knowledge"],
                      ["--http2-prior-knowledge"]),
}


@pytest.fixture(params=sorted(HTTP_VERSIONS))
def http_version(request):
    return HTTP_VERSIONS[request.param]


@pytest.fixture(scope="module")
def hub():
    h = start_hub(["--cors-origin", ORIGIN])
    yield h
    stop_hub(h)


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value
        self.body = body        # bytes

    def json(self):
        return json.loads(self.body)


def curl(http_version, url, *args, body=None):
    """curl's answer to one request; body (bytes) is POSTed when given."""
    command = ["curl", "-sS", "-i", "--max-time", str(CURL_TIMEOUT)] + \
        http_version.curl_args + list(args)
    if body is not None:
        command += ["--data-binary", "@-"]
    result = subprocess.run(command + [url], input=body, capture_output=True,
                            timeout=CURL_TIMEOUT + 10)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    rest = result.stdout
    head, _, rest = rest.partition(b"\r\n\r\n")
    while head.split(b" ", 2)[1:2] and head.split(b" ", 2)[1].startswith(b"1"):
        head, _, rest = rest.partition(b"\r\n\r\n")  # 100 Continue
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, rest)


@functools.lru_cache(maxsize=1)
def buf_schema():
    """A FileDescriptorSet of jobhub's and health's .proto files, made by
    protoc: buf curl reflects only over HTTP/2 (or TLS), so over cleartext
    HTTP/1.1 it reads the schema from this file instead."""
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    out = os.path.join(tempfile.mkdtemp(prefix="jobhub-schema-"), "set.binpb")
    protos = sorted(glob.glob(os.path.join(root, "proto/jobhub/v1/*.proto")))
    subprocess.run(["protoc", "-I", os.path.join(root, "proto"), "-I",
                    os.path.join(root, "third_party"), "--include_imports",
                    "--descriptor_set_out=" + out,
                    os.path.join(root, "third_party/grpc/health/v1/health.proto")]
                   + protos, check=True, timeout=60)
    return out


def buf_command(buf, http_version, protocol, timeout="20s"):
    """buf curl's command line over http_version, up to its arguments."""
    schema = [] if http_version.name == "h2" else ["--schema", buf_schema()]
    return [buf, "curl", "--protocol", protocol, "--timeout", timeout] + \
        http_version.buf_args + schema


def buf_curl(buf, http_version, hub, protocol, method, data=None, *args):
    command = buf_command(buf, http_version, protocol) + list(args)
    if data is not None:
        command += ["-d", json.dumps(data)]
    return subprocess.run(command + ["http://%s/%s" % (hub.address, method)],
                          capture_output=True, text=True, timeout=60)


def json_stream(text):
    """The JSON values printed one after another (buf curl's output)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    text = text.strip()
    while at < len(text):
        value, end = decoder.raw_decode(text, at)
        values.append(value)
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    return values


def frames(data):
    """(flags, payload) of each length-prefixed frame (gRPC-Web frames and
    Connect envelopes share the layout)."""
    out, at = [], 0
    while at < len(data):
        flags, length = struct.unpack(">BI", data[at:at + 5])
        out.append((flags, data[at + 5:at + 5 + length]))
        at += 5 + length
    assert at == len(data), "body ends inside a frame"
    return out


def frame(message, flags=0):
    return struct.pack(">BI", flags, len(message)) + message


def trailers(payload):
    """The header block of a gRPC-Web trailers frame, as a dict."""
    lines = payload.decode().split("\r\n")
    assert lines[-1] == "", payload
    return dict(line.split(":", 1) for line in lines[:-1])


def grpc_web_call(http_version, hub, method, message, text=False,
                  headers=()):
    """A unary gRPC-Web call with curl: (answer, [messages], trailers)."""
    body = frame(message)
    content_type = "application/grpc-web-text" if text else \
        "application/grpc-web+proto"
    if text:
        body = base64.b64encode(body)
    args = ["-H", "content-type: " + content_type, "-H", "x-grpc-web: 1"]
    for header in headers:
        args += ["-H", header]
    answer = curl(http_version, "http://%s/%s" % (hub.address, method), *args,
                  body=body)
    data = answer.body
    if text:
        # PROTOCOL-WEB: each write is padded on its own; decode by quanta.
        data = b"".join(base64.b64decode(data[i:i + 4])
                        for i in range(0, len(data), 4))
    parsed = frames(data)
    assert parsed and parsed[-1][0] == 0x80, parsed
    assert all(flags == 0 for flags, _ in parsed[:-1]), parsed
    return answer, [payload for _, payload in parsed[:-1]], \
        trailers(parsed[-1][1])


def connect_json(http_version, hub, method, request, *args):
    return curl(http_version, "http://%s/%s" % (hub.address, method),
                "-H", "content-type: application/json",
                "-H", "connect-protocol-version: 1", *args,
                body=json.dumps(request).encode())


# buf curl, through server reflection.

@pytest.mark.parametrize("protocol", ["grpcweb", "connect"])
def test_buf_curl_submit_get_and_health(buf, http_version, hub, protocol):
    pool, job_type = new_pool()
    submitted = buf_curl(buf, http_version, hub, protocol,
                         "jobhub.v1.Jobs/Submit",
                         {"poolId": pool, "jobTypeId": job_type,
                          "subject": "web-" + protocol})
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["state"] == "QUEUED" and job["subject"] == "web-" + protocol
    got = buf_curl(buf, http_version, hub, protocol, "jobhub.v1.Jobs/Get",
                   {"id": job["id"]})
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["id"] == job["id"]
    health = buf_curl(buf, http_version, hub, protocol,
                      "grpc.health.v1.Health/Check", {})
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}


@pytest.mark.parametrize("protocol", ["grpcweb", "connect"])
def test_buf_curl_unknown_job_is_not_found(buf, http_version, hub, protocol):
    result = buf_curl(buf, http_version, hub, protocol, "jobhub.v1.Jobs/Get",
                      {"id": "77777777"})
    assert result.returncode != 0
    error = json.loads(result.stderr)
    assert error["code"] == "not_found", result.stderr
    assert "77777777" in error["message"]


@pytest.mark.parametrize("protocol", ["connect", "grpcweb"])
def test_watch_streams_until_the_job_ends(buf, http_version, hub, protocol,
                                          tmp_path):
    """A server stream for browsers: Jobs.Watch of one job until it is
    DONE."""
    pool, job_type = new_pool()
    with HubClient(hub.address) as client:
        job = client.submit(pool, job_type, subject="watched")
        out = tmp_path / "watch.out"
        with open(out, "w") as sink:
            watch = subprocess.Popen(
                buf_command(buf, http_version, protocol, "60s") +
                ["-d", json.dumps({"id": job.id}),
                 "http://%s/jobhub.v1.Jobs/Watch" % hub.address],
                stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "QUEUED" in out.read_text(), 20,
                       "the Watch's first message")
            client.complete(client.lease_one(pool, job_type), value="fine")
            assert watch.wait(timeout=30) == 0, out.read_text()
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
    states = [message["state"] for message in json_stream(out.read_text())]
    assert states[0] == "QUEUED" and states[-1] == "DONE", states


# curl: Connect unary, JSON and proto.

def test_connect_json_unknown_job_is_404(http_version, hub):
    answer = connect_json(http_version, hub, "jobhub.v1.Jobs/Get",
                          {"id": "12345678"})
    assert answer.status == 404, answer.body
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()
    assert error["code"] == "not_found"
    assert "12345678" in error["message"]


def test_connect_json_submit_and_get(http_version, hub):
    pool, job_type = new_pool()
    answer = connect_json(http_version, hub, "jobhub.v1.Jobs/Submit",
                          {"poolId": pool, "jobTypeId": job_type,
                           "config": {"moduleParams": {"start": 1}},
                           "meta": {"who": "curl"}})
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/json"
    job = answer.json()
    got = connect_json(http_version, hub, "jobhub.v1.Jobs/Get",
                       {"id": job["id"]}).json()
    assert got["id"] == job["id"] and got["state"] == "QUEUED"
    assert got["config"]["moduleParams"] == {"start": 1}


def test_connect_proto_submit_and_unknown_job(http_version, hub):
    pool, job_type = new_pool()
    url = "http://%s/jobhub.v1.Jobs/" % hub.address
    proto = ["-H", "content-type: application/proto"]
    answer = curl(http_version, url + "Submit", *proto,
                  body=jobs_pb2.SubmitRequest(
                      pool_id=pool, job_type_id=job_type,
                      subject="proto").SerializeToString())
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/proto"
    job = common_pb2.Job.FromString(answer.body)
    assert job.subject == "proto" and job.id
    missing = curl(http_version, url + "Get", *proto,
                   body=jobs_pb2.GetRequest(id="424242").SerializeToString())
    assert missing.status == 404
    assert missing.json()["code"] == "not_found"


def test_connect_errors_are_connect_json(http_version, hub):
    bad = connect_json(http_version, hub, "jobhub.v1.Jobs/Get",
                       {"nosuchfield": 1})
    assert bad.status == 400, bad.body
    assert bad.json()["code"] == "invalid_argument"
    assert "nosuchfield" in bad.json()["message"]
    unknown = connect_json(http_version, hub, "jobhub.v1.Jobs/Nope", {})
    assert unknown.status == 501
    assert unknown.json()["code"] == "unimplemented"
    big = connect_json(http_version, hub, "jobhub.v1.Jobs/Submit",
                       {"subject": "x" * (5 << 20)})
    assert big.status == 429, big.body[:200]
    assert big.json()["code"] == "resource_exhausted"


def test_connect_timeout_header_is_the_deadline(http_version, hub):
    """Workers.Lease long-polls wait_ms; connect-timeout-ms ends it
    first."""
    pool, job_type = new_pool()
    started = time.monotonic()
    answer = connect_json(http_version, hub, "jobhub.v1.Workers/Lease",
                          {"client": "c", "poolId": pool,
                           "jobTypeIds": [job_type], "maxJobs": 1,
                           "waitMs": 10000},
                          "-H", "connect-timeout-ms: 300")
    assert answer.status == 504, answer.body
    assert answer.json()["code"] == "deadline_exceeded"
    assert time.monotonic() - started < 5


def test_connect_json_stream_of_envelopes(http_version, hub):
    """Watch over application/connect+json: JSON envelopes, then the
    EndStreamResponse (flag 2): {} after a success, the error after a
    failure."""
    pool, job_type = new_pool()
    with HubClient(hub.address) as client:
        job = client.submit(pool, job_type, subject="enveloped")
        client.jobs.Cancel(id=job.id)
    url = "http://%s/jobhub.v1.Jobs/Watch" % hub.address
    content_type = ["-H", "content-type: application/connect+json"]
    answer = curl(http_version, url, *content_type,
                  body=frame(json.dumps({"id": job.id}).encode()))
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/connect+json"
    envelopes = frames(answer.body)
    assert [flags for flags, _ in envelopes] == [0, 2], envelopes
    assert json.loads(envelopes[0][1])["state"] == "CANCELLED"
    assert json.loads(envelopes[1][1]) == {}
    missing = curl(http_version, url, *content_type,
                   body=frame(b'{"id": "5550555"}'))
    assert missing.status == 200
    end = frames(missing.body)[-1]
    assert end[0] == 2 and json.loads(end[1])["error"]["code"] == "not_found"


def test_no_route_is_404_json(http_version, hub):
    answer = curl(http_version, "http://%s/x" % hub.address)
    assert answer.status == 404
    assert answer.json() == {"code": 5, "message": "no route for GET /x",
                             "details": []}
    # With a body still arriving: the answer waits for its end, so curl
    # sees the whole answer and no reset.
    posted = curl(http_version, "http://%s/y?z=1" % hub.address,
                  "-H", "content-type: text/plain", body=b"b" * 300000)
    assert posted.status == 404
    assert posted.json()["message"] == "no route for POST /y"


# curl: gRPC-Web, binary and text.

def test_grpc_web_binary_get_unknown_job(http_version, hub):
    answer, messages, status = grpc_web_call(
        http_version, hub, "jobhub.v1.Jobs/Get",
        jobs_pb2.GetRequest(id="31337").SerializeToString())
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/grpc-web+proto"
    assert messages == []
    assert status["grpc-status"] == "5", status
    assert "31337" in status["grpc-message"]


def test_grpc_web_text_submit(http_version, hub):
    pool, job_type = new_pool()
    answer, messages, status = grpc_web_call(
        http_version, hub, "jobhub.v1.Jobs/Submit",
        jobs_pb2.SubmitRequest(pool_id=pool, job_type_id=job_type,
                               subject="text", payload=os.urandom(3000))
        .SerializeToString(), text=True)
    assert answer.headers["content-type"] == "application/grpc-web-text+proto"
    assert status["grpc-status"] == "0", status
    job = common_pb2.Job.FromString(messages[0])
    assert job.subject == "text"


def test_grpc_web_text_bad_base64_is_invalid_argument(http_version, hub):
    answer = curl(http_version,
                  "http://%s/jobhub.v1.Jobs/Get" % hub.address,
                  "-H", "content-type: application/grpc-web-text",
                  body=b"AAAA*AAA")
    parsed = frames(b"".join(base64.b64decode(answer.body[i:i + 4])
                             for i in range(0, len(answer.body), 4)))
    assert trailers(parsed[-1][1])["grpc-status"] == "3", parsed


# CORS.

def test_cors_preflight_for_an_allowed_origin(http_version, hub):
    answer = curl(http_version,
                  "http://%s/jobhub.v1.Jobs/Get" % hub.address,
                  "-X", "OPTIONS", "-H", "origin: " + ORIGIN,
                  "-H", "access-control-request-method: POST",
                  "-H", "access-control-request-headers: "
                  "content-type,x-grpc-web,authorization")
    assert answer.status == 204
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert answer.headers["access-control-allow-headers"] == \
        "content-type,x-grpc-web,authorization"
    assert int(answer.headers["access-control-max-age"]) > 0


def test_cors_preflight_for_another_origin_is_refused(http_version, hub):
    answer = curl(http_version,
                  "http://%s/jobhub.v1.Jobs/Get" % hub.address,
                  "-X", "OPTIONS", "-H", "origin: https://evil.example",
                  "-H", "access-control-request-method: POST")
    assert answer.status == 403
    assert "access-control-allow-origin" not in answer.headers


def test_cors_headers_on_answers_to_an_allowed_origin(http_version, hub):
    answer = connect_json(http_version, hub, "grpc.health.v1.Health/Check",
                          {}, "-H", "origin: " + ORIGIN)
    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    exposed = answer.headers["access-control-expose-headers"]
    for name in ("grpc-status", "grpc-message", "connect-content-encoding"):
        assert name in exposed, exposed
    web, _, _ = grpc_web_call(http_version, hub,
                              "grpc.health.v1.Health/Check", b"",
                              headers=["origin: " + ORIGIN])
    assert web.headers["access-control-allow-origin"] == ORIGIN
    other = connect_json(http_version, hub, "grpc.health.v1.Health/Check",
                         {}, "-H", "origin: https://evil.example")
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in connect_json(
        http_version, hub, "grpc.health.v1.Health/Check", {}).headers


# Auth through the bridge: the same hook as gRPC.

def test_connect_without_credentials_is_401(http_version, guarded_hub):
    answer = connect_json(http_version, guarded_hub, "jobhub.v1.Jobs/Get",
                          {"id": "1"})
    assert answer.status == 401, answer.body
    assert answer.json()["code"] == "unauthenticated"
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_connect_with_a_role_without_the_method_is_403(http_version,
                                                       guarded_hub):
    answer = connect_json(http_version, guarded_hub, "jobhub.v1.Jobs/Get",
                          {"id": "1"}, "-H",
                          "authorization: " + BEARER["worker"])
    assert answer.status == 403, answer.body
    assert answer.json()["code"] == "permission_denied"


def test_connect_with_credentials_reaches_the_method(http_version,
                                                     guarded_hub):
    answer = connect_json(http_version, guarded_hub, "jobhub.v1.Jobs/Get",
                          {"id": "1"}, "-H",
                          "authorization: " + BEARER["client"])
    assert answer.status == 404, answer.body  # past auth: no such job
    health = connect_json(http_version, guarded_hub,
                          "grpc.health.v1.Health/Check", {})
    assert health.status == 200, health.body  # public


def test_grpc_web_auth(http_version, guarded_hub):
    request = jobs_pb2.GetRequest(id="1").SerializeToString()
    _, _, status = grpc_web_call(http_version, guarded_hub,
                                 "jobhub.v1.Jobs/Get", request)
    assert status["grpc-status"] == "16", status
    _, _, status = grpc_web_call(
        http_version, guarded_hub, "jobhub.v1.Jobs/Get", request,
        headers=["authorization: " + BEARER["worker"]])
    assert status["grpc-status"] == "7", status
    _, _, status = grpc_web_call(
        http_version, guarded_hub, "jobhub.v1.Jobs/Get", request,
        headers=["authorization: " + BEARER["client"]])
    assert status["grpc-status"] == "5", status


def test_buf_curl_connect_with_credentials(buf, http_version, guarded_hub):
    pool, job_type = new_pool()
    result = buf_curl(buf, http_version, guarded_hub, "connect",
                      "jobhub.v1.Jobs/Submit",
                      {"poolId": pool, "jobTypeId": job_type},
                      "-H", "authorization: " + BEARER["client"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "QUEUED"


# Clients that go away or do not read.

def test_clients_that_leave_mid_watch(http_version, hub):
    """Watch streams whose clients give up after a moment, over Connect
    and gRPC-Web: each call is cancelled (an ASan build reports any leak
    at the hub's exit), and the hub serves on."""
    pool, job_type = new_pool()
    with HubClient(hub.address) as client:
        job = client.submit(pool, job_type, subject="left")
        body = frame(jobs_pb2.WatchRequest(id=job.id).SerializeToString())
        for content_type in ["application/connect+proto",
                             "application/grpc-web+proto"] * 10:
            result = subprocess.run(
                ["curl", "-sS", "--max-time", "0.5", "-o", "/dev/null",
                 "-H", "content-type: " + content_type,
                 "--data-binary", "@-"] + http_version.curl_args +
                ["http://%s/jobhub.v1.Jobs/Watch" % hub.address],
                input=body, capture_output=True, timeout=20)
            assert result.returncode == 28, result.stderr  # timed out
        client.complete(client.lease_one(pool, job_type))
        assert client.get(job.id).state == DONE
        answer = connect_json(http_version, hub,
                              "grpc.health.v1.Health/Check", {})
        assert answer.json() == {"status": "SERVING"}


class RawConnect(RawGrpc):
    """RawGrpc's flow control with Connect streaming requests."""

    def call(self, path, request):
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, [
            (b":method", b"POST"), (b":scheme", b"http"),
            (b":path", path), (b":authority", b"localhost"),
            (b"content-type", b"application/connect+proto")])
        self.conn.send_data(stream, frame(request.SerializeToString()),
                            end_stream=True)
        self.flush()
        self.messages[stream] = bytearray()
        return stream


@pytest.fixture
def small_output_hub():
    """Output bounds of 1 MiB a stream and 2 MiB a connection, and (as
    test_flood_limits' lean_hub) a small ASan quarantine, so that RSS
    means what it holds."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = dict(os.environ, ASAN_OPTIONS=(asan + ":" if asan else "") +
               "quarantine_size_mb=4")
    h = Server(JOBHUBD, ["--threads", THREADS, "--shutdown-grace", "5",
                         "--max-stream-output-bytes", str(MIB),
                         "--max-connection-output-bytes", str(2 * MIB)],
               env=env)
    yield h
    stop_hub(h)


WATCHES = 4
CHANGES = 40                # jobs submitted while nobody reads
CHANGE_PAYLOAD = 256 << 10  # bytes a job (and each Watch message) carries


def test_connect_watches_that_are_not_read_end_resource_exhausted(
        small_output_hub):
    """Connect Watch streams whose client does not read (window 0): as for
    gRPC, past the output bounds each call ends with resource_exhausted,
    after what was queued; the connection's bound covers the bridge's
    queues too, and the hub's memory stays bounded."""
    hub = small_output_hub
    pool, job_type = new_pool()
    with HubClient(hub.address) as client:
        raw = RawConnect(hub.port, window=0)
        watches = [raw.call(b"/jobhub.v1.Jobs/Watch", jobs_pb2.WatchRequest(
            pool_id=pool, job_type_id=job_type)) for _ in range(WATCHES)]
        raw.pump(0.5)
        baseline = rss_bytes(hub.process.pid)
        for i in range(CHANGES):  # 10 MB for each Watch
            client.submit(pool, job_type, payload=b"p" * CHANGE_PAYLOAD,
                          subject="n%d" % i)
        raw.pump(1.0)
        grown = rss_bytes(hub.process.pid) - baseline
        raw.read_all(30)
        raw.close()
        assert client.get(client.submit(pool, job_type).id)  # serves on
    assert grown < 64 * MIB * RSS_FACTOR, grown
    received = 0
    for watch in watches:
        envelopes = frames(bytes(raw.messages[watch]))
        assert envelopes[-1][0] == 0x02, envelopes[-1]
        end = json.loads(envelopes[-1][1])
        assert end["error"]["code"] == "resource_exhausted", end
        assert end["error"]["message"].startswith("client is not reading"), \
            end
        assert all(flags == 0 for flags, _ in envelopes[:-1])
        received += sum(len(payload) for _, payload in envelopes[:-1])
    # What was queued when the bounds were reached (2 MiB for the whole
    # connection, one message past it a stream) came whole, no more.
    assert received <= 2 * MIB + WATCHES * (CHANGE_PAYLOAD + 4096), received


# Metadata, cancellation and client streams, with the test server's Echo
# service (tests/echo).

def echo_request(**fields):
    import echo_pb2
    return echo_pb2.EchoRequest(**fields).SerializeToString()


def echo_response(data):
    import echo_pb2
    return echo_pb2.EchoResponse.FromString(data)


def test_connect_metadata_both_ways(http_version, server):
    answer = curl(http_version,
                  "http://%s/jobhub.test.Echo/Unary" % server.address,
                  "-H", "content-type: application/proto",
                  "-H", "connect-protocol-version: 1",
                  "-H", "x-echo-color: blue", "-H", "authorization: Bearer t",
                  body=echo_request(message="m", echo_metadata=True))
    assert answer.status == 200, answer.body
    assert answer.headers["x-echo-color"] == "blue"
    # Connect: trailing metadata of a unary answer as trailer- headers.
    assert answer.headers["trailer-x-trailer-color"] == "blue"
    lines = curl(http_version,
                 "http://%s/jobhub.test.Echo/Unary" % server.address,
                 "-H", "content-type: application/proto",
                 "-H", "x-custom: 1", "-H", "authorization: Bearer t",
                 "-H", "origin: " + ORIGIN, "-H", "connect-timeout-ms: 5000",
                 body=echo_request(metadata_in_message=True))
    text = echo_response(lines.body).message
    # Custom headers and authorization reach the call; HTTP's, the
    # browser's and Connect's own do not.
    assert "x-custom: 1\n" in text and "authorization: Bearer t\n" in text
    for name in ("origin", "connect-", "accept", "user-agent", "content-"):
        assert name not in text, text


def test_grpc_web_metadata_both_ways(http_version, server):
    answer, messages, status = grpc_web_call(
        http_version, server, "jobhub.test.Echo/Unary",
        echo_request(message="w", echo_metadata=True),
        headers=["x-echo-size: 9"])
    assert answer.headers["x-echo-size"] == "9"
    assert status["x-trailer-size"] == "9" and status["grpc-status"] == "0"
    assert echo_response(messages[0]).message == "w"


def test_connect_stream_end_carries_trailing_metadata(http_version, server):
    answer = curl(http_version,
                  "http://%s/jobhub.test.Echo/ServerStream" % server.address,
                  "-H", "content-type: application/connect+proto",
                  "-H", "x-echo-k: v",
                  body=frame(echo_request(message="s", repeat=3,
                                          echo_metadata=True)))
    envelopes = frames(answer.body)
    assert [flags for flags, _ in envelopes] == [0, 0, 0, 2], envelopes
    assert json.loads(envelopes[-1][1]) == {"metadata": {"x-trailer-k": ["v"]}}


def test_connect_bidi_stream(http_version, server):
    """A request stream of three envelopes: each is echoed, then the end."""
    body = b"".join(frame(echo_request(message="b%d" % i)) for i in range(3))
    answer = curl(http_version,
                  "http://%s/jobhub.test.Echo/Bidi" % server.address,
                  "-H", "content-type: application/connect+proto", body=body)
    envelopes = frames(answer.body)
    assert envelopes[-1] == (2, b"{}"), envelopes
    assert [echo_response(p).message for _, p in envelopes[:-1]] == \
        ["b0", "b1", "b2"]


def cancel_count(channel):
    return channel.unary_unary(
        "/jobhub.test.Echo/CancelCount",
        request_serializer=lambda b: b,
        response_deserializer=echo_response)(b"", timeout=10).count


def test_clients_that_leave_cancel_their_calls(http_version, server,
                                               channel):
    """A client that goes away before the answer: the handler's on_cancel
    runs (the Echo service counts them), over Connect and gRPC-Web."""
    before = cancel_count(channel)
    body = echo_request(message="late", delay_ms=5000)
    for content_type, payload in [("application/proto", body),
                                  ("application/grpc-web+proto",
                                   frame(body))] * 3:
        result = subprocess.run(
            ["curl", "-sS", "--max-time", "0.5", "-o", "/dev/null",
             "-H", "content-type: " + content_type, "--data-binary", "@-"] +
            http_version.curl_args +
            ["http://%s/jobhub.test.Echo/Unary" % server.address],
            input=payload, capture_output=True, timeout=20)
        assert result.returncode == 28, result.stderr  # it gave up
    wait_until(lambda: cancel_count(channel) >= before + 6, 10,
               "six cancelled calls")


def test_grpc_web_deadline_and_server_stream(http_version, server):
    _, messages, status = grpc_web_call(
        http_version, server, "jobhub.test.Echo/Unary",
        echo_request(message="slow", delay_ms=5000),
        headers=["grpc-timeout: 200m"])
    assert status["grpc-status"] == "4" and messages == [], status
    _, messages, status = grpc_web_call(
        http_version, server, "jobhub.test.Echo/ServerStream",
        echo_request(message="s", repeat=3), text=True)
    assert status["grpc-status"] == "0", status
    assert [echo_response(m).index for m in messages] == [0, 1, 2]
