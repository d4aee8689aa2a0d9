"""The Jobs service end to end against the real jobhubd: a job's whole
life, lease expiry and heartbeats, retryable and final failures with
backoff, cancellation (queued, unary worker, Connect worker), idempotency,
priority order, not_before, Watch, Reset, History and the status codes of
docs/core-design.md "Semantics settled for the build".

Each test has a hub of its own (started with --retry-backoff-ms 50, the
backoff test with a longer base), which must exit cleanly after it."""
import time

import grpc
import pytest

from hub_client import (CANCELLED, DONE, FAILED, IN_PROGRESS, QUEUED,
                        ConnectWorker, HubClient, StreamCollector, common_pb2,
                        expect_error, new_pool, start_hub, state_name,
                        stop_hub, struct, wait_until)

BACKOFF_MS = 50


@pytest.fixture
def hub_args():
    return ["--retry-backoff-ms", str(BACKOFF_MS)]


def transitions(events):
    return [(e.from_state, e.to_state) for e in events]


def unpack_worker_idx(worker_idx):
    return worker_idx >> 20, (worker_idx >> 10) & 1023, worker_idx & 1023


def test_whole_lifecycle(client):
    pool, job_type = new_pool()
    config = common_pb2.JobConfig(
        config_name="daily", job_type_id=job_type, module="forecast",
        max_n_points=500, module_params=struct(periods=12, smooth=True))
    before = time.time()
    job = client.submit(pool, job_type, subject="series-a", config=config,
                        payload=b"\x00\x01payload", meta={"team": "ops"},
                        priority=7, lease_seconds=30, max_attempts=4)
    assert job.state == QUEUED and job.attempts == 0
    assert len(job.id) == 16 and int(job.id, 16) > 0
    assert job.id == job.id.lower()
    assert (job.pool_id, job.job_type_id, job.subject) == (
        pool, job_type, "series-a")
    assert job.config == config and job.payload == b"\x00\x01payload"
    assert dict(job.meta) == {"team": "ops"}
    assert job.priority == 7 and job.max_attempts == 4
    assert before - 2 <= job.created_at.ToSeconds() <= time.time() + 2
    assert client.get(job.id) == job
    listed = client.jobs.List(pool_id=pool, job_type_id=job_type).jobs
    assert [j.id for j in listed] == [job.id]

    assignment = client.lease_one(pool, job_type, client_id="life")
    leased = assignment.job
    assert leased.id == job.id and leased.state == IN_PROGRESS
    assert leased.attempts == 1 and leased.payload == job.payload
    assert assignment.lease_id.rsplit(".", 1)[0] == job.id + ".1"
    p, t, worker_id = unpack_worker_idx(leased.worker_idx)
    assert (p, t) == (pool, job_type) and worker_id >= 1
    assert leased.started_at.ToSeconds() >= job.created_at.ToSeconds() - 1
    expires = assignment.lease_expires_at.ToSeconds()
    assert time.time() + 25 <= expires <= time.time() + 32, expires

    progressed = client.workers.Progress(
        client_id="life", job_id=job.id, lease_id=assignment.lease_id,
        progress=0.5, message="half way")
    assert progressed.progress == 0.5
    assert progressed.progress_message == "half way"
    assert client.get(job.id).progress_message == "half way"
    beat = client.workers.Heartbeat(client_id="life",
                                    lease_ids=[assignment.lease_id])
    assert list(beat.cancelled_job_ids) == []

    result = common_pb2.JobResult(data=b"\x07bytes")
    result.value.struct_value.update({"forecast": [1, 2, 3]})
    done = client.workers.Complete(client_id="life", job_id=job.id,
                                   lease_id=assignment.lease_id, result=result)
    assert done.state == DONE and done.attempts == 1
    assert done.finished_at.ToNanoseconds() >= done.started_at.ToNanoseconds()
    assert client.get(job.id).state == DONE
    got = client.jobs.GetResult(id=job.id)
    assert got.job_id == job.id and got.data == b"\x07bytes"
    assert list(got.value.struct_value["forecast"]) == [1, 2, 3]

    events = client.history(job.id)
    assert transitions(events) == [
        (0, QUEUED), (QUEUED, IN_PROGRESS), (IN_PROGRESS, DONE)]
    assert all(e.job_id == job.id for e in events)
    assert [e.actor for e in events] == [
        "client", "worker:%d" % leased.worker_idx,
        "worker:%d" % leased.worker_idx]
    assert [e.worker_idx for e in events[1:]] == [leased.worker_idx] * 2
    times = [e.time.ToNanoseconds() for e in events]
    assert times == sorted(times)
    assert before - 2 <= times[0] / 1e9 and times[-1] / 1e9 <= time.time() + 2

    # Ids grow in submit order.
    later = client.submit(pool, job_type)
    assert later.id > job.id
    client.jobs.Cancel(id=later.id)


def test_lease_expiry_requeues_with_attempt_counted(client):
    pool, job_type = new_pool()
    job = client.submit(pool, job_type, lease_seconds=1, max_attempts=3)
    first = client.lease_one(pool, job_type)
    assert first.job.attempts == 1
    requeued = wait_until(
        lambda: (lambda j: j.state == QUEUED and j)(client.get(job.id)),
        timeout=15, what="the lease to expire")
    assert requeued.attempts == 1
    events = client.history_ending(job.id, IN_PROGRESS, QUEUED)
    assert events[-1].actor == "hub"
    # The expired lease is refused and changes nothing.
    message = expect_error(grpc.StatusCode.NOT_FOUND, client.complete, first)
    assert first.lease_id in message
    assert client.get(job.id).state == QUEUED
    second = client.lease_one(pool, job_type, wait_ms=5000)
    assert second.job.attempts == 2
    assert second.lease_id.rsplit(".", 1)[0] == job.id + ".2"
    expect_error(grpc.StatusCode.NOT_FOUND, client.workers.Heartbeat,
                 client_id="unary-worker", lease_ids=[first.lease_id])
    assert client.complete(second).state == DONE


def test_lease_expiry_on_last_attempt_fails_the_job(client):
    pool, job_type = new_pool()
    job = client.submit(pool, job_type, lease_seconds=1, max_attempts=1)
    client.lease_one(pool, job_type)
    failed = wait_until(
        lambda: (lambda j: j.state == FAILED and j)(client.get(job.id)),
        timeout=15, what="the last lease to expire")
    assert failed.attempts == 1 and "lease" in failed.error
    events = client.history_ending(job.id, IN_PROGRESS, FAILED)
    assert events[-1].actor == "hub"


def test_heartbeat_extends_a_lease(client):
    pool, job_type = new_pool()
    job = client.submit(pool, job_type, lease_seconds=2)
    assignment = client.lease_one(pool, job_type)
    # Beat for well past the 2 s lease: it must stay the same attempt.
    end = time.monotonic() + 4
    while time.monotonic() < end:
        beat = client.workers.Heartbeat(client_id="unary-worker",
                                        lease_ids=[assignment.lease_id])
        assert list(beat.cancelled_job_ids) == []
        got = client.get(job.id)
        assert got.state == IN_PROGRESS and got.attempts == 1, got
        time.sleep(0.4)
    # Silent again: the lease now runs out.
    wait_until(lambda: client.get(job.id).state == QUEUED, timeout=15,
               what="the lease to expire after the heartbeats stopped")


# A retry waits base * 2^(attempts-1) times a factor in [0.5, 1]: with a
# base this long, each wait is told apart from the next one's bounds.
RETRY_BASE_MS = 300
# What the Fail and Lease calls may add to a wait (ASan, TSan, a busy host).
CALL_SLACK_S = 0.25


def test_fail_retryable_requeues_with_growing_bounded_backoff():
    hub = start_hub(["--retry-backoff-ms", str(RETRY_BASE_MS)])
    try:
        with HubClient(hub.address) as client:
            pool, job_type = new_pool()
            job = client.submit(pool, job_type, max_attempts=4)
            held = client.lease_one(pool, job_type)
            for attempts in (1, 2, 3):
                started = time.monotonic()
                failed = client.fail(held, "flaky disk", retryable=True)
                assert failed.state == QUEUED and failed.attempts == attempts
                held = client.lease_one(pool, job_type, wait_ms=10000)
                waited = time.monotonic() - started
                longest = RETRY_BASE_MS * 2 ** (attempts - 1) / 1000
                assert 0.95 * longest / 2 <= waited <= longest + CALL_SLACK_S, (
                    "retry %d after %.3f s, not in [%.3f, %.3f] + slack" % (
                        attempts, waited, longest / 2, longest))
                assert held.job.id == job.id
                assert held.job.attempts == attempts + 1
                assert held.lease_id.rsplit(".", 1)[0] == "%s.%d" % (
                    job.id, attempts + 1)
            done = client.complete(held)
            assert done.state == DONE and done.attempts == 4
            retried = [(QUEUED, IN_PROGRESS), (IN_PROGRESS, QUEUED)] * 3
            assert transitions(client.history(job.id)) == [(0, QUEUED)] + \
                retried + [(QUEUED, IN_PROGRESS), (IN_PROGRESS, DONE)]
    finally:
        stop_hub(hub)


def test_fail_not_retryable_keeps_the_error(client):
    pool, job_type = new_pool()
    job = client.submit(pool, job_type, max_attempts=5)
    assignment = client.lease_one(pool, job_type)
    failed = client.fail(assignment, "bad input: no points", retryable=False)
    assert failed.state == FAILED and failed.attempts == 1
    assert failed.error == "bad input: no points"
    got = client.get(job.id)
    assert got.state == FAILED and got.error == "bad input: no points"
    assert got.finished_at.seconds > 0
    message = expect_error(grpc.StatusCode.FAILED_PRECONDITION,
                           client.jobs.GetResult, id=job.id)
    assert "FAILED" in message and "bad input: no points" in message
    assert client.lease(pool, job_type) == []
    assert transitions(client.history(job.id))[-1] == (IN_PROGRESS, FAILED)


def test_max_attempts_exhausted_fails(client):
    pool, job_type = new_pool()
    job = client.submit(pool, job_type, max_attempts=2)
    first = client.lease_one(pool, job_type)
    assert client.fail(first, "try 1", retryable=True).state == QUEUED
    second = client.lease_one(pool, job_type, wait_ms=10000)
    assert second.job.attempts == 2
    last = client.fail(second, "try 2", retryable=True)
    assert last.state == FAILED and last.attempts == 2
    assert last.error == "try 2"
    assert client.lease(pool, job_type, wait_ms=300) == []
    message = expect_error(grpc.StatusCode.FAILED_PRECONDITION,
                           client.jobs.GetResult, id=job.id)
    assert "FAILED" in message and "try 2" in message


def test_cancel_queued_job(client):
    pool, job_type = new_pool()
    job = client.submit(pool, job_type)
    cancelled = client.jobs.Cancel(id=job.id)
    assert cancelled.state == CANCELLED and cancelled.id == job.id
    assert client.get(job.id).state == CANCELLED
    assert client.lease(pool, job_type) == []
    message = expect_error(grpc.StatusCode.FAILED_PRECONDITION,
                           client.jobs.Cancel, id=job.id)
    assert "CANCELLED" in message
    message = expect_error(grpc.StatusCode.FAILED_PRECONDITION,
                           client.jobs.GetResult, id=job.id)
    assert "CANCELLED" in message
    events = client.history(job.id)
    assert transitions(events) == [(0, QUEUED), (QUEUED, CANCELLED)]
    assert events[-1].actor == "client"


def test_cancel_in_progress_job_of_a_unary_worker(client):
    pool, job_type = new_pool()
    job = client.submit(pool, job_type)
    other = client.submit(pool, job_type)
    assignments = client.lease(pool, job_type, max_jobs=2, wait_ms=2000)
    assert [a.job.id for a in assignments] == [job.id, other.id]
    mine, kept = assignments
    cancelled = client.jobs.Cancel(id=job.id)
    assert cancelled.state == CANCELLED  # at once
    assert client.get(job.id).state == CANCELLED
    beat = client.workers.Heartbeat(
        client_id="unary-worker", lease_ids=[mine.lease_id, kept.lease_id])
    assert list(beat.cancelled_job_ids) == [job.id]
    history = client.history(job.id)
    message = expect_error(grpc.StatusCode.FAILED_PRECONDITION,
                           client.complete, mine)
    assert "CANCELLED" in message
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.fail, mine,
                 "late", retryable=False)
    after = client.get(job.id)
    assert after.state == CANCELLED and after.error == ""
    assert client.history(job.id) == history  # nothing changed
    assert transitions(history)[-1] == (IN_PROGRESS, CANCELLED)
    assert history[-1].actor == "client"
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, client.jobs.GetResult,
                 id=job.id)
    assert client.complete(kept).state == DONE  # the other lease is intact


def test_cancel_in_progress_job_of_a_connect_worker(hub, client):
    pool, job_type = new_pool()
    with ConnectWorker(hub.address, "cancel-w", pool, [job_type], capacity=1,
                       subject_state=lambda s: {"ok": 1}) as worker:
        assert worker.wait_welcome() is not None
        job = client.submit(pool, job_type)
        assignment = worker.wait_assignments(1)[0]
        assert assignment.job.id == job.id
        assert client.jobs.Cancel(id=job.id).state == CANCELLED
        cancel = worker.wait_for(lambda w: w.cancels and w.cancels[0])
        assert cancel.job_id == job.id
        assert cancel.lease_id == assignment.lease_id
        history = client.history(job.id)
        # The late result, as a unary call and on the stream: refused.
        message = expect_error(grpc.StatusCode.FAILED_PRECONDITION,
                               client.complete, assignment,
                               client_id="cancel-w")
        assert "CANCELLED" in message
        worker.complete(assignment)
        # The worker answers this query on the same stream, after the
        # result: once it is answered, the hub has seen the result.
        client.workers.GetSubjectState(subject="x", pool_id=pool,
                                       job_type_id=job_type)
        assert client.get(job.id).state == CANCELLED
        assert client.history(job.id) == history
        worker.close()


def test_get_result_as_soon_as_a_job_shows_done(hub, client):
    """Once Get or Watch shows a job DONE, GetResult has its result: a
    DONE job never answers OK with an empty result."""
    pool, job_type = new_pool()
    with ConnectWorker(hub.address, "quick", pool, [job_type],
                       capacity=1) as worker:
        worker.wait_welcome()
        for i in range(20):
            job = client.submit(pool, job_type)
            stream = client.jobs.Watch(id=job.id)
            assert next(stream).id == job.id
            assignment = worker.wait_assignments(i + 1)[i]
            assert assignment.job.id == job.id
            worker.complete(assignment, "value-%d" % i)
            states = [m.state for m in stream]
            assert states[-1] == DONE
            result = client.jobs.GetResult(id=job.id)
            assert result.value.string_value == "value-%d" % i, i
        worker.close()


def test_idempotency_key_returns_the_same_job(client):
    pool, job_type = new_pool()
    first = client.submit(pool, job_type, idempotency_key="order-17",
                          payload=b"one")
    again = client.submit(pool, job_type, idempotency_key="order-17",
                          payload=b"one")
    assert again.id == first.id and again.payload == b"one"
    # Another request under the same key is refused, naming the job.
    message = expect_error(grpc.StatusCode.ALREADY_EXISTS, client.submit,
                           pool, job_type, idempotency_key="order-17",
                           payload=b"two")
    assert first.id in message, message
    other = client.submit(pool, job_type, idempotency_key="order-18")
    assert other.id != first.id
    assignment = client.lease_one(pool, job_type)
    assert assignment.job.id == first.id
    client.complete(assignment)
    done = client.submit(pool, job_type, idempotency_key="order-17",
                         payload=b"one")
    assert done.id == first.id and done.state == DONE
    ids = [j.id for j in client.list_all(pool_id=pool, job_type_id=job_type)]
    assert ids == [first.id, other.id]


def test_priority_order_then_fifo(client):
    pool, job_type = new_pool()
    priorities = [0, 5, 0, 5, -1, 10, -2**31, 2**31 - 1, 5]
    ids = [client.submit(pool, job_type, priority=p).id for p in priorities]
    expected = [ids[i] for i in sorted(range(len(ids)),
                                       key=lambda i: (-priorities[i], i))]
    leased = [client.lease_one(pool, job_type).job.id for _ in ids]
    assert leased == expected
    assert client.lease(pool, job_type) == []


def test_not_before_delays_a_job(client):
    pool, job_type = new_pool()
    not_before = time.time() + 1.5
    job = client.submit(pool, job_type,
                        not_before={"seconds": int(not_before),
                                    "nanos": int(not_before % 1 * 1e9)})
    now_job = client.submit(pool, job_type)
    # The ready job is leased at once; the delayed one is not.
    assert client.lease_one(pool, job_type).job.id == now_job.id
    assert client.lease(pool, job_type) == []
    assignment = client.lease_one(pool, job_type, wait_ms=10000)
    assert assignment.job.id == job.id
    assert time.time() >= not_before - 0.01


def test_watch_sends_the_job_then_every_change(client):
    pool, job_type = new_pool()
    job = client.submit(pool, job_type)
    stream = client.jobs.Watch(id=job.id)
    first = next(stream)
    assert first.id == job.id and first.state == QUEUED
    assignment = client.lease_one(pool, job_type)
    leased = next(stream)
    assert leased.state == IN_PROGRESS and leased.attempts == 1
    client.workers.Progress(client_id="unary-worker", job_id=job.id,
                            lease_id=assignment.lease_id, progress=0.25,
                            message="a quarter")
    update = next(stream)
    assert update.state == IN_PROGRESS and update.progress == 0.25
    assert update.progress_message == "a quarter"
    client.workers.Progress(client_id="unary-worker", job_id=job.id,
                            lease_id=assignment.lease_id, progress=0.75)
    assert next(stream).progress == 0.75
    client.complete(assignment)
    final = next(stream)
    assert final.state == DONE
    with pytest.raises(StopIteration):
        next(stream)
    assert stream.code() == grpc.StatusCode.OK


def test_watch_through_a_retry_and_a_cancel(client):
    pool, job_type = new_pool()
    job = client.submit(pool, job_type)
    stream = client.jobs.Watch(id=job.id)
    assert next(stream).state == QUEUED
    assignment = client.lease_one(pool, job_type)
    assert next(stream).state == IN_PROGRESS
    client.fail(assignment, "retry me", retryable=True)
    assert next(stream).state == QUEUED
    client.jobs.Cancel(id=job.id)
    assert next(stream).state == CANCELLED
    assert list(stream) == []
    assert stream.code() == grpc.StatusCode.OK


def test_watch_of_a_finished_job_and_of_an_unknown_id(client):
    pool, job_type = new_pool()
    job = client.submit(pool, job_type)
    client.jobs.Cancel(id=job.id)
    messages = list(client.jobs.Watch(id=job.id))
    assert [(m.id, m.state) for m in messages] == [(job.id, CANCELLED)]
    for unknown in ("00000000deadbeef", "no-such-job"):
        with pytest.raises(grpc.RpcError) as error:
            list(client.jobs.Watch(id=unknown))
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert unknown in error.value.details()


def test_watch_filter_sends_every_change_of_matching_jobs(client):
    pool, job_type = new_pool()
    other_pool, other_type = new_pool()
    watch = StreamCollector(client.jobs.Watch(pool_id=pool,
                                              job_type_id=job_type,
                                              timeout=120))
    try:
        # The stream has no first message: probe until it is listening.
        for _ in range(100):
            probe = client.submit(pool, job_type, subject="probe")
            client.jobs.Cancel(id=probe.id)
            try:
                watch.wait_for(lambda w: w.messages or w.ended, timeout=0.2)
                break
            except AssertionError:
                continue
        assert watch.messages, "the filter Watch never sent anything"
        assert not watch.ended, (watch.code, watch.details)
        outsider = client.submit(other_pool, other_type)
        client.jobs.Cancel(id=outsider.id)
        job = client.submit(pool, job_type)
        assignment = client.lease_one(pool, job_type)
        client.workers.Progress(client_id="unary-worker", job_id=job.id,
                                lease_id=assignment.lease_id, progress=0.5)
        client.complete(assignment)
        watch.wait_for(lambda w: any(m.id == job.id and m.state == DONE
                                     for m in w.messages),
                       what="the watched job's DONE")
        messages = watch.snapshot()
        assert all((m.pool_id, m.job_type_id) == (pool, job_type)
                   for m in messages)
        assert outsider.id not in [m.id for m in messages]
        mine = [(m.state, m.progress) for m in messages if m.id == job.id]
        assert mine == [(QUEUED, 0), (IN_PROGRESS, 0), (IN_PROGRESS, 0.5),
                        (DONE, mine[-1][1])], [
            (state_name(s), p) for s, p in mine]
        # It never ends by itself: later jobs still arrive.
        later = client.submit(pool, job_type)
        client.jobs.Cancel(id=later.id)
        watch.wait_for(lambda w: any(m.id == later.id and m.state == CANCELLED
                                     for m in w.messages),
                       what="a later job's change")
        assert not watch.ended
    finally:
        watch.cancel()


def make_failed(client, pool, job_type, error="broken"):
    job = client.submit(pool, job_type)
    assignment = client.lease_one(pool, job_type)
    assert assignment.job.id == job.id
    assert client.fail(assignment, error, retryable=False).state == FAILED
    return job


def make_done(client, pool, job_type):
    job = client.submit(pool, job_type)
    assignment = client.lease_one(pool, job_type)
    assert assignment.job.id == job.id
    client.complete(assignment)
    return job


def test_reset_requeues_failed_jobs_of_a_filter(client):
    pool, job_type = new_pool()
    other_pool, other_type = new_pool()
    failed = [make_failed(client, pool, job_type, "e%d" % i) for i in range(2)]
    done = make_done(client, pool, job_type)
    queued = client.submit(pool, job_type)
    elsewhere = make_failed(client, other_pool, other_type)
    answer = client.jobs.Reset(pool_id=pool, job_type_id=job_type)
    assert sorted(j.id for j in answer.jobs) == sorted(j.id for j in failed)
    for job in list(answer.jobs) + [client.get(j.id) for j in failed]:
        assert job.state == QUEUED and job.attempts == 0 and job.error == ""
    assert client.get(done.id).state == DONE
    assert client.get(queued.id).state == QUEUED
    assert client.get(elsewhere.id).state == FAILED
    events = client.history(failed[0].id)
    assert transitions(events)[-1] == (FAILED, QUEUED)
    assert events[-1].actor == "client"
    # Queued as new: leased again in submit order, as attempt 1.
    again = [client.lease_one(pool, job_type) for _ in range(3)]
    assert [a.job.id for a in again] == [failed[0].id, failed[1].id, queued.id]
    assert [a.job.attempts for a in again] == [1, 1, 1]
    # Lease numbers count every lease, across the Reset, so that a result
    # of the run before it can never be taken for this one's.
    assert again[0].lease_id.rsplit(".", 1)[0] == failed[0].id + ".2"
    assert again[2].lease_id.rsplit(".", 1)[0] == queued.id + ".1"


def test_reset_by_ids(client):
    pool, job_type = new_pool()
    failed = make_failed(client, pool, job_type)
    done = make_done(client, pool, job_type)
    cancelled = client.submit(pool, job_type)
    client.jobs.Cancel(id=cancelled.id)
    retried = client.submit(pool, job_type)
    assignment = client.lease_one(pool, job_type)
    client.fail(assignment, "again", retryable=True)  # QUEUED, attempts 1
    wait_until(lambda: client.get(retried.id).state == QUEUED)
    answer = client.jobs.Reset(ids=[failed.id, done.id, cancelled.id,
                                    retried.id, failed.id])
    assert sorted(j.id for j in answer.jobs) == sorted(
        [failed.id, done.id, cancelled.id])
    for job_id in (failed.id, done.id, cancelled.id):
        job = client.get(job_id)
        assert job.state == QUEUED and job.attempts == 0, job
    left = client.get(retried.id)
    assert left.state == QUEUED and left.attempts == 1  # left as it was
    message = expect_error(grpc.StatusCode.FAILED_PRECONDITION,
                           client.jobs.GetResult, id=done.id)
    assert "QUEUED" in message


def test_reset_with_an_unknown_id_changes_nothing(client):
    pool, job_type = new_pool()
    failed = make_failed(client, pool, job_type)
    history = client.history(failed.id)
    message = expect_error(grpc.StatusCode.NOT_FOUND, client.jobs.Reset,
                           ids=[failed.id, "00000000000fffff"])
    assert "00000000000fffff" in message
    assert client.get(failed.id).state == FAILED
    assert client.history(failed.id) == history
    expect_error(grpc.StatusCode.NOT_FOUND, client.jobs.Reset,
                 ids=["nonsense", failed.id])
    assert client.get(failed.id).state == FAILED


def test_reset_of_an_in_progress_job_tells_its_connect_worker(hub, client):
    pool, job_type = new_pool()
    with ConnectWorker(hub.address, "reset-w", pool, [job_type],
                       capacity=1) as worker:
        worker.wait_welcome()
        job = client.submit(pool, job_type)
        first = worker.wait_assignments(1)[0]
        answer = client.jobs.Reset(ids=[job.id])
        assert [j.id for j in answer.jobs] == [job.id]
        cancel = worker.wait_for(lambda w: w.cancels and w.cancels[0])
        assert (cancel.job_id, cancel.lease_id) == (job.id, first.lease_id)
        # Queued with attempts 0, so the worker, free again, gets it anew.
        second = worker.wait_assignments(2)[1]
        assert second.job.id == job.id and second.job.attempts == 1
        kinds = [m.WhichOneof("message") for m in worker.messages]
        assert kinds == ["welcome", "assignment", "cancel", "assignment"]
        events = client.history_ending(job.id, QUEUED, IN_PROGRESS)
        assert transitions(events) == [
            (0, QUEUED), (QUEUED, IN_PROGRESS), (IN_PROGRESS, QUEUED),
            (QUEUED, IN_PROGRESS)]
        worker.complete(second)
        wait_until(lambda: client.get(job.id).state == DONE)
        worker.close()


def test_reset_of_an_in_progress_job_tells_its_unary_worker(client):
    """Reset: IN_PROGRESS jobs lose their lease, "the worker is told, as
    for Cancel": a unary worker in its next Heartbeat's
    cancelled_job_ids."""
    pool, job_type = new_pool()
    job = client.submit(pool, job_type)
    assignment = client.lease_one(pool, job_type)
    client.jobs.Reset(ids=[job.id])
    got = client.get(job.id)
    assert got.state == QUEUED and got.attempts == 0
    beat = client.workers.Heartbeat(client_id="unary-worker",
                                    lease_ids=[assignment.lease_id])
    assert list(beat.cancelled_job_ids) == [job.id]
    # Leased again as attempt 1: the result of the run before the Reset is
    # refused and changes nothing; the new run's is taken.
    again = client.lease_one(pool, job_type)
    assert again.job.id == job.id and again.job.attempts == 1
    assert again.lease_id != assignment.lease_id
    message = expect_error(grpc.StatusCode.NOT_FOUND, client.complete,
                           assignment)
    assert assignment.lease_id in message
    assert client.get(job.id).state == IN_PROGRESS
    assert client.complete(again).state == DONE


def test_history_records_every_actor(client):
    pool, job_type = new_pool()
    job = client.submit(pool, job_type, lease_seconds=1, max_attempts=5)
    first = client.lease_one(pool, job_type, client_id="hist")
    wait_until(lambda: client.get(job.id).state == QUEUED, timeout=15,
               what="the lease to expire")
    second = client.lease_one(pool, job_type, client_id="hist", wait_ms=10000)
    client.fail(second, "stop", retryable=False, client_id="hist")
    client.jobs.Reset(ids=[job.id])
    client.jobs.Cancel(id=job.id)
    events = client.history(job.id)
    one, two = first.job.worker_idx, second.job.worker_idx
    assert [(e.from_state, e.to_state, e.actor) for e in events] == [
        (0, QUEUED, "client"),
        (QUEUED, IN_PROGRESS, "worker:%d" % one),
        (IN_PROGRESS, QUEUED, "hub"),
        (QUEUED, IN_PROGRESS, "worker:%d" % two),
        (IN_PROGRESS, FAILED, "worker:%d" % two),
        (FAILED, QUEUED, "client"),
        (QUEUED, CANCELLED, "client")]
    assert [e.worker_idx for e in events[1:5]] == [one, one, two, two]
    times = [e.time.ToNanoseconds() for e in events]
    assert times == sorted(times) and times[0] > 0
    # The expiry came at least a lease after the first lease.
    assert times[2] - times[1] >= 0.9e9


def test_list_filters_and_pages(client):
    pool, job_type = new_pool()
    ids = [client.submit(pool, job_type, subject="s%d" % (i % 2)).id
           for i in range(5)]
    client.jobs.Cancel(id=ids[4])
    seen, token = [], ""
    for _ in range(10):
        page = client.jobs.List(pool_id=pool, job_type_id=job_type,
                                page_size=2, page_token=token)
        assert len(page.jobs) <= 2
        seen += [j.id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids
    by_subject = client.list_all(pool_id=pool, job_type_id=job_type,
                                 subject="s0")
    assert [j.id for j in by_subject] == [ids[0], ids[2], ids[4]]
    by_state = client.list_all(pool_id=pool, job_type_id=job_type,
                               state=CANCELLED)
    assert [j.id for j in by_state] == [ids[4]]
    anywhere = client.list_all(any_pool=True, any_job_type=True,
                               subject="s1")
    assert {ids[1], ids[3]} <= {j.id for j in anywhere}


def test_status_codes_of_jobs(client):
    code = grpc.StatusCode
    pool, job_type = new_pool()
    # Submit: ids that do not fit 10 bits, too many attempts.
    message = expect_error(code.INVALID_ARGUMENT, client.submit, 1024, 1)
    assert "pool_id" in message and "1024" in message
    message = expect_error(code.INVALID_ARGUMENT, client.submit, 1, 1024)
    assert "job_type_id" in message and "1024" in message
    message = expect_error(code.INVALID_ARGUMENT, client.submit, pool,
                           job_type, max_attempts=1001)
    assert "max_attempts" in message and "1001" in message
    # Any int32 priority, the largest ids and 1000 attempts are fine.
    for priority in (-2**31, 2**31 - 1):
        client.jobs.Cancel(id=client.submit(pool, job_type,
                                            priority=priority).id)
    client.jobs.Cancel(id=client.submit(1023, 1023, max_attempts=1000).id)

    # An empty id, an unknown one, a malformed one.
    calls = {"Get": client.jobs.Get, "GetResult": client.jobs.GetResult,
             "Cancel": client.jobs.Cancel, "History": client.jobs.History}
    for name, call in calls.items():
        message = expect_error(code.INVALID_ARGUMENT, call, id="")
        assert "id" in message, name
        for unknown in ("00000000deadbeef", "not-a-job-id"):
            message = expect_error(code.NOT_FOUND, call, id=unknown)
            assert unknown in message, (name, message)

    # GetResult of a job that is not DONE names its state.
    queued = client.submit(pool, job_type)
    message = expect_error(code.FAILED_PRECONDITION, client.jobs.GetResult,
                           id=queued.id)
    assert "QUEUED" in message and queued.id in message
    assignment = client.lease_one(pool, job_type)
    message = expect_error(code.FAILED_PRECONDITION, client.jobs.GetResult,
                           id=queued.id)
    assert "IN_PROGRESS" in message
    client.complete(assignment)

    # Cancel of a finished job names its state.
    failed = make_failed(client, pool, job_type)
    cancelled = client.submit(pool, job_type)
    client.jobs.Cancel(id=cancelled.id)
    for job, state in ((queued, "DONE"), (failed, "FAILED"),
                       (cancelled, "CANCELLED")):
        message = expect_error(code.FAILED_PRECONDITION, client.jobs.Cancel,
                               id=job.id)
        assert state in message, message

    # List: page_size and page_token.
    message = expect_error(code.INVALID_ARGUMENT, client.jobs.List,
                           page_size=1001)
    assert "page_size" in message
    client.jobs.List(page_size=1000)
    for token in ("garbage", "00000000ffffffff"):
        message = expect_error(code.INVALID_ARGUMENT, client.jobs.List,
                               page_token=token)
        assert "page_token" in message
