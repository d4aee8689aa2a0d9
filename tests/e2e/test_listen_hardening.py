"""End-to-end: what the listening port refuses. Cleartext when TLS is
configured (mTLS bypass), a second process on the port, running out of file
descriptors (no accept spin, no log flood), and out-of-range options of
jobhubd, jobhub-worker and the jobhub CLI (usage errors, exit 2)."""
import os
import socket
import subprocess
import tempfile
import time

import grpc
import pytest

import health_pb2
from conftest import BUILD, JOBHUBD, Server, cpu_seconds, start_server
from raw_h2 import PREFACE
from test_transport import make_pki

WORKER = os.path.join(BUILD, "worker", "jobhub-worker")
CLI = os.path.join(BUILD, "client", "jobhub")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def health(channel, timeout=5):
    call = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=health_pb2.HealthCheckResponse.FromString)
    return call(health_pb2.HealthCheckRequest(), timeout=timeout).status


def mtls_credentials(pki):
    return grpc.ssl_channel_credentials(
        read(pki["ca.pem"]), read(pki["client.key"]), read(pki["client.pem"]))


def tls_args(pki):
    return ["--tls-cert", pki["server.pem"], "--tls-key", pki["server.key"],
            "--tls-client-ca", pki["ca.pem"]]


def raw_exchange(address, data, timeout=5):
    """Sends data on a fresh TCP connection; returns what the server sent
    until it closed (bounded by timeout)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                return received
            received += chunk
        raise AssertionError("the server kept the connection open")


# (a) TLS configured: cleartext is refused unless --allow-plaintext.

def test_cleartext_is_refused_when_tls_is_configured(pki):
    server = start_server(tls_args(pki))
    try:
        with grpc.insecure_channel(server.address) as ch:
            with pytest.raises(grpc.RpcError) as error:
                health(ch)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        with grpc.secure_channel(server.address, mtls_credentials(pki)) as ch:
            assert health(ch) == health_pb2.HealthCheckResponse.SERVING
        # The HTTP/2 preface gets no answer, just the close.
        assert raw_exchange(server.address, PREFACE) == b""
        # HTTP/1.x gets a 400 that says why (Go net/http's convention).
        answer = raw_exchange(server.address,
                              b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.0 400 ")
        assert b"HTTPS server" in answer
    finally:
        assert server.stop() == 0


def test_allow_plaintext_serves_both(pki):
    server = start_server(tls_args(pki) + ["--allow-plaintext"])
    try:
        with grpc.insecure_channel(server.address) as ch:
            assert health(ch) == health_pb2.HealthCheckResponse.SERVING
        with grpc.secure_channel(server.address, mtls_credentials(pki)) as ch:
            assert health(ch) == health_pb2.HealthCheckResponse.SERVING
    finally:
        assert server.stop() == 0


def test_allow_plaintext_takes_true_or_false(pki):
    server = start_server(tls_args(pki) + ["--allow-plaintext=false"])
    try:
        with grpc.insecure_channel(server.address) as ch:
            with pytest.raises(grpc.RpcError) as error:
                health(ch)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        assert server.stop() == 0


# (b) The port belongs to one process.

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_second_hub_on_the_same_port_exits_1(tmp_path):
    port = free_port()
    address = "127.0.0.1:%d" % port
    first = start_server(["--listen", address], binary=JOBHUBD)
    try:
        assert first.port == port
        second = subprocess.Popen(
            [JOBHUBD, "--listen", address, "--data", str(tmp_path / "var"),
             "--threads", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            output, _ = second.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            second.kill()
            second.communicate()
            raise AssertionError("a second jobhubd serves the same port")
        output = output.decode(errors="replace")
        assert second.returncode == 1, output
        assert address in output and "in use" in output, output
        # The first is untouched and still serves every new connection.
        for _ in range(5):
            with grpc.insecure_channel(address) as ch:
                assert health(ch) == health_pb2.HealthCheckResponse.SERVING
    finally:
        assert first.stop() == 0


def test_port_0_with_two_threads_spreads_connections():
    server = start_server(["--threads", "2", "--log-level", "debug"],
                          binary=JOBHUBD)
    try:
        channels = []
        try:
            # Distinct subchannels: one TCP connection each.
            for i in range(40):
                ch = grpc.insecure_channel(
                    server.address, options=[("grpc.channel_id", i),
                                             ("grpc.use_local_subchannel_pool",
                                              1)])
                channels.append(ch)
                assert health(ch) == health_pb2.HealthCheckResponse.SERVING
        finally:
            for ch in channels:
                ch.close()
        log = server.output()
        served = {t: log.count("event=connection_accepted thread=%d" % t)
                  for t in (0, 1)}
        assert served[0] + served[1] >= 40, log[-2000:]
        assert served[0] > 0 and served[1] > 0, served
    finally:
        assert server.stop() == 0


# (c) Out of file descriptors.

def proc_open_files_limits(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no Max open files in /proc/%d/limits" % pid)


def limited_hub(nofile):
    """jobhubd started under prlimit (which execs it: same pid)."""
    return Server(JOBHUBD, ["--threads", "2", "--keepalive-timeout", "60"],
                  wrapper=["prlimit", "--nofile=%s" % nofile])


def test_soft_fd_limit_is_raised_to_the_hard_limit():
    hub = limited_hub("256:1024")
    try:
        assert proc_open_files_limits(hub.process.pid) == (1024, 1024)
        assert "event=fd_limit soft=1024 hard=1024" in hub.output()
    finally:
        assert hub.stop() == 0


def test_out_of_descriptors_neither_spins_nor_floods_the_log():
    hub = limited_hub("64:64")
    clients = []
    try:
        pid = hub.process.pid
        # More connections than descriptors: the kernel completes the
        # handshakes (backlog), the server runs into EMFILE.
        for _ in range(120):
            clients.append(socket.create_connection(("127.0.0.1", hub.port),
                                                    timeout=5))
        deadline = time.monotonic() + 5
        while ("accept" not in hub.output().split("event=listening", 1)[-1]
               and time.monotonic() < deadline):
            time.sleep(0.05)
        time.sleep(0.3)  # let the server settle into the EMFILE state
        log_before = len(hub.output().splitlines())
        cpu_before = cpu_seconds(pid)
        time.sleep(2)
        cpu = cpu_seconds(pid) - cpu_before
        new_lines = hub.output().splitlines()[log_before:]
        accept_lines = [l for l in new_lines if "accept" in l]
        print("out of fds for 2 s: %.3f s CPU, %d accept lines" % (
            cpu, len(accept_lines)))
        assert cpu < 0.5, "%.2f s of CPU in 2 s while out of fds" % cpu
        assert len(accept_lines) <= 10, "%d accept lines in 2 s:\n%s" % (
            len(accept_lines), "\n".join(accept_lines[:5]))
        output = hub.output()
        assert "EMFILE" in output or "Too many open files" in output
    finally:
        for s in clients:
            s.close()
    try:
        # Descriptors are free again: Health answers within a few seconds.
        deadline = time.monotonic() + 10
        while True:
            try:
                with grpc.insecure_channel(hub.address) as ch:
                    assert health(ch, timeout=2) == \
                        health_pb2.HealthCheckResponse.SERVING
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        assert hub.stop() == 0, hub.output()[-3000:]


# (d) Ranges: out of range is a usage error (exit 2) naming the option.

def run_usage(argv, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    with tempfile.TemporaryDirectory() as d:
        try:
            done = subprocess.run(argv + ([] if "jobhubd" not in argv[0]
                                          else ["--data", d + "/var"]),
                                  capture_output=True, timeout=10, env=env,
                                  cwd=d)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s started instead of refusing" % argv)
    return done.returncode, done.stderr.decode(errors="replace")


@pytest.mark.parametrize("args,name", [
    (["--listen", "127.0.0.1:99999"], "--listen"),
    (["--listen", "127.0.0.1:-1"], "--listen"),
    (["--listen", "127.0.0.1"], "--listen"),
    (["--max-concurrent-streams=0"], "--max-concurrent-streams"),
    (["--max-header-bytes=1"], "--max-header-bytes"),
    (["--max-receive-message-bytes=0"], "--max-receive-message-bytes"),
    (["--threads=1025"], "--threads"),
    (["--lease-seconds=0"], "--lease-seconds"),
    (["--max-attempts=0"], "--max-attempts"),
    (["--idle-timeout=0"], "--idle-timeout"),
    (["--keepalive-interval=1e9"], "--keepalive-interval"),
    (["--busy-poll-us=2000000"], "--busy-poll-us"),
    (["--allow-plaintext=maybe"], "--allow-plaintext"),
])
def test_jobhubd_out_of_range_is_a_usage_error(args, name):
    code, err = run_usage([JOBHUBD] + args)
    assert code == 2, err
    assert name in err, err


def test_jobhubd_range_from_the_environment_is_a_usage_error():
    code, err = run_usage([JOBHUBD], {"JOBHUB_MAX_CONCURRENT_STREAMS": "0"})
    assert code == 2 and "max-concurrent-streams" in err, err


def test_jobhubd_range_from_the_config_file_is_a_usage_error(tmp_path):
    ini = tmp_path / "jobhubd.ini"
    ini.write_text("[jobhubd]\nmax-header-bytes = 1\n")
    code, err = run_usage([JOBHUBD, "--config", str(ini)])
    assert code == 2 and "max-header-bytes" in err, err


def test_jobhubd_help_shows_the_ranges():
    done = subprocess.run([JOBHUBD, "--help"], capture_output=True, timeout=10)
    text = done.stdout.decode()
    assert "a whole number 1..2147483647" in text
    assert "--allow-plaintext" in text


@pytest.mark.parametrize("args,name", [
    (["--addr", "127.0.0.1:99999"], "--addr"),
    (["--capacity=0"], "--capacity"),
    (["--capacity=100001"], "--capacity"),
    (["--pool=1024"], "--pool"),
])
def test_worker_out_of_range_is_a_usage_error(args, name):
    code, err = run_usage([WORKER] + args)
    assert code == 2, err
    assert name in err, err


@pytest.mark.parametrize("args,name", [
    (["--addr", "127.0.0.1:99999", "health"], "--addr"),
    (["--timeout", "1e300", "health"], "--timeout"),
    (["--page-size", "1001", "jobs", "list"], "--page-size"),
])
def test_cli_out_of_range_is_a_usage_error(args, name):
    code, err = run_usage([CLI] + args)
    assert code == 2, err
    assert name in err, err
