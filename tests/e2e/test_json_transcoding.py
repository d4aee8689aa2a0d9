"""End-to-end: JSON transcoding on jobhubd's port (SPEC "JSON transcoding
endpoint", "HTTP face, auth, browsers, operations"): every google.api.http
route of the .proto files, read at start-up, reaches its RPC through the
call bridge; checked with curl and python3-grpcio only (the jobs made over
JSON are read back over gRPC and the other way round).

Every request goes over the HTTP versions of test_grpc_web_connect's
`http_version` fixture."""
import json
import os
import subprocess
import threading
import time

import pytest
from google.protobuf import json_format

from conftest import ROOT
from hub_client import (HubClient, Worker, jobs_pb2, new_pool, start_hub,
                        stop_hub)
from test_auth import BEARER, auth_file, guarded_hub  # noqa: F401
from test_transport import make_pki
from test_grpc_web_connect import (CURL_TIMEOUT, HTTP_VERSIONS,  # noqa: F401
                                   curl, http_version)

JSON = "content-type: application/json"


@pytest.fixture(scope="module")
def hub():
    h = start_hub(["--max-receive-message-bytes", "65536"])
    yield h
    stop_hub(h)


@pytest.fixture(scope="module")
def grpc_client(hub):
    with HubClient(hub.address) as c:
        yield c


def url(hub, path):
    return "http://%s%s" % (hub.address, path)


def post(http_version, hub, path, document, *args, method="POST"):
    body = document if isinstance(document, bytes) else \
        json.dumps(document).encode()
    return curl(http_version, url(hub, path), "-X", method, "-H", JSON,
                *args, body=body)


def get(http_version, hub, path, *args):
    return curl(http_version, url(hub, path), *args)


def assert_error(answer, status, code, *words):
    assert answer.status == status, (answer.status, answer.body)
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code and error["details"] == [], error
    for word in words:
        assert word in error["message"], error
    return error


def submit_json(http_version, hub, pool, **fields):
    """Submits over JSON to pool, a (pool_id, job_type_id) of new_pool."""
    document = {"poolId": pool[0], "jobTypeId": pool[1], "subject": "s"}
    document.update(fields)
    answer = post(http_version, hub, "/v1/jobs", document)
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/json"
    return answer.json()


def test_submit_over_json_is_the_job_grpc_sees(http_version, hub,
                                               grpc_client):
    pool = new_pool()
    job = submit_json(http_version, hub, pool, subject="sensor-7",
                      priority=3, config={"module": "forecast",
                                          "maxNPoints": 500,
                                          "moduleParams": {"season": 24}},
                      meta={"origin": "curl"})
    assert job["state"] == "QUEUED"  # enums by name
    seen = grpc_client.jobs.Get(jobs_pb2.GetRequest(id=job["id"]))
    assert json_format.MessageToDict(seen) == job
    assert job["config"]["moduleParams"] == {"season": 24}  # Struct


def test_get_by_both_bindings_and_the_result(http_version, hub, grpc_client):
    pool = new_pool()
    job = submit_json(http_version, hub, pool)
    for path in ("/v1/jobs/%s", "/jobs/%s", "/jobs/%s/"):
        answer = get(http_version, hub, path % job["id"])
        assert answer.status == 200, (path, answer.body)
        assert answer.json()["id"] == job["id"]
    assert_error(get(http_version, hub, "/jobs/%s/results" % job["id"]), 400,
                 9, "QUEUED")
    assignment = grpc_client.lease_one(*pool)
    leased = get(http_version, hub, "/v1/jobs/%s" % job["id"]).json()
    assert leased["state"] == "IN_PROGRESS"
    assert leased["workerIdx"] == str(assignment.job.worker_idx)  # uint64
    grpc_client.complete(assignment, value="forty-two")
    for path in ("/v1/jobs/%s/result", "/jobs/%s/results"):
        answer = get(http_version, hub, path % job["id"])
        assert answer.status == 200, answer.body
        assert answer.json()["value"] == "forty-two"


def test_query_parameters_fill_the_request(http_version, hub):
    pool = new_pool()
    ids = [submit_json(http_version, hub, pool, subject="q%d" % i)["id"]
           for i in range(3)]
    for query in ("poolId=%d&jobTypeId=%d" % pool,
                  "pool_id=%d&job_type_id=%d&state=QUEUED" % pool):
        answer = get(http_version, hub, "/v1/jobs?" + query)
        assert answer.status == 200, answer.body
        assert [j["id"] for j in answer.json()["jobs"]] == ids, query
    page = get(http_version, hub,
               "/jobs?poolId=%d&jobTypeId=%d&pageSize=2" % pool).json()
    assert [j["id"] for j in page["jobs"]] == ids[:2]
    rest = get(http_version, hub, "/jobs?poolId=%d&jobTypeId=%d&pageToken=%s"
               % (pool + (page["nextPageToken"],))).json()
    assert [j["id"] for j in rest["jobs"]] == ids[2:]
    only = get(http_version, hub,
               "/jobs?poolId=%d&jobTypeId=%d&subject=q%%31" % pool).json()
    assert [j["id"] for j in only["jobs"]] == ids[1:2]  # percent-decoded


def test_verb_route_and_the_path_wins_over_the_body(http_version, hub):
    pool = new_pool()
    job = submit_json(http_version, hub, pool)
    other = submit_json(http_version, hub, pool)
    answer = post(http_version, hub, "/v1/jobs/%s:cancel" % job["id"],
                  {"id": other["id"]})
    assert answer.status == 200, answer.body
    assert answer.json()["id"] == job["id"]
    assert answer.json()["state"] == "CANCELLED"
    assert get(http_version, hub,
               "/v1/jobs/%s" % other["id"]).json()["state"] == "QUEUED"


def ndjson(body):
    lines = body.decode().split("\n")
    assert lines[-1] == "", body  # every line ends with a newline
    return [json.loads(line) for line in lines[:-1]]


def test_watch_is_newline_delimited_json(http_version, hub, grpc_client):
    pool = new_pool()
    job = submit_json(http_version, hub, pool)
    got = {}

    def watch():
        got["answer"] = get(http_version, hub, "/v1/jobs/%s:watch" % job["id"])

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.3)
    assignment = grpc_client.lease_one(*pool)
    grpc_client.complete(assignment)
    watcher.join(CURL_TIMEOUT + 5)
    answer = got["answer"]
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/x-ndjson"
    lines = ndjson(answer.body)
    assert all(set(line) == {"result"} for line in lines), lines
    states = [line["result"]["state"] for line in lines]
    assert states[0] == "QUEUED" and states[-1] == "DONE", states


def test_a_stream_that_fails_ends_with_an_error_line(http_version, hub):
    job = submit_json(http_version, hub, new_pool())
    started = time.monotonic()
    answer = get(http_version, hub, "/v1/jobs/%s:watch" % job["id"],
                 "-H", "X-Request-Timeout: 0.5")
    assert time.monotonic() - started < 5
    assert answer.status == 200
    lines = ndjson(answer.body)
    assert lines[0]["result"]["state"] == "QUEUED"
    assert set(lines[-1]) == {"error"}, lines
    assert lines[-1]["error"]["code"] == 4  # DEADLINE_EXCEEDED
    # Before any message, a failure is the status and the error body.
    assert_error(get(http_version, hub, "/v1/jobs/nope:watch"), 404, 5, "nope")
    assert_error(get(http_version, hub, "/v1/jobs/1", "-H",
                     "X-Request-Timeout: soon"), 400, 3, "timeout")


def test_a_client_that_leaves_a_watch_does_not_hurt_the_hub(http_version,
                                                            hub):
    job = submit_json(http_version, hub, new_pool())
    for _ in range(5):
        result = subprocess.run(
            ["curl", "-sS", "--max-time", "0.3"] + http_version.curl_args +
            [url(hub, "/v1/jobs/%s:watch" % job["id"])], capture_output=True)
        assert result.returncode == 28, result.stderr  # curl's timeout
    assert get(http_version, hub, "/v1/jobs/%s" % job["id"]).status == 200
    assert hub.process.poll() is None


def test_bad_input_gets_a_clear_error_and_changes_nothing(http_version, hub,
                                                          grpc_client):
    pool = new_pool()

    def queued():
        return len(grpc_client.jobs.List(jobs_pb2.ListJobsRequest(
            pool_id=pool[0], any_job_type=True)).jobs)

    assert_error(get(http_version, hub, "/v2/nothing"), 404, 5,
                 "no route for GET /v2/nothing")
    answer = curl(http_version, url(hub, "/v1/jobs/1"), "-X", "DELETE")
    assert_error(answer, 405, 12, "DELETE")
    assert answer.headers["allow"] == "GET"
    assert_error(post(http_version, hub, "/v1/jobs", b'{"poolId": %d,' % pool[0]),
                 400, 3, "line 1, column")
    assert_error(post(http_version, hub, "/v1/jobs",
                      {"poolId": pool[0], "colour": "red"}), 400, 3, "colour")
    assert_error(get(http_version, hub, "/v1/jobs?colour=red"), 400, 3,
                 "colour")
    assert_error(get(http_version, hub, "/v1/jobs?poolId=-1"), 400, 3,
                 "poolId")
    assert_error(post(http_version, hub, "/v1/jobs", b""), 400, 3, "missing")
    assert_error(post(http_version, hub, "/v1/jobs",
                      {"poolId": pool[0], "subject": "x" * 70000}), 413, 8)
    answer = curl(http_version, url(hub, "/v1/jobs"), "-X", "POST", "-H",
                  "content-type: text/plain", body=b'{"poolId": 1}')
    assert_error(answer, 415, 3, "application/json")
    assert_error(get(http_version, hub, "/v1/jobs/1", "-X", "GET", "-H", JSON,
                     "--data-binary", '{"id": "2"}'), 400, 3, "no request body")
    assert queued() == 0


def test_methods_not_built_yet_answer_501(http_version, hub):
    for path in ("/api/enodo/output/event", "/series", "/enodo/status"):
        assert_error(get(http_version, hub, path), 501, 12, "not implemented")


def test_legacy_worker_paths_reach_workers(http_version, hub, grpc_client):
    pool, _ = new_pool()
    answer = get(http_version, hub, "/api/worker/stats/%d" % pool)
    assert answer.status == 200, answer.body
    answer = get(http_version, hub, "/api/worker/%d" % pool)
    assert answer.status == 200, answer.body
    assert answer.json().get("workers", []) == []


def test_auth_answers_401_and_403_as_json(http_version, guarded_hub):
    answer = get(http_version, guarded_hub, "/v1/jobs/1")
    assert_error(answer, 401, 16)
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert_error(get(http_version, guarded_hub, "/v1/jobs/1", "-H",
                     "authorization: " + BEARER["worker"]), 403, 7)
    assert_error(get(http_version, guarded_hub, "/v1/jobs/1", "-H",
                     "authorization: " + BEARER["client"]), 404, 5)


def test_the_readme_forecast_job_with_plain_curl(http_version):
    """README "Try it": examples/forecast.json submitted with curl, watched
    as NDJSON until DONE and its result fetched with curl, while the real
    jobhub-worker runs the forecast module."""
    with open(os.path.join(ROOT, "examples", "forecast.json"), "rb") as f:
        example = f.read()
    request = json.loads(example)
    hub = start_hub()
    worker = Worker(hub.address, request["poolId"], request["jobTypeId"],
                    module="forecast", capacity=2)
    try:
        job = post(http_version, hub, "/v1/jobs", example)
        assert job.status == 200, job.body
        job_id = job.json()["id"]
        watched = get(http_version, hub, "/v1/jobs/%s:watch" % job_id)
        states = [line["result"]["state"] for line in ndjson(watched.body)]
        assert states[-1] == "DONE", states
        result = get(http_version, hub, "/v1/jobs/%s/result" % job_id)
        assert result.status == 200, result.body
        points = result.json()["value"]["points"]
        assert len(points) == request["config"]["moduleParams"]["periods"]
    finally:
        worker.stop()
        stop_hub(hub)


def test_json_over_tls_with_both_alpns(tmp_path):
    """jobhubd with TLS: curl's ALPN picks http/1.1 or h2 on the same
    port, and both reach JSON transcoding."""
    pki = make_pki(str(tmp_path))
    hub = start_hub(["--tls-cert", pki["server.pem"], "--tls-key",
                     pki["server.key"]])
    try:
        base = "https://127.0.0.1:%d" % hub.port
        for alpn, version in (("--http1.1", "HTTP/1.1"), ("--http2",
                                                          "HTTP/2")):
            result = subprocess.run(
                ["curl", "-sS", "-i", "-v", "--max-time", str(CURL_TIMEOUT),
                 "--cacert", pki["ca.pem"], alpn, "-X", "POST", "-H", JSON,
                 "--data-binary", '{"subject": "tls"}', base + "/v1/jobs"],
                capture_output=True, timeout=CURL_TIMEOUT + 10)
            err = result.stderr.decode(errors="replace")
            assert result.returncode == 0, err
            assert "ALPN: server accepted " + \
                ("http/1.1" if version == "HTTP/1.1" else "h2") in err, err
            head, _, body = result.stdout.partition(b"\r\n\r\n")
            assert head.startswith(version.encode() + b" 200"), head
            assert json.loads(body)["subject"] == "tls"
    finally:
        stop_hub(hub)


def test_subject_state_path_without_a_worker_is_503(http_version, hub):
    """The Enodo hub's GET /api/series/{name}/state/{pool}/{job_type}
    (Workers.GetSubjectState): no worker connected is UNAVAILABLE."""
    pool, job_type = new_pool()
    assert_error(get(http_version, hub, "/api/series/cpu%%2F1/state/%d/%d"
                     % (pool, job_type)), 503, 14)
