"""End-to-end: requests the hub must refuse before unpacking them
(rpc/wire_check.h), sent as hand-built wire bytes through python3-grpcio
(python protobuf would refuse to build most of them):

- messages nested deeper than the request limit (RPC_MAX_REQUEST_DEPTH,
  96: protobuf's 100 less room for the answers that wrap a request's
  contents), on Submit and on routed methods whose handlers answer
  UNIMPLEMENTED: INVALID_ARGUMENT, no crash, the hub still serves;
- string fields that are not UTF-8 or hold a NUL byte: INVALID_ARGUMENT
  naming the field, and nothing stored that grpcio cannot read back.

Each test has a hub of its own, which must exit cleanly after it."""
import json
import os
import subprocess

import grpc
import pytest

from conftest import BUILD
from hub_client import common_pb2, expect_error, new_pool, struct

REQUEST_DEPTH = 96  # RPC_MAX_REQUEST_DEPTH
TIMEOUT = 30
JOBHUB = os.path.join(BUILD, "client", "jobhub")


def varint(n):
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def field(number, payload):
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def number_field(number, value):
    return varint(number << 3) + varint(value)


def nested_struct(levels, innermost=b""):
    """A google.protobuf.Struct `levels` JSON levels deep: {"k": {"k": ...
    innermost}}. Each level is 3 messages: the map entry, the Value and
    the Struct it holds."""
    body = innermost
    for _ in range(levels):
        body = field(1, field(1, b"k") + field(2, field(5, body)))
    return body


def submit_bytes(pool, job_type, params=b"", subject=None, meta=()):
    """SubmitRequest: job_type_id 1, pool_id 2, subject 3, config 4
    (JobConfig.module_params 5), meta 6 (entries: key 1, value 2)."""
    out = number_field(1, job_type) + number_field(2, pool)
    if subject is not None:
        out += field(3, subject)
    if params:
        out += field(4, field(5, params))
    for key, value in meta:
        out += field(6, field(1, key) + field(2, value))
    return out


def submit_at_depth(pool, job_type, depth):
    """A SubmitRequest whose deepest message is at `depth` (the request at
    0): config 1, module_params 2, then 3 per Struct level; an entry with
    only its key ends the chain one level early when needed."""
    levels, rest = divmod(depth - 2, 3)
    inner = {0: b"", 1: field(1, field(1, b"k")),
             2: field(1, field(1, b"k") + field(2, b""))}[rest]
    return submit_bytes(pool, job_type, nested_struct(levels, inner))


def raw_call(channel, path, body):
    return channel.unary_unary(path)(body, timeout=TIMEOUT)


def health_serving(channel):
    # grpc.health.v1.HealthCheckResponse{status: SERVING} is 08 01.
    return raw_call(channel, "/grpc.health.v1.Health/Check", b"") == b"\x08\x01"


def expect_invalid(channel, path, body):
    return expect_error(grpc.StatusCode.INVALID_ARGUMENT, raw_call, channel,
                        path, body)


def test_submit_nested_3000_deep_is_refused_and_the_hub_serves(client):
    pool, job_type = new_pool()
    body = submit_bytes(pool, job_type, nested_struct(3000))
    assert 40000 < len(body) < 50000  # the 41 KB
    message = expect_invalid(client.channel, "/jobhub.v1.Jobs/Submit", body)
    assert message.startswith("config.module_params.fields.value.")
    assert message.endswith(": nested deeper than %d levels" % REQUEST_DEPTH)
    assert health_serving(client.channel)
    job = client.submit(pool, job_type, subject="after")
    assert client.get(job.id).subject == "after"


def test_submit_nested_2000_deep_is_refused_and_nothing_stored(client):
    pool, job_type = new_pool()
    body = submit_bytes(pool, job_type, nested_struct(2000))
    expect_invalid(client.channel, "/jobhub.v1.Jobs/Submit", body)
    # List parses in grpcio: nothing deep was stored.
    assert client.list_all(pool_id=pool, job_type_id=job_type) == []


def test_submit_at_the_limit_is_accepted_and_reads_back(client):
    pool, job_type = new_pool()
    refused = submit_at_depth(pool, job_type, REQUEST_DEPTH + 1)
    message = expect_invalid(client.channel, "/jobhub.v1.Jobs/Submit",
                             refused)
    assert "nested deeper than %d levels" % REQUEST_DEPTH in message
    body = submit_at_depth(pool, job_type, REQUEST_DEPTH)
    job = common_pb2.Job.FromString(
        raw_call(client.channel, "/jobhub.v1.Jobs/Submit", body))
    # The answers that carry it, one and two levels deeper than the
    # request, still parse in grpcio (protobuf's limit is 100).
    got = client.get(job.id)
    assert got.config.module_params == job.config.module_params
    listed = client.list_all(pool_id=pool, job_type_id=job_type)
    assert [j.id for j in listed] == [job.id]
    assignment = client.lease_one(pool, job_type)
    assert assignment.job.config.module_params == job.config.module_params
    # And in the CLI, whose raw calls go through rpc/json.
    for args in (["jobs", "get", job.id], ["jobs", "list", "--pool", str(pool)]):
        p = subprocess.run([JOBHUB, "--addr", client.address] + args,
                           capture_output=True, text=True, timeout=TIMEOUT)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        assert job.id in json.dumps(json.loads(p.stdout))


@pytest.mark.parametrize("path,body", [
    # Hub.UpdateSettings(values Struct = 1): no handler in jobhubd.
    ("/jobhub.v1.Hub/UpdateSettings", field(1, nested_struct(3000))),
    # Series.Run(config JobConfig = 6): no handler either.
    ("/jobhub.v1.Series/Run", field(6, field(5, nested_struct(3000)))),
], ids=["Hub.UpdateSettings", "Series.Run"])
def test_unimplemented_methods_refuse_deep_requests(client, path, body):
    expect_invalid(client.channel, path, body)
    assert health_serving(client.channel)
    # A shallow request reaches the handler, which has none.
    expect_error(grpc.StatusCode.UNIMPLEMENTED, raw_call, client.channel,
                 path, b"")


def test_subject_not_utf8_is_refused_by_name(client):
    pool, job_type = new_pool()
    for subject in (b"\xff", b"caf\xc3", b"\xed\xa0\x80", b"\xc0\xaf"):
        message = expect_invalid(
            client.channel, "/jobhub.v1.Jobs/Submit",
            submit_bytes(pool, job_type, subject=subject))
        assert message == "subject: invalid UTF-8"
    # What was accepted reads back in grpcio: List and Get parse.
    job = client.submit(pool, job_type, subject="caf\u00e9")
    assert client.get(job.id).subject == "caf\u00e9"
    assert [j.subject for j in client.list_all(
        pool_id=pool, job_type_id=job_type)] == ["caf\u00e9"]


def test_subject_with_nul_is_refused(client):
    pool, job_type = new_pool()
    message = expect_invalid(client.channel, "/jobhub.v1.Jobs/Submit",
                             submit_bytes(pool, job_type, subject=b"a\x00b"))
    assert message == "subject: contains a NUL byte"
    assert client.list_all(pool_id=pool, job_type_id=job_type) == []


def test_meta_key_not_utf8_is_refused(client):
    pool, job_type = new_pool()
    message = expect_invalid(
        client.channel, "/jobhub.v1.Jobs/Submit",
        submit_bytes(pool, job_type, meta=[(b"t\xffeam", b"ops")]))
    assert message == "meta.key: invalid UTF-8"
    message = expect_invalid(
        client.channel, "/jobhub.v1.Jobs/Submit",
        submit_bytes(pool, job_type, meta=[(b"team", b"o\x00ps")]))
    assert message == "meta.value: contains a NUL byte"
    # A string deep in module_params too.
    params = field(1, field(1, b"k") + field(2, field(3, b"\xe2\x82")))
    message = expect_invalid(client.channel, "/jobhub.v1.Jobs/Submit",
                             submit_bytes(pool, job_type, params))
    assert message == ("config.module_params.fields.value.string_value: "
                       "invalid UTF-8")
    job = client.submit(pool, job_type, meta={"team": "ops"},
                        config=common_pb2.JobConfig(
                            module_params=struct(k="\u20ac")))
    assert dict(client.get(job.id).meta) == {"team": "ops"}
