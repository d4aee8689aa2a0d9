"""Lease ids cannot be forged or used by another worker, capacities are
capped, and a worker whose Connect streams keep ending before it starts
its jobs neither burns their attempts nor keeps taking jobs
(docs/core-design.md "Leases", "Connect")."""
import re
import shutil
import tempfile
import time

import grpc

from hub_client import (DONE, FAILED, IN_PROGRESS, QUEUED, ConnectWorker,
                        HubClient, common_pb2, expect_error, jobs_pb2,
                        new_pool, start_hub, stop_hub, wait_until,
                        workers_pb2)

LEASE_ID = re.compile(r"^([0-9a-f]{16})\.([0-9]+)\.([0-9a-f]{32,})$")
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]


def submit_many(channel, pool, job_type, count, **fields):
    """Submits count jobs with pipelined calls; returns their ids."""
    call = channel.unary_unary(
        "/jobhub.v1.Jobs/Submit",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=common_pb2.Job.FromString)
    ids = []
    for start in range(0, count, 200):
        futures = [call.future(jobs_pb2.SubmitRequest(
            pool_id=pool, job_type_id=job_type, payload=b"x", **fields),
            timeout=60) for _ in range(start, min(count, start + 200))]
        ids.extend(f.result().id for f in futures)
    return ids


def result_of(value):
    result = common_pb2.JobResult()
    result.value.string_value = value
    return result


def lease_answers(client, word):
    """Each unary call that answers for a lease, with the fields besides
    client_id, job_id and lease_id: (method, fields)."""
    return [(client.workers.Complete, dict(result=result_of(word))),
            (client.workers.Fail, dict(error=word, retryable=False)),
            (client.workers.Fail, dict(error=word, retryable=True)),
            (client.workers.Progress, dict(progress=0.5))]


def first_result_ack(worker, what):
    """The first ResultAck the Connect worker got (waits for it)."""
    return worker.wait_for(
        lambda w: [m.result_ack for m in w.messages
                   if m.WhichOneof("message") == "result_ack"], what=what)[0]


def complete_as_owner(client, assignment, value):
    """The lease's holder, "owner", completes it: DONE, with its result."""
    done = client.complete(assignment, value=value, client_id="owner")
    assert done.state == DONE
    assert client.jobs.GetResult(
        id=assignment.job.id).value.string_value == value


def unchanged(client, job_id, attempts=1):
    job = client.get(job_id)
    assert job.state == IN_PROGRESS, job
    assert job.attempts == attempts and job.progress == 0, job
    return job


def test_forged_lease_id_is_not_found_and_changes_nothing(hub):
    with HubClient(hub.address) as client:
        pool, job_type = new_pool()
        job = client.submit(pool, job_type)
        real = client.lease_one(pool, job_type, client_id="owner")
        match = LEASE_ID.match(real.lease_id)
        assert match, real.lease_id
        secret = match.group(3)
        wrong = ("0" if secret[0] != "0" else "1") + secret[1:]
        forged = [
            job.id + ".1",  # the form lease ids had: job id, number
            job.id + ".1." + wrong,  # one hex digit off
            job.id + ".1." + "0" * 32,
            job.id + ".2." + secret,  # the secret, another number
        ]
        for lease_id in forged:
            # Even with the holder's own client_id.
            for client_id in ("owner", "intruder"):
                for call, fields in lease_answers(client, "forged"):
                    expect_error(grpc.StatusCode.NOT_FOUND, call,
                                 client_id=client_id, job_id=job.id,
                                 lease_id=lease_id, **fields)
                expect_error(grpc.StatusCode.NOT_FOUND,
                             client.workers.Heartbeat,
                             client_id=client_id, lease_ids=[lease_id])
            unchanged(client, job.id)
        complete_as_owner(client, real, "real")


def test_lease_of_another_worker_is_permission_denied(hub):
    with HubClient(hub.address) as client:
        pool, job_type = new_pool()
        job = client.submit(pool, job_type)
        real = client.lease_one(pool, job_type, client_id="owner")
        for call, fields in lease_answers(client, "stolen"):
            message = expect_error(
                grpc.StatusCode.PERMISSION_DENIED, call,
                client_id="intruder", job_id=job.id,
                lease_id=real.lease_id, **fields)
            assert "another worker" in message
            unchanged(client, job.id)
        expect_error(grpc.StatusCode.PERMISSION_DENIED,
                     client.workers.Heartbeat, client_id="intruder",
                     lease_ids=[real.lease_id])
        unchanged(client, job.id)
        # The holder's own calls work.
        client.workers.Heartbeat(client_id="owner",
                                 lease_ids=[real.lease_id])
        client.workers.Progress(client_id="owner", job_id=job.id,
                                lease_id=real.lease_id, progress=0.25)
        assert client.get(job.id).progress == 0.25
        complete_as_owner(client, real, "mine")


def test_lease_of_a_connect_worker_is_bound_to_its_stream(hub):
    with HubClient(hub.address) as client:
        pool, job_type = new_pool()
        with ConnectWorker(hub.address, "owner", pool, [job_type]) as owner, \
                ConnectWorker(hub.address, "intruder", pool,
                              [job_type + 1]) as intruder:
            owner.wait_welcome()
            intruder.wait_welcome()
            job = client.submit(pool, job_type)
            real = owner.wait_assignments(1)[0]
            # Another stream sends the owner's lease: refused with
            # PERMISSION_DENIED in its ResultAck; nothing changes.
            intruder.progress(real, 0.5)
            intruder.send(workers_pb2.WorkerMessage(
                heartbeat=workers_pb2.HeartbeatRequest(
                    client_id="intruder", lease_ids=[real.lease_id])))
            intruder.complete(real, value="stolen")
            ack = first_result_ack(intruder, "the intruder's ResultAck")
            assert ack.code == PERMISSION_DENIED, ack
            assert ack.lease_id == real.lease_id
            unchanged(client, job.id)
            # A unary call with another client_id, too.
            expect_error(grpc.StatusCode.PERMISSION_DENIED,
                         client.complete, real, client_id="intruder")
            unchanged(client, job.id)
            # The holder: its own client_id on a unary call, and its
            # stream.
            client.workers.Progress(client_id="owner", job_id=job.id,
                                    lease_id=real.lease_id, progress=0.75)
            owner.complete(real, value="mine")
            wait_until(lambda: client.get(job.id).state == DONE,
                       what="the owner's result")
            assert client.jobs.GetResult(
                id=job.id).value.string_value == "mine"


def test_lease_ids_carry_a_secret_that_differs_between_leases():
    hub = start_hub(["--retry-backoff-ms", "10"])
    try:
        with HubClient(hub.address) as client:
            pool, job_type = new_pool()
            ids = [client.submit(pool, job_type).id for _ in range(2)]
            got = client.lease(pool, job_type, client_id="w", max_jobs=2,
                               wait_ms=5000)
            assert len(got) == 2
            secrets = []
            for assignment in got:
                match = LEASE_ID.match(assignment.lease_id)
                assert match, assignment.lease_id
                assert match.group(1) == assignment.job.id
                assert match.group(2) == "1"
                secrets.append(match.group(3))
            # The same job leased again: another secret.
            client.fail(got[0], "again", retryable=True, client_id="w")
            again = client.lease_one(pool, job_type, client_id="w")
            assert again.job.id == got[0].job.id
            match = LEASE_ID.match(again.lease_id)
            assert match and match.group(2) == "2"
            secrets.append(match.group(3))
            assert len(set(secrets)) == 3, secrets
            # The old lease of that job is void.
            expect_error(grpc.StatusCode.NOT_FOUND, client.complete, got[0],
                         client_id="w")
            assert sorted(ids) == sorted(a.job.id for a in got)
    finally:
        stop_hub(hub)


def test_resent_result_with_its_lease_id_succeeds_after_a_sigkill():
    data = tempfile.mkdtemp(prefix="jobhub-e2e-lease-data-")
    hub = start_hub(["--data", data])
    restarted = None
    try:
        pool, job_type = new_pool()
        with HubClient(hub.address) as client:
            stream_job = client.submit(pool, job_type)
            # The worker stays connected until the hub dies.
            worker = ConnectWorker(hub.address, "keeper", pool, [job_type])
            welcome = worker.wait_welcome()
            held = worker.wait_assignments(1)[0]
            worker.progress(held, 0.5)
            wait_until(lambda: client.get(stream_job.id).progress == 0.5,
                       what="the progress")
            unary_job = client.submit(pool, job_type + 1)
            unary_held = client.lease_one(pool, job_type + 1,
                                          client_id="unary-keeper")
            client.workers.Progress(client_id="unary-keeper",
                                    job_id=unary_job.id,
                                    lease_id=unary_held.lease_id,
                                    progress=0.5)
            client.history_ending(stream_job.id, QUEUED, IN_PROGRESS)
            client.history_ending(unary_job.id, QUEUED, IN_PROGRESS)
        hub.kill()  # also removes its folder (not the store)
        worker.cancel()
        restarted = start_hub(["--data", data])
        with HubClient(restarted.address) as client:
            assert client.get(stream_job.id).state == IN_PROGRESS
            # A forged lease id is still refused after the restart, by
            # anyone.
            secret = LEASE_ID.match(held.lease_id).group(3)
            wrong = ("0" if secret[-1] != "0" else "1")
            forged = held.lease_id[:-1] + wrong
            expect_error(grpc.StatusCode.NOT_FOUND, client.workers.Complete,
                         client_id="keeper", job_id=stream_job.id,
                         lease_id=forged, result=result_of("forged"))
            expect_error(grpc.StatusCode.NOT_FOUND, client.workers.Complete,
                         client_id="keeper", job_id=stream_job.id,
                         lease_id=stream_job.id + ".1",
                         result=result_of("forged"))
            # The worker comes back with its worker_idx and lease, and
            # re-sends its result on the stream.
            hello = workers_pb2.WorkerMessage(hello=workers_pb2.WorkerHello(
                client_id="keeper", worker_idx=welcome.worker_idx,
                pool_id=pool, job_type_ids=[job_type], capacity=1,
                resend_lease_ids=[held.lease_id]))
            with ConnectWorker(restarted.address, "keeper", pool,
                               [job_type], first_message=hello) as again:
                back = again.wait_welcome()
                assert back.worker_idx == welcome.worker_idx
                assert back.running == 1  # the recovered lease is its own
                again.complete(held, value="after the restart")
                ack = first_result_ack(again, "the ResultAck")
                assert ack.code == 0, ack
            job = client.get(stream_job.id)
            assert job.state == DONE and job.attempts == 1
            assert client.jobs.GetResult(
                id=stream_job.id).value.string_value == "after the restart"
            # The unary worker's Complete, with its lease id, succeeds.
            done = client.complete(unary_held, value="unary after",
                                   client_id="unary-keeper")
            assert done.state == DONE
    finally:
        hub.stop()  # killed already, unless the test failed first
        if restarted is not None:
            stop_hub(restarted)
        shutil.rmtree(data, ignore_errors=True)


def test_connect_capacity_is_capped_at_the_default(hub):
    pool, job_type = new_pool()
    with HubClient(hub.address) as client:
        submit_many(client.channel, pool, job_type, 1100)
        with ConnectWorker(hub.address, "greedy", pool, [job_type],
                           capacity=1000000) as worker:
            assert worker.wait_welcome().capacity == 1024
            worker.wait_assignments(1024, timeout=30)
            time.sleep(1.0)  # would more come?
            assert len(worker.assignments) == 1024
            stats = client.workers.Stats(pool_id=pool).job_types[0]
            assert stats.in_progress == 1024 and stats.queued == 76
    output = hub.output()
    assert output.count("worker_capacity_capped") == 1, output[-3000:]


def test_capacity_and_max_jobs_are_capped_by_the_flag():
    hub = start_hub(["--max-worker-capacity", "5"])
    try:
        pool, job_type = new_pool()
        with HubClient(hub.address) as client:
            submit_many(client.channel, pool, job_type, 30)
            registered = client.workers.Register(
                client_id="big", pool_id=pool, job_type_ids=[job_type],
                capacity=1000000)
            assert registered.capacity == 5
            got = client.lease(pool, job_type, client_id="poller",
                               max_jobs=1000, wait_ms=2000)
            assert len(got) == 5
            with ConnectWorker(hub.address, "greedy", pool, [job_type],
                               capacity=100) as worker:
                assert worker.wait_welcome().capacity == 5
                worker.wait_assignments(5)
                time.sleep(0.5)
                assert len(worker.assignments) == 5
            within = client.workers.Register(
                client_id="small", pool_id=pool, job_type_ids=[job_type],
                capacity=3)
            assert within.capacity == 3
    finally:
        stop_hub(hub)


def test_a_stream_that_ends_before_its_worker_starts_does_not_use_attempts(hub):
    pool, job_type = new_pool()
    with HubClient(hub.address) as client:
        ids = [client.submit(pool, job_type).id for _ in range(3)]
        with ConnectWorker(hub.address, "half", pool, [job_type],
                           capacity=3) as worker:
            worker.wait_welcome()
            got = worker.wait_assignments(3)
            by_id = {a.job.id: a for a in got}
            # It starts one (Started) and heartbeats another; the
            # third it never acknowledges.
            worker.send(workers_pb2.WorkerMessage(
                started=workers_pb2.Started(
                    lease_ids=[by_id[ids[0]].lease_id])))
            worker.send(workers_pb2.WorkerMessage(
                heartbeat=workers_pb2.HeartbeatRequest(
                    client_id="half",
                    lease_ids=[by_id[ids[1]].lease_id])))
            # Sent in order: once a progress of the first is seen, the
            # messages before it were handled.
            worker.progress(by_id[ids[0]], 0.1)
            wait_until(lambda: client.get(ids[0]).progress == 0.1,
                       what="the progress")
        wait_until(lambda: all(client.get(i).state == QUEUED
                               for i in ids), timeout=5,
                   what="the jobs back in the queue")
        assert [client.get(i).attempts for i in ids] == [1, 1, 0]
        # Its lease number was used: a late result of it is refused.
        expect_error(grpc.StatusCode.NOT_FOUND, client.complete,
                     by_id[ids[2]], client_id="half")


def test_a_flapping_worker_burns_no_attempts_and_is_paused(hub):
    pool, job_type = new_pool()
    with HubClient(hub.address) as client:
        ids = submit_many(client.channel, pool, job_type, 2000,
                          max_attempts=3)
        started = time.monotonic()
        for _ in range(3):
            worker = ConnectWorker(hub.address, "flappy", pool,
                                   [job_type], capacity=100)
            try:
                worker.wait_welcome()
                held = worker.wait_assignments(100, timeout=15)
            finally:
                worker.cancel()  # drops the stream, jobs not started
            wait_until(lambda: all(
                client.get(a.job.id).state != IN_PROGRESS
                for a in held[::10]), timeout=5,
                what="the dropped jobs out of the stream's hands")
        assert time.monotonic() - started < 10
        jobs = client.list_all(pool_id=pool, job_type_id=job_type)
        assert len(jobs) == 2000
        assert [j.id for j in jobs if j.state != QUEUED] == []
        assert [j.id for j in jobs if j.attempts != 0] == []
        # Its next Connect gets no jobs for a while (the pause).
        with ConnectWorker(hub.address, "flappy", pool, [job_type],
                           capacity=100) as paused:
            paused.wait_welcome()
            time.sleep(1.2)
            assert paused.assignments == []
        output = hub.output()
        assert output.count("worker_backoff") == 1, output[-3000:]
        assert "flappy" in output[output.index("worker_backoff"):][:300]
        # Another worker finishes them all; none failed.
        with ConnectWorker(hub.address, "good", pool, [job_type],
                           capacity=200, auto_complete=True):
            wait_until(lambda: all(
                j.state == DONE for j in client.list_all(
                    pool_id=pool, job_type_id=job_type)),
                timeout=120, interval=0.5, what="every job DONE")
        jobs = client.list_all(pool_id=pool, job_type_id=job_type)
        assert sorted(j.id for j in jobs) == sorted(ids)
        assert [j.id for j in jobs if j.state == FAILED] == []
