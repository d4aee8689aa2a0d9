"""End-to-end: `buf curl` (npm @bufbuild/buf), an outside client that knows
nothing of our schemas but what server reflection tells it."""
import json
import subprocess


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
