"""The jobhub command-line client (build/client/jobhub) against the real
jobhub-test-server (jobhubd plus the test-only Echo service) and the real
jobhub-worker: every jobs/workers subcommand, health, the generic
list/describe/call (the four call shapes, through reflection), output
formats and exit codes (0, 2 usage, 3/4 --wait FAILED/CANCELLED, 10 + the
gRPC status code)."""
import json
import os
import subprocess
import time

import pytest

from conftest import BUILD, ROOT, start_server
from hub_client import ConnectWorker, Worker, new_pool, wait_until

JOBHUB = os.path.join(BUILD, "client", "jobhub")

# Exit codes of jobhub (see jobhub --help).
EXIT_USAGE = 2
EXIT_JOB_FAILED = 3
EXIT_JOB_CANCELLED = 4
STATUS_BASE = 10
NOT_FOUND = 5
FAILED_PRECONDITION = 9
DEADLINE_EXCEEDED = 4
UNIMPLEMENTED = 12


def run(server, *args, stdin=None, timeout=60, env=None):
    """Runs jobhub --addr SERVER ARGS...; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.pop("JOBHUB_ADDR", None)
    full_env.update(env or {})
    address = [] if server is None else ["--addr", server.address]
    return subprocess.run([JOBHUB] + address + list(args), input=stdin,
                          capture_output=True, text=True, timeout=timeout,
                          env=full_env)


def ok(server, *args, **kwargs):
    """Runs jobhub and asserts exit 0; returns stdout."""
    p = run(server, *args, **kwargs)
    assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def ok_json(server, *args, **kwargs):
    return json.loads(ok(server, *args, **kwargs))


def fails(server, code, *args, **kwargs):
    """Runs jobhub, asserts exit code and a "jobhub: " message; returns
    stderr."""
    p = run(server, *args, **kwargs)
    assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.startswith("jobhub: "), p.stderr
    return p.stderr


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def hub():
    s = start_server()
    yield s
    s.stop()


def submit(hub, pool, job_type, *extra):
    return ok_json(hub, "jobs", "submit", "--pool", str(pool), "--job-type",
                   str(job_type), *extra)


# Jobs.


def test_submit_get_list_cancel_history_through_flags(hub):
    pool, job_type = new_pool()
    job = submit(hub, pool, job_type, "--subject", "s-1", "--payload", "hi",
                 "--meta", "k=v", "--priority", "-3", "--module", "echo",
                 "--params", '{"x": 1}')
    assert job["state"] == "QUEUED"
    assert job["poolId"] == pool and job["jobTypeId"] == job_type
    assert job["subject"] == "s-1" and job["payload"] == "aGk="  # base64
    assert job["meta"] == {"k": "v"} and job["priority"] == -3
    assert job["config"] == {"module": "echo", "moduleParams": {"x": 1}}

    got = ok_json(hub, "jobs", "get", job["id"])
    assert got["id"] == job["id"] and got["state"] == "QUEUED"
    # The same through a JSON request, @file and stdin.
    request = json.dumps({"id": job["id"]})
    assert ok_json(hub, "jobs", "get", request)["id"] == job["id"]
    assert ok_json(hub, "jobs", "get", "-", stdin=request)["id"] == job["id"]

    listed = ok_json(hub, "jobs", "list", "--pool", str(pool))["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert ok_json(hub, "jobs", "list", "--pool", str(pool), "--state",
                   "done") == {}
    other_pool = ok_json(hub, "jobs", "list", "--pool", str(pool),
                         "--job-type", str(job_type + 1))
    assert other_pool.get("jobs", []) == []
    # Without a pool flag every pool is listed.
    everything = ok_json(hub, "jobs", "list", "--page-size", "1000")["jobs"]
    assert job["id"] in [j["id"] for j in everything]

    cancelled = ok_json(hub, "jobs", "cancel", job["id"])
    assert cancelled["state"] == "CANCELLED"
    err = fails(hub, STATUS_BASE + FAILED_PRECONDITION, "jobs", "cancel",
                job["id"])
    assert err.startswith("jobhub: FAILED_PRECONDITION: ")
    err = fails(hub, STATUS_BASE + FAILED_PRECONDITION, "jobs", "result",
                job["id"])
    assert "CANCELLED" in err

    events = ok_json(hub, "jobs", "history", job["id"])["events"]
    assert [e["toState"] for e in events] == ["QUEUED", "CANCELLED"]
    table = ok(hub, "--table", "jobs", "history", job["id"]).splitlines()
    assert table[0].split() == ["TIME", "FROM", "TO", "ACTOR", "WORKER",
                                "DETAIL"]
    assert "CANCELLED" in table[2] and "QUEUED" in table[2]


def test_request_from_a_file_with_flags_on_top(hub, tmp_path):
    pool, job_type = new_pool()
    path = tmp_path / "submit.json"
    path.write_text(json.dumps({"pool_id": 1023, "jobTypeId": job_type,
                                "subject": "from-file",
                                "config": {"module": "echo"}}))
    job = ok_json(hub, "jobs", "submit", "@" + str(path), "--pool", str(pool))
    assert job["poolId"] == pool  # the flag wins over the file's pool_id
    assert job["subject"] == "from-file" and job["jobTypeId"] == job_type
    ok(hub, "jobs", "cancel", job["id"])


def test_not_found_and_usage_errors(hub):
    err = fails(hub, STATUS_BASE + NOT_FOUND, "jobs", "get", "no-such-job")
    assert err.startswith("jobhub: NOT_FOUND: ")
    fails(hub, STATUS_BASE + NOT_FOUND, "jobs", "result", "no-such-job")
    fails(hub, STATUS_BASE + NOT_FOUND, "jobs", "cancel", "no-such-job")
    fails(hub, STATUS_BASE + NOT_FOUND, "jobs", "watch", "no-such-job")
    # Usage: exit 2 with a message, and no call made.
    assert "missing" in fails(None, EXIT_USAGE)
    assert "unknown command" in fails(hub, EXIT_USAGE, "frobnicate")
    assert "unknown command" in fails(hub, EXIT_USAGE, "jobs", "frobnicate")
    assert "usage" in fails(hub, EXIT_USAGE, "jobs", "get")
    assert "unexpected argument" in fails(hub, EXIT_USAGE, "jobs", "get", "a",
                                          "b")
    assert "unknown option" in fails(hub, EXIT_USAGE, "jobs", "list",
                                     "--bogus")
    assert "0..1023" in fails(hub, EXIT_USAGE, "jobs", "list", "--pool",
                              "5000")
    assert "needs a value" in fails(hub, EXIT_USAGE, "jobs", "list", "--pool")
    assert "BOGUS" in fails(hub, EXIT_USAGE, "jobs", "list", "--state",
                            "bogus")
    assert "not JSON" in fails(hub, EXIT_USAGE, "jobs", "submit", "{nope")
    assert "unknown field" in fails(hub, EXIT_USAGE, "jobs", "submit",
                                    '{"noSuchField": 1}')
    assert "exclude" in fails(hub, EXIT_USAGE, "--json", "--table", "jobs",
                              "list")
    assert "key: value" in fails(hub, EXIT_USAGE, "-H", "novalue", "health")
    # A local failure is 1.
    assert fails(hub, 1, "jobs", "submit", "@/no/such/file").startswith(
        "jobhub: cannot open")


def test_unreachable_server_is_unavailable():
    p = subprocess.run([JOBHUB, "--addr", "127.0.0.1:1", "health"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == STATUS_BASE + 14, p.stderr
    assert p.stderr.startswith("jobhub: UNAVAILABLE: ")


def test_addr_from_the_environment(hub):
    out = run(None, "health", env={"JOBHUB_ADDR": hub.address})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"status": "SERVING"}


def test_help_at_every_level():
    top = subprocess.run([JOBHUB, "--help"], capture_output=True, text=True)
    assert top.returncode == 0
    for word in ("jobs submit", "workers state", "health", "call", "list",
                 "describe", "--addr", "--timeout", "--token", "--cacert",
                 "JOBHUB_ADDR", "Exit codes", "10+CODE"):
        assert word in top.stdout, word
    group = subprocess.run([JOBHUB, "jobs", "--help"], capture_output=True,
                           text=True)
    assert group.returncode == 0
    for word in ("submit", "get", "list", "result", "cancel", "watch",
                 "history", "reset"):
        assert "  " + word + " " in group.stdout, word
    leaf = subprocess.run([JOBHUB, "jobs", "submit", "--help"],
                          capture_output=True, text=True)
    assert leaf.returncode == 0
    for word in ("--wait", "--pool", "--params", "--meta", "--addr"):
        assert word in leaf.stdout, word
    workers = subprocess.run([JOBHUB, "workers", "--help"],
                             capture_output=True, text=True)
    for word in ("list", "stats", "add", "delete", "state"):
        assert "  " + word + " " in workers.stdout, word


def test_timeout_is_deadline_exceeded(hub):
    err = fails(hub, STATUS_BASE + DEADLINE_EXCEEDED, "--timeout", "0.2",
                "call", "jobhub.test.Echo/Unary", '{"delayMs": 3000}')
    assert err.startswith("jobhub: DEADLINE_EXCEEDED: ")


def test_metadata_and_token_reach_the_server(hub):
    # Echo answers with the metadata it received, one "key: value" line
    # each: the -H header and the token as a bearer credential (a hub
    # without auth takes the call either way).
    out = ok_json(hub, "-H", "x-echo-a: 1", "--token", "secret", "call",
                  "jobhub.test.Echo/Unary", '{"metadataInMessage": true}')
    lines = out["message"].splitlines()
    assert "x-echo-a: 1" in lines, lines
    assert "authorization: Bearer secret" in lines, lines
    # Without them, neither arrives.
    out = ok_json(hub, "call", "jobhub.test.Echo/Unary",
                  '{"metadataInMessage": true}')
    assert not [line for line in out.get("message", "").splitlines()
                if line.startswith(("x-echo-a:", "authorization:"))], out


# Watching, waiting, the real worker.


def test_watch_prints_each_change_as_a_json_line(hub):
    pool, job_type = new_pool()
    job = submit(hub, pool, job_type)
    watcher = subprocess.Popen([JOBHUB, "--addr", hub.address, "jobs",
                                "watch", job["id"]], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    # The first line (the job as it is now) comes before any worker: each
    # line is flushed as it is printed.
    first = watcher.stdout.readline()
    worker = ConnectWorker(hub.address, "cli-watch", pool, [job_type])
    try:
        assignment = worker.wait_assignments(1)[0]
        worker.progress(assignment, 0.5, "half way")
        time.sleep(0.3)
        worker.complete(assignment)
        out, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
        worker.close()
    assert watcher.returncode == 0, err
    jobs = json_lines(first + out)
    assert jobs[0]["state"] == "QUEUED"
    assert jobs[-1]["state"] == "DONE"
    assert any(j.get("progress") == 0.5 and
               j.get("progressMessage") == "half way" for j in jobs), jobs
    result = ok_json(hub, "jobs", "result", job["id"])
    assert result["value"] == "done:" + job["id"]


def test_submit_wait_with_the_echo_worker(hub):
    pool, job_type = new_pool()
    worker = Worker(hub.address, pool, job_type, module="echo")
    try:
        out = ok_json(hub, "jobs", "submit", "--pool", str(pool),
                      "--job-type", str(job_type), "--payload", "ping",
                      "--wait")
        assert out["jobId"]
        assert "cGluZw" in json.dumps(out)  # the payload, echoed
    finally:
        assert worker.stop() == 0


def test_submit_wait_failed_and_cancelled_exit_codes(hub):
    pool, job_type = new_pool()
    worker = Worker(hub.address, pool, job_type, module="sleep", capacity=2)
    try:
        err = fails(hub, EXIT_JOB_FAILED, "jobs", "submit", "--pool",
                    str(pool), "--job-type", str(job_type), "--module",
                    "sleep", "--params", '{"seconds": -1}', "--max-attempts",
                    "1", "--wait")
        assert "FAILED" in err and "seconds" in err

        waiting = subprocess.Popen(
            [JOBHUB, "--addr", hub.address, "jobs", "submit", "--pool",
             str(pool), "--job-type", str(job_type), "--module", "sleep",
             "--params", '{"seconds": 30}', "--subject", "to-cancel",
             "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        try:
            def running():
                jobs = ok_json(hub, "jobs", "list", "--pool", str(pool),
                               "--subject", "to-cancel").get("jobs", [])
                return [j for j in jobs if j["state"] == "IN_PROGRESS"]
            job = wait_until(running, timeout=30, what="the sleep job")[0]
            ok(hub, "jobs", "cancel", job["id"])
            out, err = waiting.communicate(timeout=30)
        finally:
            if waiting.poll() is None:
                waiting.kill()
        assert waiting.returncode == EXIT_JOB_CANCELLED, (out, err)
        assert err.startswith("jobhub: ") and "CANCELLED" in err
        assert out == ""
    finally:
        assert worker.stop() == 0


def test_forecast_example_with_wait_prints_the_forecast(hub):
    # examples/forecast.json routes to pool 0, job type 1.
    worker = Worker(hub.address, 0, 1, module="forecast", capacity=2)
    try:
        result = ok_json(hub, "jobs", "submit",
                         "@" + os.path.join(ROOT, "examples",
                                            "forecast.json"), "--wait",
                         timeout=120)
    finally:
        assert worker.stop() == 0
    points = result["value"]["points"]
    assert len(points) == 200
    for point in points:
        assert point["yhat_lower"] <= point["yhat"] <= point["yhat_upper"]
    assert [p["ts"] for p in points] == sorted(p["ts"] for p in points)


def test_reset_requeues_a_failed_job(hub):
    pool, job_type = new_pool()
    job = submit(hub, pool, job_type, "--max-attempts", "1")
    worker = ConnectWorker(hub.address, "cli-reset", pool, [job_type])
    try:
        assignment = worker.wait_assignments(1)[0]
        worker.fail(assignment, "boom", False)
        wait_until(lambda: ok_json(hub, "jobs", "get", job["id"])["state"] ==
                   "FAILED", what="the job to fail")
    finally:
        worker.close()
    failed = ok_json(hub, "jobs", "list", "--pool", str(pool), "--state",
                     "FAILED")["jobs"]
    assert [j["id"] for j in failed] == [job["id"]]
    assert failed[0]["error"] == "boom"
    reset = ok_json(hub, "jobs", "reset", "--pool", str(pool), "--job-type",
                    str(job_type))
    assert [j["id"] for j in reset["jobs"]] == [job["id"]]
    assert ok_json(hub, "jobs", "get", job["id"])["state"] == "QUEUED"
    # By id too; a queued job is not requeued again.
    again = ok_json(hub, "jobs", "reset", job["id"])
    assert again.get("jobs", []) == []
    ok(hub, "jobs", "cancel", job["id"])


def test_list_table_view(hub):
    pool, job_type = new_pool()
    job = submit(hub, pool, job_type, "--subject", "tabled")
    lines = ok(hub, "--table", "jobs", "list", "--pool",
               str(pool)).splitlines()
    assert lines[0].split()[:4] == ["ID", "STATE", "POOL", "TYPE"]
    row = lines[1].split()
    assert row[:5] == [job["id"], "QUEUED", str(pool), str(job_type),
                       "tabled"]
    ok(hub, "jobs", "cancel", job["id"])


# Workers.


def test_workers_list_stats_state_add_delete(hub):
    pool, job_type = new_pool()
    states = {"sub-1": {"points": 7}}
    worker = ConnectWorker(hub.address, "cli-workers", pool, [job_type],
                           hostname="cli-host", auto_complete=True,
                           subject_state=lambda s: states.get(s, {}))
    try:
        worker.wait_welcome()
        job = submit(hub, pool, job_type, "--subject", "sub-1")
        wait_until(lambda: ok_json(hub, "jobs", "get", job["id"])["state"] ==
                   "DONE", what="the job to be done")

        workers = ok_json(hub, "workers", "list", "--pool",
                          str(pool))["workers"]
        assert [w["clientId"] for w in workers] == ["cli-workers"]
        assert workers[0]["hostname"] == "cli-host"
        table = ok(hub, "--table", "workers", "list", "--pool",
                   str(pool)).splitlines()
        assert table[0].split()[:3] == ["WORKER_IDX", "CLIENT", "POOL"]
        assert "cli-workers" in table[1] and "cli-host" in table[1]

        stats = ok_json(hub, "workers", "stats", "--pool",
                        str(pool))["jobTypes"]
        mine = [s for s in stats if s["jobTypeId"] == job_type]
        assert mine and mine[0]["done"] == "1" and mine[0]["workers"] == 1
        table = ok(hub, "--table", "workers", "stats", "--pool",
                   str(pool)).splitlines()
        assert table[0].split()[:4] == ["POOL", "TYPE", "WORKERS", "BUSY"]
        assert table[1].split()[:3] == [str(pool), str(job_type), "1"]

        state = ok_json(hub, "workers", "state", "--pool", str(pool),
                        "--job-type", str(job_type), "sub-1")
        assert state["subject"] == "sub-1"
        assert state["state"] == {"points": 7}
    finally:
        worker.close()

    other_pool, other_type = new_pool()
    added = ok_json(hub, "workers", "add", "--pool", str(other_pool),
                    "--job-type", str(other_type), "--hostname", "slot-host",
                    "--port", "8080", "--config", '{"threads": 2}')
    assert added["hostname"] == "slot-host" and added["port"] == 8080
    assert added["workerConfig"] == {"threads": 2}
    deleted = ok_json(hub, "workers", "delete", "--pool", str(other_pool),
                      "--job-type", str(other_type))
    assert deleted["workerIdx"] == added["workerIdx"]
    fails(hub, STATUS_BASE + NOT_FOUND, "workers", "delete", "--pool",
          str(other_pool), "--job-type", str(other_type))


def test_health(hub):
    assert ok_json(hub, "health") == {"status": "SERVING"}
    assert ok_json(hub, "health", "jobhub.v1.Jobs") == {"status": "SERVING"}
    err = fails(hub, STATUS_BASE + NOT_FOUND, "health", "no.such.Service")
    assert err.startswith("jobhub: NOT_FOUND: ")


# The generic commands, through reflection.


def test_list_and_describe(hub):
    services = ok(hub, "list").split()
    for name in ("jobhub.v1.Jobs", "jobhub.v1.Workers", "jobhub.test.Echo",
                 "grpc.health.v1.Health",
                 "grpc.reflection.v1.ServerReflection",
                 "grpc.reflection.v1alpha.ServerReflection"):
        assert name in services
    assert services == sorted(services)
    methods = ok(hub, "list", "jobhub.test.Echo").split()
    assert methods == ["jobhub.test.Echo.Unary", "jobhub.test.Echo.ServerStream",
                       "jobhub.test.Echo.ClientStream", "jobhub.test.Echo.Bidi",
                       "jobhub.test.Echo.CancelCount"]

    service = ok(hub, "describe", "jobhub.test.Echo")
    assert service.startswith("jobhub.test.Echo is a service:")
    assert ("rpc Bidi ( stream .jobhub.test.EchoRequest ) returns "
            "( stream .jobhub.test.EchoResponse );") in service
    message = ok(hub, "describe", "jobhub.v1.LeaseRequest")
    assert "message LeaseRequest {" in message
    assert 'string client_id = 1 [json_name = "client"];' in message
    assert "repeated uint32 job_type_ids = 4;" in message
    job = ok(hub, "describe", ".jobhub.v1.Job")
    assert "map<string, string> meta = 8;" in job
    assert ".google.protobuf.Timestamp created_at = 13;" in job
    enum = ok(hub, "describe", "jobhub.v1.JobState")
    assert "CANCELLED = 5;" in enum
    method = ok(hub, "describe", "jobhub.v1.Jobs.Watch")
    assert "rpc Watch ( .jobhub.v1.WatchRequest ) returns " \
           "( stream .jobhub.v1.Job );" in method
    err = fails(hub, STATUS_BASE + NOT_FOUND, "describe", "no.such.Thing")
    assert err.startswith("jobhub: NOT_FOUND: ")
    fails(hub, STATUS_BASE + NOT_FOUND, "list", "no.such.Service")


def test_call_echo_all_four_shapes(hub):
    unary = ok_json(hub, "call", "jobhub.test.Echo/Unary",
                    '{"message": "hello", "payload": "AAEC"}')
    assert unary == {"message": "hello", "payload": "AAEC"}
    # A leading slash and Service.Method are accepted too.
    assert ok_json(hub, "call", "/jobhub.test.Echo/Unary",
                   '{"message": "a"}')["message"] == "a"
    assert ok_json(hub, "call", "jobhub.test.Echo.Unary",
                   '{"message": "b"}')["message"] == "b"

    stream = json_lines(ok(hub, "call", "jobhub.test.Echo/ServerStream",
                           '{"message": "s", "repeat": 4}'))
    assert [m.get("index", 0) for m in stream] == [0, 1, 2, 3]
    assert all(m["message"] == "s" for m in stream)

    # Client streaming: concatenated and newline-delimited, from stdin.
    requests = '{"message": "a"}{"message": "b"}\n{"message": "c"}\n'
    client = ok_json(hub, "call", "jobhub.test.Echo/ClientStream", "-",
                     stdin=requests)
    assert client == {"message": "abc", "count": 3}

    bidi = json_lines(ok(hub, "call", "jobhub.test.Echo/Bidi",
                         '{"message": "x"}\n{"message": "y"}\n'
                         '{"message": "z"}'))
    assert [m["message"] for m in bidi] == ["x", "y", "z"]
    assert [m.get("index", 0) for m in bidi] == [0, 1, 2]


def test_call_from_a_file_and_streamed_errors(hub, tmp_path):
    path = tmp_path / "requests.json"
    path.write_text('{"message": "f1"}\n{"message": "f2"}\n')
    bidi = json_lines(ok(hub, "call", "jobhub.test.Echo/Bidi",
                         "@" + str(path)))
    assert [m["message"] for m in bidi] == ["f1", "f2"]
    # The server's status becomes the exit code; answers before it print.
    p = run(hub, "call", "jobhub.test.Echo/Unary",
            '{"failCode": 5, "failMessage": "gone away"}')
    assert p.returncode == STATUS_BASE + NOT_FOUND
    assert p.stderr == "jobhub: NOT_FOUND: gone away\n"
    # Unknown service, method, field; two requests for a unary method.
    fails(hub, STATUS_BASE + NOT_FOUND, "call", "no.such.Service/Method")
    assert "no method" in fails(hub, EXIT_USAGE, "call",
                                "jobhub.test.Echo/Nope")
    assert "unknown field" in fails(hub, EXIT_USAGE, "call",
                                    "jobhub.test.Echo/Unary", '{"nope": 1}')
    assert "one request" in fails(hub, EXIT_USAGE, "call",
                                  "jobhub.test.Echo/Unary", "{} {}")
    assert "SERVICE/METHOD" in fails(hub, EXIT_USAGE, "call", "nodots")
    assert "not JSON" in fails(hub, EXIT_USAGE, "call",
                               "jobhub.test.Echo/Bidi", '{"message": "a"} [')


def test_call_the_hub_methods_generically(hub):
    pool, job_type = new_pool()
    job = ok_json(hub, "call", "jobhub.v1.Jobs/Submit", json.dumps({
        "poolId": pool, "jobTypeId": job_type, "subject": "generic"}))
    assert job["state"] == "QUEUED" and job["subject"] == "generic"
    got = ok_json(hub, "call", "jobhub.v1.Jobs/Get",
                  json.dumps({"id": job["id"]}))
    assert got["id"] == job["id"]
    ok(hub, "call", "jobhub.v1.Jobs/Cancel", json.dumps({"id": job["id"]}))
    watched = json_lines(ok(hub, "call", "jobhub.v1.Jobs/Watch",
                            json.dumps({"id": job["id"]})))
    assert watched[-1]["state"] == "CANCELLED"
    health = ok_json(hub, "call", "grpc.health.v1.Health/Check")
    assert health == {"status": "SERVING"}
    fails(hub, STATUS_BASE + NOT_FOUND, "call", "jobhub.v1.Jobs/Get",
          '{"id": "missing"}')


def test_emit_defaults(hub):
    out = ok_json(hub, "--emit-defaults", "call", "jobhub.test.Echo/Unary",
                  '{"message": "d"}')
    assert out == {"message": "d", "payload": "", "index": 0, "count": 0}


def test_tls_with_cacert(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                    str(key), "-out", str(cert)], check=True,
                   capture_output=True)
    server = start_server(["--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        assert ok_json(server, "--cacert", str(cert), "health") == {
            "status": "SERVING"}
        echoed = ok_json(server, "--cacert", str(cert), "call",
                         "jobhub.test.Echo/Unary", '{"message": "tls"}')
        assert echoed == {"message": "tls"}
        # Not trusting the certificate: the handshake fails, UNAVAILABLE.
        err = fails(server, STATUS_BASE + 14, "--tls", "health")
        assert err.startswith("jobhub: UNAVAILABLE: ")
    finally:
        assert server.stop() == 0
