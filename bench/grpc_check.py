"""Calls grpc.health.v1.Health/Check with an empty request COUNT times on
127.0.0.1:PORT with python3-grpcio (an independent gRPC client) and checks
that every call ended with grpc-status 0 (OK) and the answer
HealthCheckResponse{status: SERVING}, i.e. the bytes 08 01. Prints one
summary line. Usage: grpc_check.py PORT COUNT
Exit codes: 0 all calls OK, 1 some call was not, 2 usage error."""
import sys

import grpc

METHOD = "/grpc.health.v1.Health/Check"
SERVING = b"\x08\x01"  # field 1 (status), varint 1 (SERVING)
DEADLINE = 10  # seconds per call


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    port, count = int(sys.argv[1]), int(sys.argv[2])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        # Bytes in, bytes out: no generated code needed.
        check = channel.unary_unary(METHOD)
        for index in range(count):
            try:
                response, call = check.with_call(b"", timeout=DEADLINE)
            except grpc.RpcError as error:
                print(f"call {index}: {error.code().name}: {error.details()}")
                return 1
            if call.code() != grpc.StatusCode.OK or response != SERVING:
                print(f"call {index}: status {call.code().name}, "
                      f"response {response.hex() or '(empty)'}")
                return 1
    print(f"{count} calls: grpc-status 0, response SERVING (08 01)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
