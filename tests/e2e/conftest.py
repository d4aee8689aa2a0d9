"""Fixtures for the end-to-end tests: the real jobhub-test-server (jobhubd
plus the test-only Echo service) on a free 127.0.0.1 port, and message
classes generated with protoc at session start.

Needs Debian's python3-grpcio and python3-protobuf (run with
/usr/bin/python3); JOBHUB_BUILD_DIR names the build (default ./build).
"""
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("JOBHUB_BUILD_DIR", os.path.join(ROOT, "build"))
SERVER = os.path.join(BUILD, "tests", "echo", "jobhub-test-server")
JOBHUBD = os.path.join(BUILD, "server", "jobhubd")


def _cmake_option(name):
    """True when the build's CMakeCache.txt sets the option ON."""
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as cache:
            return any(line.strip() == name + ":BOOL=ON" for line in cache)
    except OSError:
        return False


# ThreadSanitizer keeps shadow memory beside every byte the program touches
# (about 2-3x on top, measured 80 -> 231 MiB), so RSS bounds meant for the
# program's own bytes are multiplied by this on a TSan build.
RSS_FACTOR = 3 if _cmake_option("JOBHUB_TSAN") else 1


def cpu_seconds(pid):
    """User plus system CPU time of the whole process, from /proc (utime
    and stime, fields 14 and 15 of stat(5), in clock ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

_generated = tempfile.mkdtemp(prefix="jobhub-e2e-pb2-")
atexit.register(shutil.rmtree, _generated, ignore_errors=True)
subprocess.run(
    ["protoc", "-I" + os.path.join(ROOT, "tests", "echo"),
     "-I" + os.path.join(ROOT, "third_party"), "-I/usr/include",
     "--python_out=" + _generated, "echo.proto",
     "grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto",
     "grpc/reflection/v1alpha/reflection.proto"],
    check=True)
sys.path.insert(0, _generated)


def _load(name, relative):
    """Registers a generated module under a flat name: the grpc/ folder of
    the generated tree would shadow grpcio's own package."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(_generated, relative))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module


_load("health_pb2", "grpc/health/v1/health_pb2.py")
_load("reflection_v1_pb2", "grpc/reflection/v1/reflection_pb2.py")
_load("reflection_v1alpha_pb2", "grpc/reflection/v1alpha/reflection_pb2.py")


class Server:
    """A running server process. stop() and kill() check its exit code, so
    a crash or a sanitizer report (ASan aborts with abort_on_error=1, TSan
    exits 66) fails the test that started it."""

    def __init__(self, binary, args, env=None, wrapper=()):
        self.dir = tempfile.mkdtemp(prefix="jobhub-e2e-")
        port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "server.log")
        self.log = open(self.log_path, "wb")
        self.name = os.path.basename(binary)
        self.code = None  # the exit code, once stop() or kill() reaped it
        args = list(args)
        if "--data" not in args:
            # Each server its own store; ./var must stay untouched.
            args += ["--data", os.path.join(self.dir, "var")]
        # wrapper: a command that execs the server (e.g. prlimit): same pid.
        self.process = subprocess.Popen(
            list(wrapper) + [binary, "--listen", "127.0.0.1:0",
                             "--port-file", port_file] + args,
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                output = self.output()
                self.log.close()
                shutil.rmtree(self.dir, ignore_errors=True)
                raise RuntimeError("server did not start:\n" + output)
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        self.address = "127.0.0.1:%d" % self.port

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, timeout=15, expect=0):
        """SIGTERM (if still running), then wait; asserts the exit code is
        expect (0: a clean shutdown) and returns it. Removes the server's
        folder (not a --data store the test gave). A second call returns
        the code again."""
        if self.code is not None:
            return self.code
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.code = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.code = self.process.wait()
                raise AssertionError("server ignored SIGTERM:\n" +
                                     self.output()[-4000:])
            assert self.code == expect, "%s exit code %s, expected %s\n%s" % (
                self.name, self.code, expect,
                self.output()[-4000:])
            return self.code
        finally:
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self):
        """SIGKILL, as a crash would, then stop(): asserts the server was
        still running until then (it had not died on its own)."""
        early = self.process.poll()
        if early is not None:
            output = self.output()[-4000:]
            self.stop(expect=early)  # reaped: cleans up
            raise AssertionError("%s exited with %s before SIGKILL\n%s" % (
                self.name, early, output))
        self.process.kill()
        return self.stop(expect=-signal.SIGKILL)


# JOBHUB_E2E_THREADS=1 runs the suite on one loop thread, which the hub
# core then shares (docs/core-design.md "Threads"); ci/test does both.
THREADS = os.environ.get("JOBHUB_E2E_THREADS", "2")


def start_server(args=(), binary=SERVER):
    return Server(binary, ["--threads", THREADS, "--shutdown-grace", "5"]
                  + list(args))


@pytest.fixture(scope="module")
def server():
    s = start_server()
    yield s
    s.stop()


@pytest.fixture
def fresh_server():
    """A server of the test's own, for tests that stop or restart it."""
    s = start_server()
    yield s
    s.stop()  # checks the exit code of one the test stopped itself, too


@pytest.fixture
def hub_args():
    """The command-line arguments of the hub fixture's jobhubd; a test
    module overrides this fixture to give others."""
    return []


@pytest.fixture
def hub(hub_args):
    """A jobhubd of the test's own (its own store), stopped after the test
    with its exit code checked."""
    h = start_server(hub_args, binary=JOBHUBD)
    yield h
    h.stop()


@pytest.fixture
def client(hub):
    """A HubClient (hub_client.py) on the hub fixture's jobhubd."""
    from hub_client import HubClient  # hub_client imports this module
    with HubClient(hub.address) as c:
        yield c


@pytest.fixture(scope="module")
def channel(server):
    import grpc
    with grpc.insecure_channel(server.address, options=[
            ("grpc.max_send_message_length", 16 << 20),
            ("grpc.max_receive_message_length", 16 << 20)]) as ch:
        yield ch


# buf curl (npm @bufbuild/buf, pinned by package-lock.json), the
# reflection-driven outside client of test_buf_curl and
# test_grpc_web_connect.
E2E_DIR = os.path.join(ROOT, "tests", "e2e")
BUF = os.path.join(E2E_DIR, "node_modules", ".bin", "buf")


def _cannot_install(why):
    """Fails the buf tests: buf curl is the reflection-driven outside client
    and a run without it must not pass."""
    pytest.fail("buf could not be installed: " + why)


@pytest.fixture(scope="session")
def buf():
    """The buf binary from tests/e2e/node_modules, installed on first use
    with npm ci (the committed package-lock.json pins the version)."""
    if not os.path.exists(BUF):
        npm = shutil.which("npm")
        if npm is None:
            _cannot_install("npm is not on PATH (ci/setup installs it)")
        command = [npm, "ci" if os.path.exists(
            os.path.join(E2E_DIR, "package-lock.json")) else "install",
            "--no-audit", "--no-fund"]
        try:
            result = subprocess.run(command, cwd=E2E_DIR, capture_output=True,
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
