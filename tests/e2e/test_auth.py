"""End-to-end: jobhubd's auth (SPEC "Auth"): --auth-file credentials
(bearer, bearer sha256:, basic, mTLS certificate CN), the roles' method
sets, UNAUTHENTICATED vs PERMISSION_DENIED, public health and reflection,
SIGHUP reloads, the start-up rule for non-loopback addresses, secrets kept
out of the log, and the CLI and jobhub-worker sending credentials."""
import base64
import hashlib
import json
import os
import signal
import subprocess

import grpc
import pytest

import health_pb2
import reflection_v1_pb2
import reflection_v1alpha_pb2
from conftest import JOBHUBD
from hub_client import (DONE, Worker, common_pb2, jobs_pb2, new_pool,
                        start_hub, stop_hub, wait_until)
from test_cli import STATUS_BASE, ok, run

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED

HASHED_TOKEN = "hashed-token-7f3a"
SECRETS = ["admin-token-1b2c", "client-token-9d8e", "worker-token-4f5a",
           HASHED_TOKEN, "open sesame 42", "wrong-token-0c0c"]
AUTH_FILE = """# jobhub credentials
admin bearer admin-token-1b2c
client bearer client-token-9d8e

worker bearer worker-token-4f5a
client bearer sha256:%s
client basic alice:open sesame 42
""" % hashlib.sha256(HASHED_TOKEN.encode()).hexdigest()

BEARER = {
    "admin": "Bearer admin-token-1b2c",
    "client": "Bearer client-token-9d8e",
    "worker": "Bearer worker-token-4f5a",
}

# One method of every class SPEC lists (and then some), by role.
CLIENT_METHODS = [("Jobs", "Submit"), ("Jobs", "Get"), ("Jobs", "Reset"),
                  ("Series", "Run"), ("Engine", "Fit"),
                  ("Outputs", "Subscribe"), ("Workers", "List"),
                  ("Workers", "Stats"), ("Workers", "GetSubjectState"),
                  ("Hub", "Status")]
WORKER_METHODS = [("Workers", "Register"), ("Workers", "Lease"),
                  ("Workers", "Heartbeat"), ("Workers", "Progress"),
                  ("Workers", "Complete"), ("Workers", "Fail"),
                  ("Series", "ReportPoints")]
ADMIN_METHODS = [("Workers", "Add"), ("Workers", "Delete"), ("Outputs", "Add"),
                 ("Outputs", "List"), ("Series", "Add"), ("Series", "Get"),
                 ("Hub", "GetSettings"), ("Hub", "UpdateSettings"),
                 ("Hub", "Clients")]
ALLOWED = {
    "admin": CLIENT_METHODS + WORKER_METHODS + ADMIN_METHODS,
    "client": CLIENT_METHODS,
    "worker": WORKER_METHODS,
}


def call(channel, service, method, authorization=None, request=b"",
         timeout=5):
    """Calls /jobhub.v1.SERVICE/METHOD with raw request bytes; returns
    (code, details). The method's own answer to an empty request does not
    matter here: only whether auth let it through."""
    metadata = [("authorization", authorization)] if authorization else None
    stub = channel.unary_unary("/jobhub.v1.%s/%s" % (service, method),
                               request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
    try:
        stub(request, timeout=timeout, metadata=metadata)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as error:
        return error.code(), error.details() or ""


def passed_auth(code, details):
    """Whether a call got past auth: its handler answered. (Workers.Lease
    itself answers UNAUTHENTICATED to a request without client_id.)"""
    return code != PERMISSION_DENIED and not (
        code == UNAUTHENTICATED and details in ("missing credentials",
                                                "invalid credentials"))


def write(path, text):
    # Replaced by rename, as an editor or a config tool would.
    with open(str(path) + ".new", "w") as f:
        f.write(text)
    os.rename(str(path) + ".new", str(path))


@pytest.fixture(scope="module")
def auth_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "credentials"
    write(path, AUTH_FILE)
    return str(path)


@pytest.fixture(scope="module")
def hub(auth_file):
    h = start_hub(["--auth-file", auth_file])
    yield h
    stop_hub(h)


@pytest.fixture(scope="module")
def guarded_hub(auth_file):
    """A jobhubd with AUTH_FILE's credentials, for the HTTP face's modules
    (they import it with auth_file)."""
    h = start_hub(["--auth-file", auth_file])
    yield h
    stop_hub(h)


@pytest.fixture(scope="module")
def channel(hub):
    with grpc.insecure_channel(hub.address) as ch:
        yield ch


def test_no_credentials_is_unauthenticated(channel):
    for service, method in [("Jobs", "Submit"), ("Workers", "Lease"),
                            ("Workers", "Add"), ("Hub", "Status")]:
        assert call(channel, service, method) == (UNAUTHENTICATED,
                                                  "missing credentials")


@pytest.mark.parametrize("authorization", [
    "Bearer wrong-token-0c0c", "bearer", "Token admin-token-1b2c",
    "admin-token-1b2c", "Basic " + base64.b64encode(b"alice:nope").decode(),
    "Basic !!!not base64", "Bearer sha256:" + hashlib.sha256(
        HASHED_TOKEN.encode()).hexdigest()])
def test_wrong_credentials_are_unauthenticated(channel, authorization):
    assert call(channel, "Jobs", "Submit", authorization) == (
        UNAUTHENTICATED, "invalid credentials")


@pytest.mark.parametrize("role", ["admin", "client", "worker"])
def test_each_role_gets_its_method_set(channel, role):
    everything = CLIENT_METHODS + WORKER_METHODS + ADMIN_METHODS
    for service, method in everything:
        code, details = call(channel, service, method, BEARER[role])
        if (service, method) in ALLOWED[role]:
            assert passed_auth(code, details), (role, service, method, code,
                                                details)
        else:
            assert (code, details) == (
                PERMISSION_DENIED, "role %s may not call jobhub.v1.%s/%s" % (
                    role, service, method)), (role, service, method)


def test_a_permitted_call_runs(channel):
    request = jobs_pb2.SubmitRequest(pool_id=1, job_type_id=1)
    stub = channel.unary_unary("/jobhub.v1.Jobs/Submit",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=common_pb2.Job.FromString)
    job = stub(request, timeout=5,
               metadata=[("authorization", BEARER["client"])])
    assert job.id


def test_sha256_token_and_basic_credentials(channel):
    basic = "Basic " + base64.b64encode(b"alice:open sesame 42").decode()
    for authorization in ["Bearer " + HASHED_TOKEN, basic]:
        code, details = call(channel, "Jobs", "Get", authorization)
        assert passed_auth(code, details), (code, details)
        assert call(channel, "Workers", "Add", authorization)[0] == \
            PERMISSION_DENIED  # both are client credentials


def test_health_and_reflection_need_no_credentials(channel):
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=health_pb2.HealthCheckResponse.FromString)
    assert check(health_pb2.HealthCheckRequest(), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING
    for module, version in ((reflection_v1_pb2, "v1"),
                            (reflection_v1alpha_pb2, "v1alpha")):
        info = channel.stream_stream(
            "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo"
            % version,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=module.ServerReflectionResponse.FromString)
        answers = list(info(iter([module.ServerReflectionRequest(
            list_services="")]), timeout=5))
        names = [s.name for s in answers[0].list_services_response.service]
        assert "jobhub.v1.Jobs" in names


def test_the_log_holds_no_secret_and_folds_repeated_failures(auth_file):
    hub = start_hub(["--auth-file", auth_file])
    try:
        with grpc.insecure_channel(hub.address) as ch:
            for _ in range(20):
                assert call(ch, "Jobs", "Submit",
                            "Bearer wrong-token-0c0c")[0] == UNAUTHENTICATED
            basic = base64.b64encode(b"alice:open sesame 42").decode()
            call(ch, "Workers", "Add", "Basic " + basic)
            call(ch, "Workers", "Add", "Bearer " + HASHED_TOKEN)
            for authorization in BEARER.values():
                call(ch, "Workers", "Add", authorization)
                call(ch, "Jobs", "Submit", authorization)
        log = hub.output()
        for secret in SECRETS + [basic]:
            assert secret not in log, secret
        failures = [line for line in log.splitlines()
                    if "event=auth_failed" in line]
        # Every failure came from 127.0.0.1: one line for the interval.
        assert len(failures) == 1, failures
        assert "peer=127.0.0.1" in failures[0]
        assert "code=UNAUTHENTICATED" in failures[0]
    finally:
        stop_hub(hub)


def reload(hub, path, text, event):
    """Writes text to the auth file at path, sends the hub SIGHUP and waits
    for one more log line with event (auth_reloaded, auth_reload_failed)."""
    mark = "event=%s " % event
    before = hub.output().count(mark)
    write(path, text)
    hub.process.send_signal(signal.SIGHUP)
    wait_until(lambda: hub.output().count(mark) > before,
               what="the hub to log %s" % event)


def test_sighup_reloads_and_a_bad_file_keeps_the_old(tmp_path):
    path = tmp_path / "credentials"
    write(path, "client bearer one-token\n")
    hub = start_hub(["--auth-file", str(path)])
    try:
        with grpc.insecure_channel(hub.address) as ch:
            def accepts(token):
                """Whether token passes auth; one it refuses is not known."""
                code, details = call(ch, "Jobs", "Get", "Bearer " + token)
                if passed_auth(code, details):
                    return True
                assert code == UNAUTHENTICATED, (token, code, details)
                return False

            assert accepts("one-token") and not accepts("two-token")
            reload(hub, path, "client bearer two-token\n", "auth_reloaded")
            assert accepts("two-token") and not accepts("one-token")
            reload(hub, path, "client bearer three-token\n"
                   "boss bearer four-token\n", "auth_reload_failed")
            assert "%s:2: unknown role" % path in hub.output()
            assert accepts("two-token") and not accepts("three-token")
        assert hub.process.poll() is None  # SIGHUP did not stop it
    finally:
        stop_hub(hub)


def run_jobhubd(tmp_path, *args):
    """Runs jobhubd that is expected to refuse to start; returns
    (exit code, output) and checks it never wrote its port file."""
    port_file = tmp_path / "port"
    p = subprocess.run([JOBHUBD, "--port-file", str(port_file), "--data",
                        str(tmp_path / "var")] + list(args),
                       capture_output=True, text=True, timeout=15)
    assert not port_file.exists()
    return p.returncode, p.stdout + p.stderr


def test_non_loopback_listen_needs_auth_file_or_no_auth(tmp_path, auth_file):
    code, output = run_jobhubd(tmp_path, "--listen", "0.0.0.0:0")
    assert code == 1, output
    assert "event=auth_required" in output
    assert "--auth-file" in output and "--no-auth" in output

    open_hub = start_hub(["--listen", "0.0.0.0:0", "--no-auth"])
    try:
        with grpc.insecure_channel(open_hub.address) as ch:
            assert passed_auth(*call(ch, "Workers", "Add"))
    finally:
        stop_hub(open_hub)
    guarded = start_hub(["--listen", "0.0.0.0:0", "--auth-file", auth_file])
    try:
        with grpc.insecure_channel(guarded.address) as ch:
            assert call(ch, "Jobs", "Get")[0] == UNAUTHENTICATED
    finally:
        stop_hub(guarded)


def test_loopback_without_auth_file_serves_without_auth():
    hub = start_hub()
    try:
        assert "event=auth_disabled reason=loopback" in hub.output()
        with grpc.insecure_channel(hub.address) as ch:
            assert passed_auth(*call(ch, "Workers", "Add"))
    finally:
        stop_hub(hub)


def test_a_bad_auth_file_is_a_start_up_error(tmp_path, auth_file):
    bad = tmp_path / "bad"
    write(bad, "# comment\nadmin bearer ok-token\nclient basic nocolon\n")
    code, output = run_jobhubd(tmp_path, "--auth-file", str(bad))
    assert code == 1, output
    assert "%s:3: basic needs USER:PASSWORD" % bad in output
    code, output = run_jobhubd(tmp_path, "--auth-file", str(tmp_path / "gone"))
    assert code == 1 and "cannot read auth file" in output, output
    code, output = run_jobhubd(tmp_path, "--auth-file", auth_file, "--no-auth")
    assert code == 2 and "exclude each other" in output, output


def make_pki(directory, client_names):
    """A throwaway CA, a server certificate for 127.0.0.1 and a client
    certificate per name (its subject CN), all signed by the CA."""
    def openssl(*args):
        subprocess.run(("openssl",) + args, check=True, cwd=directory,
                       capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=jobhub auth test CA", "-keyout", "ca.key",
            "-out", "ca.pem")
    with open(os.path.join(directory, "san.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ["server"] + list(client_names):
        extra = ["-extfile", "san.cnf"] if name == "server" else []
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
                "-keyout", name + ".key", "-out", name + ".csr")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                "-out", name + ".pem", *extra)
    return {n: os.path.join(directory, n) for n in os.listdir(directory)}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_client_certificate_cn_has_its_role(tmp_path):
    pki = make_pki(str(tmp_path), ["worker-1", "stranger", "cli-1"])
    credentials = tmp_path / "credentials"
    write(credentials, "worker cert worker-1\nadmin bearer admin-token-1b2c\n"
          "client cert cli-1\n")
    hub = start_hub(["--tls-cert", pki["server.pem"], "--tls-key",
                     pki["server.key"], "--tls-client-ca", pki["ca.pem"],
                     "--allow-plaintext", "--auth-file", str(credentials)])
    try:
        def tls_channel(name):
            return grpc.secure_channel(hub.address, grpc.ssl_channel_credentials(
                read(pki["ca.pem"]), read(pki[name + ".key"]),
                read(pki[name + ".pem"])))
        with tls_channel("worker-1") as ch:
            code, details = call(ch, "Workers", "Lease")
            assert passed_auth(code, details), (code, details)
            assert call(ch, "Jobs", "Submit") == (
                PERMISSION_DENIED,
                "role worker may not call jobhub.v1.Jobs/Submit")
            # A token, when sent, decides instead of the certificate.
            assert call(ch, "Jobs", "Submit", "Bearer nope")[0] == \
                UNAUTHENTICATED
        with tls_channel("stranger") as ch:
            assert call(ch, "Workers", "Lease") == (UNAUTHENTICATED,
                                                    "invalid credentials")
            code, details = call(ch, "Workers", "Add",
                                 BEARER["admin"])
            assert passed_auth(code, details), (code, details)
        # h2c on the same port (allowed here) has no certificate.
        with grpc.insecure_channel(hub.address) as ch:
            assert call(ch, "Workers", "Lease") == (UNAUTHENTICATED,
                                                    "missing credentials")
        # The CLI and the worker present certificates too.
        tls_flags = ["--cacert", pki["ca.pem"], "--cert", pki["cli-1.pem"],
                     "--key", pki["cli-1.key"]]
        pool, job_type = new_pool()
        p = run(hub, *tls_flags, "jobs", "submit", "--pool", str(pool),
                "--job-type", str(job_type), "--json")
        assert p.returncode == 0, (p.stdout, p.stderr)
        job_id = json.loads(p.stdout)["id"]
        with Worker(hub.address, pool, job_type, extra=[
                "--cacert", pki["ca.pem"], "--cert", pki["worker-1.pem"],
                "--key", pki["worker-1.key"]]) as worker:
            wait_until(lambda: json.loads(ok(hub, *tls_flags, "jobs", "get",
                                             job_id, "--json"))["state"]
                       == "DONE", timeout=20, what="the job DONE")
            worker.stop()
        p = run(hub, "--cacert", pki["ca.pem"], "--cert",
                pki["stranger.pem"], "--key", pki["stranger.key"], "jobs",
                "get", job_id)
        assert p.returncode == STATUS_BASE + 16, (p.stdout, p.stderr)
    finally:
        stop_hub(hub)


def test_cli_sends_token_and_basic(hub):
    pool, job_type = new_pool()
    listing = ["jobs", "list", "--pool", str(pool)]
    p = run(hub, *listing)
    assert p.returncode == STATUS_BASE + 16, (p.stdout, p.stderr)
    assert p.stderr.startswith("jobhub: UNAUTHENTICATED: missing credentials")
    p = run(hub, "--token", "wrong-token-0c0c", *listing)
    assert p.returncode == STATUS_BASE + 16, (p.stdout, p.stderr)
    for args, env in [(["--token", "client-token-9d8e"], None),
                      ([], {"JOBHUB_TOKEN": "client-token-9d8e"}),
                      (["--basic", "alice:open sesame 42"], None),
                      ([], {"JOBHUB_BASIC": "alice:open sesame 42"})]:
        p = run(hub, *(args + listing), env=env)
        assert p.returncode == 0, (args, env, p.stdout, p.stderr)
    p = run(hub, "--token", "worker-token-4f5a", *listing)
    assert p.returncode == STATUS_BASE + 7, (p.stdout, p.stderr)
    assert "PERMISSION_DENIED: role worker may not call jobhub.v1.Jobs/List" \
        in p.stderr


def submit_and_wait_done(channel, authorization, pool, job_type):
    """Submits a job with the authorization header and waits until a
    worker has done it."""
    metadata = [("authorization", authorization)]
    submit = channel.unary_unary(
        "/jobhub.v1.Jobs/Submit",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=common_pb2.Job.FromString)
    get = channel.unary_unary(
        "/jobhub.v1.Jobs/Get", request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=common_pb2.Job.FromString)
    job = submit(jobs_pb2.SubmitRequest(pool_id=pool, job_type_id=job_type,
                                        payload=b"auth"),
                 timeout=5, metadata=metadata)
    wait_until(lambda: get(jobs_pb2.GetRequest(id=job.id), timeout=5,
                           metadata=metadata).state == DONE,
               timeout=20, what="the job DONE")


def test_worker_with_token_runs_a_job_end_to_end(hub, channel):
    pool, job_type = new_pool()
    with Worker(hub.address, pool, job_type) as outsider:
        wait_until(lambda: "code=UNAUTHENTICATED" in outsider.output(),
                   what="the worker without a token turned away")
        outsider.stop()
    with Worker(hub.address, pool, job_type,
                extra=["--token", "worker-token-4f5a"]) as worker:
        submit_and_wait_done(channel, BEARER["client"], pool, job_type)
        worker.stop()


def test_worker_sends_basic_from_the_environment(tmp_path):
    credentials = tmp_path / "credentials"
    write(credentials, "worker basic w1:pass word\nclient bearer c-token\n")
    hub = start_hub(["--auth-file", str(credentials)])
    pool, job_type = new_pool()
    try:
        with Worker(hub.address, pool, job_type,
                    env=dict(os.environ, JOBHUB_BASIC="w1:pass word")) as worker:
            with grpc.insecure_channel(hub.address) as ch:
                submit_and_wait_done(ch, "Bearer c-token", pool, job_type)
            worker.stop()
    finally:
        stop_hub(hub)
