"""The store's hardening end to end against the real jobhubd: one hub per
data dir (a lock file naming the holder), a full disk (refused Submits
leave no trace, Health says NOT_SERVING, writes resume once space is
back), idempotency keys reused with another request, bounds on
lease_seconds and progress, and an empty database file said out loud.

The disk-full test mounts a small tmpfs, so it runs as root (as on this
machine and in CI); it fails, not skips, when the mount fails."""
import concurrent.futures
import errno
import math
import os
import re
import shutil
import subprocess
import tempfile
import time

import grpc
import pytest

import health_pb2
from conftest import JOBHUBD
from hub_client import (CANCELLED, DONE, IN_PROGRESS, QUEUED, ConnectWorker,
                        HubClient, expect_error, new_pool, start_hub,
                        stop_hub, wait_until)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
NOT_FOUND_CODE = grpc.StatusCode.NOT_FOUND.value[0]


def health(address, service=""):
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=health_pb2.HealthCheckResponse.FromString)
        return call(health_pb2.HealthCheckRequest(service=service),
                    timeout=5).status


@pytest.fixture
def data_dir():
    path = tempfile.mkdtemp(prefix="jobhub-store-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# One hub per data dir.

def test_second_hub_on_the_same_data_dir_exits_naming_the_holder(data_dir):
    data = os.path.join(data_dir, "var")
    first = start_hub(["--data", data])
    try:
        with HubClient(first.address) as client:
            pool, job_type = new_pool()
            before = [client.submit(pool, job_type, payload=b"first-%d" % i)
                      for i in range(3)]
            second = subprocess.Popen(
                [JOBHUBD, "--listen", "127.0.0.1:0", "--data", data],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                output, _ = second.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                second.kill()
                output, _ = second.communicate()
                raise AssertionError("a second hub on %s kept running:\n%s"
                                     % (data, output.decode(errors="replace")))
            output = output.decode(errors="replace")
            assert second.returncode == 1, output
            assert ("data dir %s is in use by jobhubd pid %d"
                    % (data, first.process.pid)) in output, output
            # The first hub keeps its jobs and its ids.
            for job in before:
                assert client.get(job.id).payload == job.payload
            after = client.submit(pool, job_type, payload=b"after")
            assert int(after.id, 16) == int(before[-1].id, 16) + 1
    finally:
        stop_hub(first)
    again = start_hub(["--data", data])
    try:
        with HubClient(again.address) as client:
            for job in before + [after]:
                assert client.get(job.id).payload == job.payload
    finally:
        stop_hub(again)


# A full disk.

@pytest.fixture
def small_disk():
    """A 6 MiB tmpfs, unmounted afterwards. Fails (not skips) when it
    cannot be mounted: the test needs a real full disk."""
    mount_point = tempfile.mkdtemp(prefix="jobhub-tmpfs-")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0755", "jobhub-test",
         mount_point], capture_output=True, text=True)
    assert mounted.returncode == 0, (
        "cannot mount a tmpfs at %s (the test runs as root): %s"
        % (mount_point, mounted.stderr))
    yield mount_point
    for _ in range(50):  # a hub still exiting may hold it for a moment
        if subprocess.run(["umount", mount_point]).returncode == 0:
            break
        time.sleep(0.1)
    else:
        subprocess.run(["umount", "-l", mount_point])
    os.rmdir(mount_point)


def fill(path):
    """Writes path until the disk is full; returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    try:
        for chunk in (1 << 20, 64 << 10, 4 << 10, 512):
            block = b"\0" * chunk
            while True:
                try:
                    n = os.write(fd, block)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    break
                written += n
                if n < chunk:
                    break
    finally:
        os.close(fd)
    return written


def submit_code(address, pool, job_type, payload):
    with HubClient(address) as client:
        try:
            return client.submit(pool, job_type, payload=payload), None
        except grpc.RpcError as error:
            return None, error


def test_disk_full_refuses_submits_without_a_trace_and_recovers(small_disk):
    data = os.path.join(small_disk, "var")
    hub = start_hub(["--data", data])
    pool, job_type = new_pool()
    acked = {}
    worker = holder = None
    try:
        client = HubClient(hub.address)
        worker = ConnectWorker(hub.address, "disk-full-worker", pool,
                               [job_type], capacity=100, auto_complete=True)
        worker.wait_welcome()
        for i in range(5):
            job = client.submit(pool, job_type, payload=b"before-%d" % i)
            acked[job.id] = job
        worker.wait_for(lambda w: len([
            m for m in w.messages if m.WhichOneof("message") == "result_ack"
            and m.result_ack.code == 0]) >= 5, what="5 results stored")
        # A job leased by a unary worker and one queued, both durable: the
        # Complete and the Cancel on the full disk are undone.
        other_pool, other_type = new_pool()
        running = client.submit(other_pool, other_type, payload=b"running")
        lease = client.lease_one(other_pool, other_type)
        waiting = client.submit(other_pool, other_type, payload=b"waiting")
        held_pool, held_type = new_pool()
        holder = ConnectWorker(hub.address, "holder", held_pool, [held_type])
        held = client.submit(held_pool, held_type, payload=b"held")
        held_assignment = holder.wait_assignments(1)[0]
        time.sleep(0.2)  # the leases are written behind the answers
        assert health(hub.address) == SERVING

        filler = os.path.join(small_disk, "filler")
        assert fill(filler) > 0
        payload = b"p" * 8192
        refusals = []
        for _ in range(10):
            job, error = submit_code(hub.address, pool, job_type, payload)
            assert job is None, "a Submit on a full disk succeeded: %s" % job
            refusals.append(error)
        with concurrent.futures.ThreadPoolExecutor(8) as threads:
            outcomes = list(threads.map(
                lambda _: submit_code(hub.address, pool, job_type, payload),
                range(41)))
        for job, error in outcomes:
            assert job is None, "a Submit on a full disk succeeded: %s" % job
            refusals.append(error)
        assert len(refusals) == 51
        for error in refusals:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (
                error.code(), error.details())
            assert "disk full" in error.details(), error.details()
        assert health(hub.address) == NOT_SERVING
        assert health(hub.address, "jobhub.v1.Jobs") == NOT_SERVING
        assert health(hub.address, "jobhub.v1.Workers") == NOT_SERVING

        # None of the refused jobs is visible or leasable: the worker may
        # have been handed some before their write failed; each of those
        # was taken back (its result refused NOT_FOUND).
        listed = {job.id for job in client.list_all(pool_id=pool,
                                                    job_type_id=job_type)}
        assert listed == set(acked), (listed, set(acked))
        with worker._cond:
            handed = [a.job.id for a in worker.assignments
                      if a.job.id not in acked]
        for job_id in handed:
            expect_error(grpc.StatusCode.NOT_FOUND, client.get, job_id)

            def refused_ack(w, job_id=job_id):
                return [m for m in w.messages
                        if m.WhichOneof("message") == "result_ack" and
                        m.result_ack.job_id == job_id]
            acks = worker.wait_for(refused_ack, what="the ack of " + job_id)
            assert acks[-1].result_ack.code == NOT_FOUND_CODE, acks
        assert client.lease(pool, job_type, client_id="other") == []

        # A Complete and a Cancel whose writes fail are answered so, and
        # undone: the jobs are as before, and a retry may succeed.
        message = expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               client.complete, lease, "late")
        assert "disk full" in message, message
        assert client.get(running.id).state == IN_PROGRESS
        message = expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               client.jobs.Cancel, id=waiting.id)
        assert "disk full" in message, message
        assert client.get(waiting.id).state == QUEUED

        def acks_of(job_id):
            return lambda w: [m.result_ack for m in w.messages
                              if m.WhichOneof("message") == "result_ack" and
                              m.result_ack.job_id == job_id]
        holder.complete(held_assignment, "held result")
        ack = holder.wait_for(acks_of(held.id), what="the ack of held")[-1]
        assert ack.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], ack
        assert "disk full" in ack.message, ack
        assert client.get(held.id).state == IN_PROGRESS

        # Space comes back: writes resume, Health turns SERVING.
        os.remove(filler)
        job = wait_until(
            lambda: submit_code(hub.address, pool, job_type, payload)[0],
            timeout=10, what="a Submit to succeed once space is back")
        acked[job.id] = job
        for i in range(5):
            job = client.submit(pool, job_type, payload=b"after-%d" % i)
            acked[job.id] = job
        wait_until(lambda: health(hub.address) == SERVING, timeout=5,
                   what="Health to say SERVING again")
        assert health(hub.address, "jobhub.v1.Jobs") == SERVING
        assert client.complete(lease, "late").state == DONE
        assert client.jobs.Cancel(id=waiting.id).state == CANCELLED
        holder.complete(held_assignment, "held result")  # sent again
        holder.wait_for(lambda w: len(acks_of(held.id)(w)) == 2,
                        what="the second ack of held")
        assert acks_of(held.id)(holder)[-1].code == 0
        assert client.get(held.id).state == DONE
        worker.wait_for(lambda w: set(acked) <= set(w.completed),
                        what="every acknowledged job to be run")
        client.close()
    finally:
        for connected in (worker, holder):
            if connected is not None:
                connected.cancel()
        stop_hub(hub)

    # After a restart: every acknowledged job, no refused one.
    hub = start_hub(["--data", data])
    try:
        with HubClient(hub.address) as client:
            listed = {job.id: job for job in client.list_all(
                pool_id=pool, job_type_id=job_type)}
            assert set(listed) == set(acked)
            for job_id, job in acked.items():
                assert listed[job_id].payload == job.payload
            for job_id in handed:
                expect_error(grpc.StatusCode.NOT_FOUND, client.get, job_id)
            assert client.get(running.id).state == DONE
            assert client.jobs.GetResult(
                id=running.id).value.string_value == "late"
            assert client.get(waiting.id).state == CANCELLED
            assert client.jobs.GetResult(
                id=held.id).value.string_value == "held result"
    finally:
        stop_hub(hub)


# Idempotency keys.

def test_idempotency_key_with_another_request_is_already_exists(data_dir):
    data = os.path.join(data_dir, "var")
    pool, job_type = new_pool()
    request = dict(payload=b"the request", priority=3,
                   idempotency_key="key-1", lease_seconds=30)
    hub = start_hub(["--data", data])
    try:
        with HubClient(hub.address) as client:
            job = client.submit(pool, job_type, **request)
            assert client.submit(pool, job_type, **request).id == job.id
            for change in (dict(payload=b"another request"),
                           dict(priority=4), dict(lease_seconds=31)):
                message = expect_error(
                    grpc.StatusCode.ALREADY_EXISTS, client.submit, pool,
                    job_type, **dict(request, **change))
                assert job.id in message and "key-1" in message, message
            message = expect_error(grpc.StatusCode.ALREADY_EXISTS,
                                   client.submit, pool, job_type + 1,
                                   **request)
            assert job.id in message, message
            assert len(client.list_all(pool_id=pool, any_job_type=True)) == 1
    finally:
        stop_hub(hub)
    hub = start_hub(["--data", data])
    try:
        with HubClient(hub.address) as client:
            message = expect_error(
                grpc.StatusCode.ALREADY_EXISTS, client.submit, pool, job_type,
                **dict(request, payload=b"another request"))
            assert job.id in message, message
            assert client.submit(pool, job_type, **request).id == job.id
    finally:
        stop_hub(hub)


# Bounds.

def test_lease_seconds_over_seven_days_is_invalid():
    hub = start_hub()
    try:
        with HubClient(hub.address) as client:
            pool, job_type = new_pool()
            week = 7 * 24 * 3600
            for seconds in (2 ** 32 - 1, week + 1):
                message = expect_error(grpc.StatusCode.INVALID_ARGUMENT,
                                       client.submit, pool, job_type,
                                       lease_seconds=seconds)
                assert "lease_seconds" in message, message
            assert client.list_all(pool_id=pool, job_type_id=job_type) == []
            job = client.submit(pool, job_type, lease_seconds=week)
            assert client.get(job.id).id == job.id
    finally:
        stop_hub(hub)


def test_progress_must_be_a_fraction():
    hub = start_hub()
    try:
        with HubClient(hub.address) as client:
            pool, job_type = new_pool()
            job = client.submit(pool, job_type)
            assignment = client.lease_one(pool, job_type)

            def progress(value):
                return client.workers.Progress(
                    client_id="unary-worker", job_id=job.id,
                    lease_id=assignment.lease_id, progress=value)
            for value in (math.nan, math.inf, -math.inf, -0.5, 1.5):
                message = expect_error(grpc.StatusCode.INVALID_ARGUMENT,
                                       progress, value)
                assert "progress" in message, message
            assert client.get(job.id).progress == 0
            assert progress(0.25).progress == 0.25
            assert progress(1).progress == 1
            assert client.get(job.id).progress == 1
    finally:
        stop_hub(hub)


# An empty database file.

def test_empty_database_file_is_logged(data_dir):
    data = os.path.join(data_dir, "var")
    os.makedirs(data)
    open(os.path.join(data, "jobhub.db"), "wb").close()
    hub = start_hub(["--data", data])
    try:
        output = hub.output()
        assert re.search(r"store_file_empty.*jobhub\.db.*0 bytes", output), \
            output
        with HubClient(hub.address) as client:
            pool, job_type = new_pool()
            client.submit(pool, job_type)
    finally:
        stop_hub(hub)
