"""The Workers service end to end against the real jobhubd: registration
and worker_idx packing, the Lease long-poll, Connect push (capacity,
disconnect re-queue, results on the stream), sticky subjects, the admin
calls (List, Stats, Add, Delete), GetSubjectState and the status codes of
docs/core-design.md "Semantics settled for the build".

Each test has a hub of its own (started with --retry-backoff-ms 50), which
must exit cleanly after it."""
import threading
import time

import grpc
import pytest

from hub_client import (CANCELLED, DONE, FAILED, IN_PROGRESS, QUEUED,
                        ConnectWorker, expect_error, new_pool, wait_until,
                        workers_pb2)


@pytest.fixture
def hub_args():
    return ["--retry-backoff-ms", "50"]


def packed(pool_id, job_type_id, worker_id):
    return (pool_id << 20) | (job_type_id << 10) | worker_id


def states(client, ids):
    return [client.get(i).state for i in ids]


def test_register_packs_worker_idx(client):
    pool, job_type = new_pool()
    first = client.workers.Register(client_id="r1", pool_id=pool,
                                    job_type_ids=[job_type, job_type + 1],
                                    hostname="host-1", capacity=4)
    assert first.worker_idx == packed(pool, job_type, 1)
    assert (first.client_id, first.pool_id, first.hostname,
            first.capacity) == ("r1", pool, "host-1", 4)
    assert list(first.job_type_ids) == [job_type, job_type + 1]
    second = client.workers.Register(client_id="r2", pool_id=pool,
                                     job_type_ids=[job_type])
    assert second.worker_idx == packed(pool, job_type, 2)
    assert second.capacity == 1  # 0 means 1
    top = client.workers.Register(client_id="r3", pool_id=1023,
                                  job_type_ids=[1023])
    assert top.worker_idx == packed(1023, 1023, 1)
    # A registered worker leases with its idx, for every one of its types.
    job = client.submit(pool, job_type + 1)
    got = client.workers.Lease(client_id="r1", worker_idx=first.worker_idx,
                               wait_ms=2000).assignments
    assert [a.job.id for a in got] == [job.id]
    assert got[0].job.worker_idx == first.worker_idx


def test_lease_with_worker_idx_0_registers_on_the_fly(client):
    pool, job_type = new_pool()
    job = client.submit(pool, job_type)
    assignment = client.lease_one(pool, job_type, client_id="plain-http")
    assert assignment.job.id == job.id
    assert assignment.job.worker_idx == packed(pool, job_type, 1)
    workers = client.workers.List(pool_id=pool).workers
    assert [(w.worker_idx, w.client_id) for w in workers] == [
        (packed(pool, job_type, 1), "plain-http")]
    client.complete(assignment, client_id="plain-http")


def test_lease_returns_up_to_max_jobs(client):
    pool, job_type = new_pool()
    ids = [client.submit(pool, job_type).id for _ in range(5)]
    got = client.lease(pool, job_type, max_jobs=3, wait_ms=2000)
    assert [a.job.id for a in got] == ids[:3]
    got = client.lease(pool, job_type, max_jobs=10, wait_ms=2000)
    assert [a.job.id for a in got] == ids[3:]


def test_lease_long_poll_returns_when_a_job_arrives(client):
    pool, job_type = new_pool()
    answer = {}

    def poll():
        started = time.monotonic()
        answer["assignments"] = client.lease(pool, job_type,
                                             client_id="poller",
                                             wait_ms=20000)
        answer["seconds"] = time.monotonic() - started

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        # The Lease registered its worker: it is waiting now.
        wait_until(lambda: client.workers.List(pool_id=pool).workers,
                   what="the long-poll's worker")
        submitted = time.monotonic()
        job = client.submit(pool, job_type)
    finally:
        poller.join(timeout=40)
    assert not poller.is_alive()
    assert [a.job.id for a in answer["assignments"]] == [job.id]
    assert time.monotonic() - submitted < 10
    assert answer["seconds"] < 15  # did not wait for wait_ms


def test_lease_long_poll_answers_empty_after_wait_ms(client):
    pool, job_type = new_pool()
    started = time.monotonic()
    assert client.lease(pool, job_type, wait_ms=400) == []
    elapsed = time.monotonic() - started
    assert 0.39 <= elapsed < 10, elapsed
    started = time.monotonic()
    assert client.lease(pool, job_type, wait_ms=0) == []
    assert time.monotonic() - started < 5


def test_lease_whose_caller_left_gives_the_job_back_at_once(client):
    """SPEC edge case: a job taken for a Lease whose reply cannot be
    delivered (deadline passed, client gone) is QUEUED again at once,
    attempts unchanged."""
    pool, job_type = new_pool()
    expect_error(grpc.StatusCode.DEADLINE_EXCEEDED, client.workers.Lease,
                 client_id="gone", pool_id=pool, job_type_ids=[job_type],
                 wait_ms=5000, timeout=0.3)
    job = client.submit(pool, job_type)
    started = time.monotonic()
    assignment = client.lease_one(pool, job_type, client_id="present",
                                  wait_ms=10000)
    assert time.monotonic() - started < 8  # not held until a lease expiry
    assert assignment.job.id == job.id and assignment.job.attempts == 1
    # The undelivered lease (if the gone caller's Lease took the job before
    # the hub saw it leave) keeps its number: lease ids never repeat.
    assert assignment.lease_id.rsplit(".", 1)[0] in (job.id + ".1",
                                                 job.id + ".2")
    client.complete(assignment, client_id="present")


def test_connect_welcome_then_pushed_assignments_up_to_capacity(hub, client):
    pool, job_type = new_pool()
    early = client.submit(pool, job_type)
    with ConnectWorker(hub.address, "pushed", pool, [job_type], capacity=3,
                       hostname="box-7") as worker:
        welcome = worker.wait_welcome()
        assert welcome.worker_idx == packed(pool, job_type, 1)
        assert (welcome.client_id, welcome.hostname, welcome.capacity) == (
            "pushed", "box-7", 3)
        assert worker.wait_assignments(1)[0].job.id == early.id
        ids = [early.id] + [client.submit(pool, job_type).id for _ in range(5)]
        got = worker.wait_assignments(3)
        assert [a.job.id for a in got] == ids[:3]
        assert worker.messages[0].WhichOneof("message") == "welcome"
        # Never more than capacity in flight: the hub holds the rest.
        assert states(client, ids) == [IN_PROGRESS] * 3 + [QUEUED] * 3
        assert len(worker.assignments) == 3
        worker.complete(got[0])
        got = worker.wait_assignments(4)
        assert got[3].job.id == ids[3]
        wait_until(lambda: client.get(ids[0]).state == DONE)
        assert states(client, ids[1:]) == [IN_PROGRESS] * 3 + [QUEUED] * 2
        assert len(worker.assignments) == 4
        for assignment in got[1:]:
            worker.complete(assignment)
        got = worker.wait_assignments(6)
        assert [a.job.id for a in got] == ids
        assert all(a.job.attempts == 1 and
                   a.lease_id.rsplit(".", 1)[0] == a.job.id + ".1"
                   for a in got)
        for assignment in got[4:]:
            worker.complete(assignment)
        wait_until(lambda: states(client, ids) == [DONE] * 6,
                   what="every job DONE")
        result = client.jobs.GetResult(id=ids[2])
        assert result.value.string_value == "done:" + ids[2]
        worker.close()
        assert worker.code == grpc.StatusCode.OK


def test_connect_results_progress_and_errors_on_the_stream(hub, client):
    pool, job_type = new_pool()
    with ConnectWorker(hub.address, "streamer", pool, [job_type],
                       capacity=3) as worker:
        worker.wait_welcome()
        ids = [client.submit(pool, job_type, max_attempts=2).id
               for _ in range(3)]
        ok, retry, broken = worker.wait_assignments(3)
        worker.progress(ok, 0.5, "half")
        wait_until(lambda: client.get(ids[0]).progress == 0.5)
        assert client.get(ids[0]).progress_message == "half"
        worker.send(workers_pb2.WorkerMessage(
            heartbeat=workers_pb2.HeartbeatRequest(
                client_id="streamer", lease_ids=[ok.lease_id])))
        worker.complete(ok, "fine")
        worker.fail(retry, "try later", retryable=True)
        worker.fail(broken, "cannot", retryable=False)
        wait_until(lambda: client.get(ids[2]).state == FAILED)
        assert client.get(ids[2]).error == "cannot"
        wait_until(lambda: client.get(ids[0]).state == DONE)
        assert client.jobs.GetResult(id=ids[0]).value.string_value == "fine"
        again = worker.wait_assignments(4)[3]  # after the backoff
        assert again.job.id == ids[1] and again.job.attempts == 2
        worker.fail(again, "still", retryable=True)  # the last attempt
        wait_until(lambda: client.get(ids[1]).state == FAILED)
        assert client.get(ids[1]).error == "still"
        worker.close()


def test_connect_stream_reset_requeues_its_jobs_at_once(hub, client):
    pool, job_type = new_pool()
    worker = ConnectWorker(hub.address, "doomed", pool, [job_type],
                           capacity=2)
    try:
        worker.wait_welcome()
        ids = [client.submit(pool, job_type).id for _ in range(3)]
        held = worker.wait_assignments(2)
        assert states(client, ids) == [IN_PROGRESS, IN_PROGRESS, QUEUED]
        # It started them (progress acknowledges a lease): their attempts
        # count when it goes. (Jobs it never acknowledged go back with
        # the attempt not counted: test_lease_security.py.)
        for assignment in held:
            worker.progress(assignment, 0.5)
        wait_until(lambda: all(client.get(a.job.id).progress == 0.5
                               for a in held), timeout=5,
                   what="the progress of the held jobs")
    finally:
        worker.cancel()  # RST_STREAM, the client gone
    # Back at once, not after the 60 s lease.
    wait_until(lambda: states(client, ids) == [QUEUED] * 3, timeout=5,
               what="the reset stream's jobs to be QUEUED")
    for assignment in held:
        job = client.get(assignment.job.id)
        assert job.attempts == 1  # the attempt counts
        events = client.history_ending(job.id, IN_PROGRESS, QUEUED)
        assert events[-1].actor == "hub"
    # Its stale lease is refused; another worker gets the jobs.
    expect_error(grpc.StatusCode.NOT_FOUND, client.complete, held[0],
                 client_id="doomed")
    with ConnectWorker(hub.address, "heir", pool, [job_type], capacity=3,
                       auto_complete=True) as heir:
        got = heir.wait_assignments(3)
        assert sorted(a.job.id for a in got) == sorted(ids)
        assert {a.job.id: a.job.attempts for a in got} == {
            ids[0]: 2, ids[1]: 2, ids[2]: 1}
        wait_until(lambda: states(client, ids) == [DONE] * 3)
        heir.close()


def test_connect_half_close_requeues_its_jobs_at_once(hub, client):
    pool, job_type = new_pool()
    with ConnectWorker(hub.address, "leaving", pool, [job_type],
                       capacity=1) as worker:
        worker.wait_welcome()
        job = client.submit(pool, job_type)
        worker.wait_assignments(1)
        worker.close()  # the request stream ends: the worker leaves
        assert worker.code == grpc.StatusCode.OK
    wait_until(lambda: client.get(job.id).state == QUEUED, timeout=5,
               what="the job of the worker that left")
    assert list(client.workers.List(pool_id=pool).workers) == []


def test_connect_first_message_must_be_hello(hub):
    pool, job_type = new_pool()
    beat = workers_pb2.WorkerMessage(heartbeat=workers_pb2.HeartbeatRequest(
        client_id="rude"))
    with ConnectWorker(hub.address, "rude", pool, [job_type],
                       first_message=beat) as worker:
        code = worker.wait_ended()
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert "hello" in worker.details
        assert worker.welcome is None and worker.messages == []
    empty = workers_pb2.WorkerMessage(hello=workers_pb2.WorkerHello(
        pool_id=pool, job_type_ids=[job_type]))
    with ConnectWorker(hub.address, "", pool, [job_type],
                       first_message=empty) as worker:
        assert worker.wait_ended() == grpc.StatusCode.UNAUTHENTICATED
        assert "client_id" in worker.details
    no_types = workers_pb2.WorkerMessage(hello=workers_pb2.WorkerHello(
        client_id="typeless", pool_id=pool))
    with ConnectWorker(hub.address, "typeless", pool, [],
                       first_message=no_types) as worker:
        assert worker.wait_ended() == grpc.StatusCode.INVALID_ARGUMENT
        assert "job_type_ids" in worker.details


def test_sticky_subjects_go_to_one_worker(hub, client):
    pool, job_type = new_pool()
    workers = [ConnectWorker(hub.address, "sticky-%d" % i, pool, [job_type],
                             capacity=200) for i in range(3)]
    try:
        for worker in workers:
            worker.wait_welcome()
        subjects = ["series-%d" % i for i in range(12)]
        ids = {}
        for round_ in range(5):
            for subject in subjects:
                job = client.submit(pool, job_type, subject=subject)
                ids[job.id] = subject
            for _ in range(6):
                ids[client.submit(pool, job_type).id] = ""
        total = len(ids)
        wait_until(lambda: sum(len(w.assignments) for w in workers) >= total,
                   timeout=20, what="every job assigned")
        owner_of = {}  # job id -> worker index
        for index, worker in enumerate(workers):
            for assignment in worker.assignments:
                assert assignment.job.id not in owner_of, "assigned twice"
                owner_of[assignment.job.id] = index
                assert assignment.job.worker_idx == worker.welcome.worker_idx
        assert set(owner_of) == set(ids)
        owners = {}
        for job_id, subject in ids.items():
            if subject:
                owners.setdefault(subject, set()).add(owner_of[job_id])
        assert all(len(o) == 1 for o in owners.values()), owners
        assert len({next(iter(o)) for o in owners.values()}) > 1, (
            "every subject went to one worker")
        spread = {owner_of[j] for j, subject in ids.items() if not subject}
        assert len(spread) > 1, "jobs without a subject all went to one worker"
        for worker in workers:
            for assignment in list(worker.assignments):
                worker.complete(assignment)
        wait_until(lambda: client.workers.Stats(pool_id=pool).job_types and
                   client.workers.Stats(pool_id=pool).job_types[0].done
                   == total, timeout=20, what="every job DONE")
        for worker in workers:
            worker.close()
    finally:
        for worker in workers:
            worker.cancel()


def test_admin_list_and_stats(hub, client):
    pool, job_type = new_pool()
    unary_worker = client.workers.Register(
        client_id="admin-unary", pool_id=pool, job_type_ids=[job_type],
        hostname="u-host", capacity=4)
    with ConnectWorker(hub.address, "admin-connect", pool, [job_type],
                       capacity=2, hostname="c-host") as worker:
        welcome = worker.wait_welcome()
        running = client.submit(pool, job_type)
        assignment = worker.wait_assignments(1)[0]
        assert assignment.job.id == running.id
        second_job = client.submit(pool, job_type)
        worker.wait_assignments(2)
        listed = {w.worker_idx: w for w in
                  client.workers.List(pool_id=pool).workers}
        assert set(listed) == {unary_worker.worker_idx, welcome.worker_idx}
        mine = listed[welcome.worker_idx]
        assert (mine.client_id, mine.hostname, mine.capacity, mine.running,
                mine.status) == ("admin-connect", "c-host", 2, 2,
                                 workers_pb2.WORKER_BUSY)
        assert mine.connected_at.seconds > 0
        other = listed[unary_worker.worker_idx]
        assert (other.client_id, other.hostname, other.running,
                other.status) == ("admin-unary", "u-host", 0,
                                  workers_pb2.WORKER_IDLE)

        stats = client.workers.Stats(pool_id=pool).job_types
        assert len(stats) == 1
        s = stats[0]
        assert (s.pool_id, s.job_type_id, s.workers, s.busy, s.queued,
                s.in_progress, s.done, s.failed) == (
            pool, job_type, 2, 1, 0, 2, 0, 0)
        time.sleep(0.01)  # a measurable run time
        worker.complete(assignment)
        worker.fail(worker.assignments[1], "no", retryable=False)
        wait_until(lambda: client.get(second_job.id).state == FAILED)
        wait_until(lambda: client.get(running.id).state == DONE)
        extra = client.submit(pool, job_type + 1)
        stats = {s.job_type_id: s for s in
                 client.workers.Stats(pool_id=pool).job_types}
        s = stats[job_type]
        assert (s.queued, s.in_progress, s.done, s.failed) == (0, 0, 1, 1)
        assert s.busy == 0 and s.mean_run_seconds > 0
        assert stats[job_type + 1].queued == 1
        client.jobs.Cancel(id=extra.id)
        worker.close()


def test_admin_add_and_delete(hub, client):
    pool, job_type = new_pool()
    registered = client.workers.Register(client_id="first", pool_id=pool,
                                         job_type_ids=[job_type])
    config = workers_pb2.AddWorkerRequest(
        pool_id=pool, job_type_id=job_type, hostname="gpu-3", port=9104)
    config.worker_config.update({"threads": 8, "model": "prophet"})
    connected = ConnectWorker(hub.address, "second", pool, [job_type],
                              capacity=1)
    try:
        connected_idx = connected.wait_welcome().worker_idx
        added = client.workers.Add(request=config)
        assert added.worker_idx == packed(pool, job_type, 3)
        assert added.status == workers_pb2.WORKER_RESERVED
        assert (added.hostname, added.port) == ("gpu-3", 9104)
        assert added.worker_config == config.worker_config
        listed = {w.worker_idx: w for w in
                  client.workers.List(pool_id=pool).workers}
        assert listed[added.worker_idx].status == workers_pb2.WORKER_RESERVED
        assert listed[added.worker_idx].worker_config == config.worker_config

        # Delete takes the latest: the slot Add made.
        deleted = client.workers.Delete(pool_id=pool, job_type_id=job_type)
        assert deleted.worker_idx == added.worker_idx
        listed = {w.worker_idx for w in
                  client.workers.List(pool_id=pool).workers}
        assert listed == {registered.worker_idx, connected_idx}

        # Then the connected worker: it is told to drain and gets no more.
        deleted = client.workers.Delete(pool_id=pool, job_type_id=job_type)
        assert deleted.worker_idx == connected_idx
        connected.wait_for(lambda w: w.drains == 1, what="a drain")
        listed = {w.worker_idx: w for w in
                  client.workers.List(pool_id=pool).workers}
        assert listed[connected_idx].status == workers_pb2.WORKER_DRAINING
        job = client.submit(pool, job_type)
        got = client.lease_one(pool, job_type, client_id="first")
        assert got.job.id == job.id
        assert connected.assignments == []

        deleted = client.workers.Delete(pool_id=pool, job_type_id=job_type)
        assert deleted.worker_idx == registered.worker_idx
        message = expect_error(grpc.StatusCode.NOT_FOUND,
                               client.workers.Delete, pool_id=pool,
                               job_type_id=job_type)
        assert str(pool) in message and str(job_type) in message
        connected.close()
    finally:
        connected.cancel()


def test_get_subject_state_asks_the_responsible_worker(hub, client):
    pool, job_type = new_pool()
    message = expect_error(grpc.StatusCode.UNAVAILABLE,
                           client.workers.GetSubjectState, subject="cpu",
                           pool_id=pool, job_type_id=job_type)
    assert "connect" in message.lower() and str(pool) in message
    workers = [
        ConnectWorker(hub.address, "state-%d" % i, pool, [job_type],
                      capacity=50,
                      subject_state=lambda s, i=i: {"worker": i, "series": s,
                                                    "points": 42})
        for i in range(2)]
    try:
        idxs = [w.wait_welcome().worker_idx for w in workers]
        for subject in ("cpu", "disk", "net", "mem"):
            job = client.submit(pool, job_type, subject=subject)
            wait_until(lambda: client.get(job.id).state == IN_PROGRESS)
            owner = idxs.index(client.get(job.id).worker_idx)
            state = client.workers.GetSubjectState(
                subject=subject, pool_id=pool, job_type_id=job_type)
            assert state.subject == subject and state.query_id
            assert state.worker_idx == idxs[owner]
            assert dict(state.state) == {"worker": owner, "series": subject,
                                         "points": 42}
        assert sorted(q.subject for w in workers for q in w.queries) == [
            "cpu", "disk", "mem", "net"]
        for worker in workers:
            worker.close()
    finally:
        for worker in workers:
            worker.cancel()
    expect_error(grpc.StatusCode.UNAVAILABLE, client.workers.GetSubjectState,
                 subject="cpu", pool_id=pool, job_type_id=job_type)


def test_get_subject_state_of_a_silent_worker_times_out(hub, client):
    pool, job_type = new_pool()
    with ConnectWorker(hub.address, "silent", pool, [job_type]) as worker:
        idx = worker.wait_welcome().worker_idx
        started = time.monotonic()
        message = expect_error(grpc.StatusCode.DEADLINE_EXCEEDED,
                               client.workers.GetSubjectState, subject="x",
                               pool_id=pool, job_type_id=job_type)
        assert time.monotonic() - started >= 4.5
        assert str(idx) in message
        assert [q.subject for q in worker.queries] == ["x"]
        worker.close()


def test_status_codes_of_workers(client):
    code = grpc.StatusCode
    pool, job_type = new_pool()
    w = client.workers
    # A missing client_id.
    for name, call, fields in (
            ("Lease", w.Lease, dict(pool_id=pool, job_type_ids=[job_type])),
            ("Heartbeat", w.Heartbeat, dict(lease_ids=[])),
            ("Progress", w.Progress, dict(job_id="0000000000000001",
                                          lease_id="0000000000000001.1")),
            ("Complete", w.Complete, dict(job_id="0000000000000001",
                                          lease_id="0000000000000001.1")),
            ("Fail", w.Fail, dict(job_id="0000000000000001",
                                  lease_id="0000000000000001.1"))):
        message = expect_error(code.UNAUTHENTICATED, call, client_id="",
                               **fields)
        assert "client_id" in message, name

    # worker_idx 0 without job types; an unknown worker_idx; ids too big.
    message = expect_error(code.INVALID_ARGUMENT, w.Register, client_id="c",
                           pool_id=pool)
    assert "job_type_ids" in message
    message = expect_error(code.INVALID_ARGUMENT, w.Lease, client_id="c",
                           pool_id=pool)
    assert "job_type_ids" in message
    unknown_idx = packed(pool, job_type, 999)
    message = expect_error(code.NOT_FOUND, w.Lease, client_id="c",
                           worker_idx=unknown_idx)
    assert str(unknown_idx) in message
    for fields in (dict(pool_id=1024, job_type_ids=[1]),
                   dict(pool_id=1, job_type_ids=[1024])):
        message = expect_error(code.INVALID_ARGUMENT, w.Register,
                               client_id="c", **fields)
        assert "1024" in message
        message = expect_error(code.INVALID_ARGUMENT, w.Lease, client_id="c",
                               **fields)
        assert "1024" in message
    message = expect_error(code.INVALID_ARGUMENT, w.GetSubjectState,
                           subject="s", pool_id=1024, job_type_id=1)
    assert "pool_id" in message

    # Unknown leases.
    job = client.submit(pool, job_type, max_attempts=3)
    other = client.submit(pool, job_type)
    first = client.lease_one(pool, job_type)
    assert first.job.id == job.id
    for lease_id in ("nonsense", "00000000deadbeef.1", job.id + ".7",
                     job.id + ".x"):
        for name, call in (("Complete", w.Complete), ("Fail", w.Fail),
                           ("Progress", w.Progress)):
            message = expect_error(code.NOT_FOUND, call, client_id="c",
                                   job_id=job.id, lease_id=lease_id)
            assert lease_id in message, (name, message)
        message = expect_error(code.NOT_FOUND, w.Heartbeat, client_id="c",
                               lease_ids=[first.lease_id, lease_id])
        assert lease_id in message
    # A lease of another job.
    message = expect_error(code.NOT_FOUND, w.Complete, client_id="c",
                           job_id=other.id, lease_id=first.lease_id)
    assert first.lease_id in message
    assert client.get(other.id).state == QUEUED
    assert client.get(job.id).state == IN_PROGRESS
    # A lease of an older attempt: after a retryable Fail, queued and then
    # leased again.
    client.fail(first, "again", retryable=True)
    message = expect_error(code.NOT_FOUND, client.complete, first)
    assert first.lease_id in message
    got = client.lease(pool, job_type, max_jobs=2, wait_ms=5000)
    second = [a for a in got if a.job.id == job.id]
    if not second:
        second = [client.lease_one(pool, job_type, wait_ms=5000)]
    assert second[0].job.id == job.id and second[0].job.attempts == 2
    for call in (w.Complete, w.Fail, w.Progress):
        expect_error(code.NOT_FOUND, call, client_id="c", job_id=job.id,
                     lease_id=first.lease_id)
    expect_error(code.NOT_FOUND, w.Heartbeat, client_id="c",
                 lease_ids=[first.lease_id])
    assert client.get(job.id).state == IN_PROGRESS
    assert client.get(job.id).attempts == 2
    # The lease's job finished: FAILED_PRECONDITION, naming the state.
    client.complete(second[0])
    for call in (w.Complete, w.Fail, w.Progress):
        message = expect_error(code.FAILED_PRECONDITION, call, client_id="c",
                               job_id=job.id, lease_id=second[0].lease_id)
        assert "DONE" in message
    assert client.get(job.id).state == DONE
    assert client.jobs.GetResult(id=job.id).value.string_value == "ok"
    # The Complete of a job cancelled meanwhile.
    third = client.submit(pool, job_type)
    leased = [a for a in client.lease(pool, job_type, max_jobs=5,
                                      wait_ms=2000) if a.job.id == third.id]
    assert leased
    client.jobs.Cancel(id=third.id)
    message = expect_error(code.FAILED_PRECONDITION, client.complete,
                           leased[0])
    assert "CANCELLED" in message
    assert client.get(third.id).state == CANCELLED


def test_complete_and_fail_by_table(client):
    """The work manager's storeResult/{table} and storeError/{table}: a
    client that leased a job names it by its subject alone (no job_id, no
    lease_id)."""
    code = grpc.StatusCode
    w = client.workers
    pool, job_type = new_pool()
    done = client.submit(pool, job_type, subject="table-1")
    failed = client.submit(pool, job_type, subject="table-2")
    # Another client's job, in a pool of its own: with both clients in one
    # pool, sticky routing may keep table-3 for guid-1 and guid-2 would
    # wait for it in vain.
    their_pool, their_type = new_pool()
    theirs = client.submit(their_pool, their_type, subject="table-3")
    got = w.Lease(client_id="guid-1", worker_idx=0, pool_id=pool,
                  job_type_ids=[job_type], max_jobs=2,
                  wait_ms=5000).assignments
    assert sorted(a.job.id for a in got) == sorted([done.id, failed.id])
    other = client.lease_one(their_pool, their_type, client_id="guid-2")
    assert other.job.id == theirs.id

    request = workers_pb2.CompleteRequest(client_id="guid-1",
                                          table="table-1")
    request.result.value.string_value = "rows: 3"
    job = w.Complete(request=request)
    assert (job.id, job.state) == (done.id, DONE)
    assert client.jobs.GetResult(id=done.id).value.string_value == "rows: 3"

    job = w.Fail(client_id="guid-1", table="table-2", error="disk on fire")
    assert (job.id, job.state, job.error) == (failed.id, FAILED,
                                              "disk on fire")
    assert client.get(failed.id).state == FAILED  # not retried

    # Once final: FAILED_PRECONDITION (the HTTP face's 410 Gone).
    message = expect_error(code.FAILED_PRECONDITION, w.Complete,
                           request=request)
    assert done.id in message and "DONE" in message
    expect_error(code.FAILED_PRECONDITION, w.Fail, client_id="guid-1",
                 table="table-2", error="again")
    # A subject nobody holds, and one another client holds: NOT_FOUND.
    message = expect_error(code.NOT_FOUND, w.Complete, client_id="guid-1",
                           table="no-such-table")
    assert message == 'client "guid-1" holds no job of subject ' \
        '"no-such-table"'
    expect_error(code.NOT_FOUND, w.Complete, client_id="guid-1",
                 table="table-3")
    expect_error(code.NOT_FOUND, w.Fail, client_id="guid-2",
                 table="table-1", error="not mine")
    assert client.get(theirs.id).state == IN_PROGRESS
    assert client.get(done.id).state == DONE
