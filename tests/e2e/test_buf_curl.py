"""End-to-end: `buf curl` (npm @bufbuild/buf), an outside client that knows
nothing of our schemas but what server reflection tells it."""
import json
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BUF = os.path.join(HERE, "node_modules", ".bin", "buf")


def _cannot_install(why):
    """Fails the buf tests: buf curl is the reflection-driven outside client
    and a run without it must not pass."""
    pytest.fail("buf could not be installed: " + why)


@pytest.fixture(scope="module")
def buf():
    """The buf binary from tests/e2e/node_modules, installed on first use
    with npm ci (the committed package-lock.json pins the version)."""
    if not os.path.exists(BUF):
        npm = shutil.which("npm")
        if npm is None:
            _cannot_install("npm is not on PATH (ci/setup installs it)")
        command = [npm, "ci" if os.path.exists(
            os.path.join(HERE, "package-lock.json")) else "install",
            "--no-audit", "--no-fund"]
        try:
            result = subprocess.run(command, cwd=HERE, capture_output=True,
                                    text=True, timeout=300)
        except subprocess.TimeoutExpired:
            _cannot_install("%s timed out after 300 s" % " ".join(command))
        if result.returncode != 0 or not os.path.exists(BUF):
            _cannot_install("%s failed (exit %d):\n%s" % (
                " ".join(command), result.returncode, result.stderr[-2000:]))
    version = subprocess.run([BUF, "--version"], capture_output=True,
                             text=True, timeout=60)
    assert version.returncode == 0, "buf does not run:\n" + version.stderr
    return BUF


def curl(buf, server, *args):
    return subprocess.run(
        [buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge",
         "--timeout", "10s", *args],
        capture_output=True, text=True, timeout=60)


def test_list_services(buf, server):
    result = curl(buf, server, "--list-services", "http://" + server.address)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted([
        "jobhub.test.Echo", "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection", "jobhub.v1.Jobs",
        "jobhub.v1.Workers", "jobhub.v1.Outputs", "jobhub.v1.Engine",
        "jobhub.v1.Series", "jobhub.v1.Hub"])


def test_list_methods_of_every_jobhub_service(buf, server):
    result = curl(buf, server, "--list-methods", "http://" + server.address)
    assert result.returncode == 0, result.stderr
    methods = set(result.stdout.split())
    for method in ["jobhub.v1.Jobs/Submit", "jobhub.v1.Jobs/Watch",
                   "jobhub.v1.Workers/Connect", "jobhub.v1.Workers/Lease",
                   "jobhub.v1.Engine/Predict", "jobhub.v1.Series/Run",
                   "jobhub.v1.Hub/Log", "jobhub.v1.Outputs/Subscribe",
                   "jobhub.test.Echo/Bidi", "grpc.health.v1.Health/Watch"]:
        assert method in methods


def test_health_check(buf, server):
    result = curl(buf, server,
                  "http://%s/grpc.health.v1.Health/Check" % server.address)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "SERVING"}


def test_echo_unary(buf, server):
    result = curl(buf, server, "-d", '{"message": "hi", "payload": "AQID"}',
                  "http://%s/jobhub.test.Echo/Unary" % server.address)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"message": "hi", "payload": "AQID"}


def test_echo_server_stream(buf, server):
    result = curl(buf, server, "-d", '{"message": "s", "repeat": 3}',
                  "http://%s/jobhub.test.Echo/ServerStream" % server.address)
    assert result.returncode == 0, result.stderr
    decoder = json.JSONDecoder()
    text, messages = result.stdout.strip(), []
    while text:
        message, end = decoder.raw_decode(text)
        messages.append(message)
        text = text[end:].strip()
    assert [m.get("index", 0) for m in messages] == [0, 1, 2]


def test_unbuilt_method_is_unimplemented(buf, server):
    result = curl(buf, server, "-d", "{}",
                  "http://%s/jobhub.v1.Hub/Status" % server.address)
    assert result.returncode != 0
    assert "unimplemented" in (result.stdout + result.stderr).lower()
    assert "jobhub.v1.Hub/Status" in result.stdout + result.stderr
