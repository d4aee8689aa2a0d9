"""Writes seed inputs for the smaller rpc fuzz targets into a folder:
fuzz_frame (a chunk-size byte, then length-prefixed gRPC messages),
fuzz_headers (grpc-timeout values, percent-encoded text, base64, a
metadata key/value split), or fuzz_wire_check (a type byte and a depth
byte as fuzz_wire_check.c reads them, then wire bytes: well-formed,
too deep, bad strings, malformed). The committed corpora under
tests/fuzz/corpus/ were made by this script.
Usage: make_rpc_seeds.py fuzz_frame|fuzz_headers|fuzz_wire_check DIR"""
import os
import struct
import sys


def varint(n):
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def nested_struct(levels, inner=b""):
    body = inner
    for _ in range(levels):
        body = field(1, field(1, b"k") + field(2, field(5, body)))
    return body


def recursive(depth):
    body = field(2, 7)
    for _ in range(depth):
        body = field(1, body)
    return body


def message(body, compressed=False):
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(body)) + body


# Indexes into fuzz_wire_check.c's types[].
SUBMIT, JOB, LIST, WORKER_MESSAGE, HUB_MESSAGE, STRUCT, VALUE = range(7)
SCALARS, REPEATED, MAPS, PRESENCE, WELL_KNOWN, RECURSIVE = range(7, 13)
LIMIT = 99  # depth byte: 1 + 99 % 100 = 100

SEEDS = {
    "fuzz_frame": {
        "one": b"\x04" + message(b"hello"),
        "two_split": b"\x02" + message(b"a" * 40) + message(b""),
        "compressed_flag": b"\x10" + message(b"\x1f\x8b\x08\x00", True),
        "truncated": b"\x00" + message(b"abcdef")[:7],
    },
    "fuzz_headers": {
        "timeout": b"100m",
        "timeout_hours": b"99999999H",
        "percent": b"a%20b%E2%82%AC%",
        "base64": b"AQIDBA==",
        "metadata": b"\x03x-a-binAQI",
        "utf8": "caf\u00e9 \u20ac".encode(),
    },
    "fuzz_wire_check": {
        "submit": bytes([SUBMIT, LIMIT]) + field(1, 3) + field(3, b"s\xc3\xa9")
            + field(4, field(5, nested_struct(3, field(1, field(1, b"n")))))
            + field(6, field(1, b"k") + field(2, b"v")),
        "submit_deep": bytes([SUBMIT, LIMIT])
            + field(4, field(5, nested_struct(40))),
        "submit_bad_utf8": bytes([SUBMIT, LIMIT]) + field(3, b"\xed\xa0\x80"),
        "submit_nul": bytes([SUBMIT, LIMIT]) + field(3, b"a\x00"),
        "struct_limit_95": bytes([STRUCT, 94]) + nested_struct(31),
        "value_list": bytes([VALUE, LIMIT]) + field(6, field(1, field(3, b"x"))
                                                    + field(1, field(2, b"")))
            + bytes([0x11]) + b"\x00" * 8,
        "worker_hello": bytes([WORKER_MESSAGE, LIMIT])
            + field(1, field(1, b"w") + field(7, b"l.1")),
        "scalars": bytes([SCALARS, LIMIT]) + field(3, 5) + bytes([0x0d])
            + b"\x01\x02\x03\x04" + field(14, b"str") + field(15, b"\xff"),
        "repeated_packed": bytes([REPEATED, LIMIT]) + field(1, b"\x01\x02")
            + field(4, b"a") + field(7, field(14, b"b")),
        "maps": bytes([MAPS, LIMIT]) + field(1, field(1, b"k") + field(2, b"v"))
            + field(7, field(1, b"k") + field(2, field(3, b"v"))),
        "presence": bytes([PRESENCE, LIMIT]) + field(3, b"n") + field(5, b""),
        "recursive_100": bytes([RECURSIVE, LIMIT]) + recursive(100),
        "recursive_101": bytes([RECURSIVE, LIMIT]) + recursive(101),
        "unknown_fields": bytes([SCALARS, LIMIT]) + field(99, b"\xff")
            + bytes([0x99, 0x06]) + b"\x00" * 8,
        "malformed": bytes([SCALARS, LIMIT]) + b"\x72\x05ab\x0b",
    },
}

target, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
for name, body in SEEDS[target].items():
    with open(os.path.join(out, "seed_" + name), "wb") as f:
        f.write(body)
