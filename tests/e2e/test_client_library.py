"""libjobhub-client as a user gets it: `cmake --install` into a fresh
prefix, then examples/submit_and_wait.c compiled outside the project's
build with nothing but `pkg-config --cflags --libs --static jobhub-client`,
and run against the real jobhubd with a real jobhub-worker."""
import os
import re
import shutil
import subprocess
import tempfile

from conftest import BUILD, ROOT
from hub_client import Worker, start_hub, stop_hub


def build_settings():
    """The compiler and sanitizer flags of the build under test: a library
    built with a sanitizer links only into a program built with it."""
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        cache = f.read()

    def value(name):
        found = re.search(r"^%s:[A-Z]+=(.*)$" % name, cache, re.M)
        return found.group(1) if found else ""

    flags = []
    if value("JOBHUB_SANITIZE") == "ON":
        flags.append("-fsanitize=address,undefined")
    if value("JOBHUB_TSAN") == "ON":
        flags.append("-fsanitize=thread")
    return value("CMAKE_C_COMPILER") or "cc", flags


def test_installed_library_builds_and_runs_the_example():
    prefix = tempfile.mkdtemp(prefix="jobhub-e2e-install-")
    hub = start_hub()
    worker = None
    try:
        subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix],
                       check=True, stdout=subprocess.DEVNULL)
        assert os.path.exists(os.path.join(prefix, "lib", "libjobhub-client.a"))
        env = dict(os.environ,
                   PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
        pkg = subprocess.run(
            ["pkg-config", "--cflags", "--libs", "--static", "jobhub-client"],
            env=env, check=True, capture_output=True, text=True).stdout.split()
        compiler, flags = build_settings()
        program = os.path.join(prefix, "submit_and_wait")
        # Only the installed headers: the source tree is not on the path.
        subprocess.run([compiler, "-std=c11", "-Wall", "-Werror"] + flags +
                       ["-o", program,
                        os.path.join(ROOT, "examples", "submit_and_wait.c")] +
                       pkg, check=True, cwd=prefix)
        worker = Worker(hub.address, 5, 6)
        run = subprocess.run([program, hub.address, "5", "6", "from C"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        lines = run.stdout.splitlines()
        assert re.fullmatch(r"submitted [0-9a-f]{16}", lines[0])
        assert lines[-2].endswith(" DONE 100%")
        assert lines[-1] == "result data: from C"
        # A call that fails says how, with the gRPC status, exit code 1.
        bad = subprocess.run([program, hub.address, "5000", "6", "x"],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1
        assert "Submit: INVALID_ARGUMENT" in bad.stderr
        worker.stop()
    finally:
        if worker is not None and worker.process.poll() is None:
            worker.process.kill()
        stop_hub(hub)
        shutil.rmtree(prefix, ignore_errors=True)
