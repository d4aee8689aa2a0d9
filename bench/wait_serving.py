"""Times a server's start for bench/jobs.sh. Imports python3-grpcio, prints
"armed" and then waits for PORT_FILE to hold a port, and for
grpc.health.v1.Health/Check on 127.0.0.1:PORT to answer SERVING (08 01).
It then prints "serving_ns=T port=P", T being time.time_ns() (the clock of
bash's $EPOCHREALTIME) when that answer arrived. Starting first and
polling every millisecond keeps Python's own start-up out of the figure.
Usage: wait_serving.py PORT_FILE TIMEOUT_SECONDS
Exit codes: 0 serving, 1 not serving within the timeout, 2 usage error."""
import sys
import time

import grpc

METHOD = "/grpc.health.v1.Health/Check"
SERVING = b"\x08\x01"  # field 1 (status), varint 1 (SERVING)
POLL = 0.001  # seconds between looks at the port file and between calls
# grpcio waits about 1 s before reconnecting by default; a restarting
# server must be retried sooner than that.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 5),
    ("grpc.min_reconnect_backoff_ms", 5),
    ("grpc.max_reconnect_backoff_ms", 20),
]


def read_port(path):
    """The port in path, or None while the file is missing or empty."""
    try:
        with open(path) as file:
            text = file.read().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    port_file, timeout = sys.argv[1], float(sys.argv[2])
    print("armed", flush=True)
    deadline = time.monotonic() + timeout
    port = None
    while port is None:
        if time.monotonic() > deadline:
            print(f"no port in {port_file} within {timeout} s")
            return 1
        port = read_port(port_file)
        if port is None:
            time.sleep(POLL)
    last = "no answer"
    with grpc.insecure_channel(f"127.0.0.1:{port}",
                               options=CHANNEL_OPTIONS) as channel:
        check = channel.unary_unary(METHOD)
        while time.monotonic() < deadline:
            try:
                response, call = check.with_call(
                    b"", timeout=max(0.01, deadline - time.monotonic()),
                    wait_for_ready=True)
                if call.code() == grpc.StatusCode.OK and response == SERVING:
                    print(f"serving_ns={time.time_ns()} port={port}",
                          flush=True)
                    return 0
                last = f"response {response.hex() or '(empty)'}"
            except grpc.RpcError as error:
                last = f"{error.code().name}: {error.details()}"
            time.sleep(POLL)
    print(f"port {port} not SERVING within {timeout} s: {last}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
