"""Durability and concurrency end to end against the real jobhubd: many
submitters and Connect workers at once finish every job exactly once, and
a hub killed with SIGKILL mid-load and restarted on the same store loses
no acknowledged job and never finishes one twice."""
import collections
import concurrent.futures
import shutil
import tempfile
import threading
import time

import grpc

from hub_client import (DONE, IN_PROGRESS, ConnectWorker, HubClient,
                        common_pb2, start_hub, stop_hub, unary, wait_until,
                        workers_pb2)


def done_transitions(events):
    return sum(1 for e in events if e.to_state == DONE)


def histories(address, ids, settled, threads=4):
    """History of each job id, fetched on a few channels at once, once
    settled(job_id, events) holds (or after 10 s): the hub writes some
    transitions behind the answers that show them, so History may lag by
    a group commit."""
    ids = list(ids)
    chunks = [ids[i::threads] for i in range(threads)]

    def fetch(chunk):
        out = {}
        with HubClient(address) as client:
            for job_id in chunk:
                deadline = time.monotonic() + 10
                events = client.history(job_id)
                while (not settled(job_id, events) and
                       time.monotonic() < deadline):
                    time.sleep(0.05)
                    events = client.history(job_id)
                out[job_id] = events
        return out

    out = {}
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for part in pool.map(fetch, chunks):
            out.update(part)
    return out


def test_concurrent_submitters_and_workers_finish_every_job_once():
    submitters, per_submitter, capacity = 4, 500, 16
    total = submitters * per_submitter
    pool, job_type = 7, 3
    hub = start_hub(["--retry-backoff-ms", "50"])
    workers = []
    problems = []
    lock = threading.Lock()
    unary_ok = collections.Counter()  # job id -> Completes answered OK
    refused = []                      # codes of duplicate unary Completes

    def result_of(assignment):
        result = common_pb2.JobResult()
        result.value.string_value = "done:" + assignment.job.id
        return result

    def on_stream(worker, assignment):
        worker.complete(assignment)
        if int(assignment.job.id, 16) % 25 == 0:
            worker.complete(assignment)  # a duplicate: must change nothing

    def on_unary(worker, assignment):
        request = workers_pb2.CompleteRequest(
            client_id=worker.client_id, job_id=assignment.job.id,
            lease_id=assignment.lease_id, result=result_of(assignment))
        try:
            job = unary(worker.channel, "Workers", "Complete", request,
                        common_pb2.Job)
            with lock:
                unary_ok[assignment.job.id] += 1
            if job.state != DONE:
                problems.append("Complete answered %s" % job)
        except grpc.RpcError as error:
            problems.append("Complete of %s: %s %s" % (
                assignment.job.id, error.code(), error.details()))
            return
        if int(assignment.job.id, 16) % 25 == 0:
            try:
                unary(worker.channel, "Workers", "Complete", request,
                      common_pb2.Job)
                with lock:
                    unary_ok[assignment.job.id] += 1
            except grpc.RpcError as error:
                refused.append(error.code())

    try:
        for i in range(4):
            workers.append(ConnectWorker(
                hub.address, "load-%d" % i, pool, [job_type],
                capacity=capacity, lifetime=600,
                on_assignment=on_stream if i < 2 else on_unary))
        for worker in workers:
            assert worker.wait_welcome(timeout=30) is not None

        submitted = [[] for _ in range(submitters)]
        start = threading.Barrier(submitters)

        def submit(n):
            with HubClient(hub.address) as client:
                start.wait(timeout=30)
                for i in range(per_submitter):
                    try:
                        job = client.submit(pool, job_type,
                                            payload=b"%d-%d" % (n, i))
                    except grpc.RpcError as error:
                        problems.append("Submit: %s %s" % (
                            error.code(), error.details()))
                        return
                    submitted[n].append(job.id)

        threads = [threading.Thread(target=submit, args=(n,))
                   for n in range(submitters)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not any(t.is_alive() for t in threads), "a submitter hung"
        assert problems == []
        ids = [job_id for part in submitted for job_id in part]
        assert len(ids) == total and len(set(ids)) == total

        with HubClient(hub.address) as client:
            def done_count():
                stats = client.workers.Stats(pool_id=pool).job_types
                return stats[0].done if stats else 0
            wait_until(lambda: done_count() >= total, timeout=300,
                       interval=0.1, what="%d jobs DONE" % total)
            jobs = client.list_all(pool_id=pool, job_type_id=job_type)
            assert sorted(j.id for j in jobs) == sorted(ids)
            not_done = [j.id for j in jobs if j.state != DONE]
            assert not_done == []
            assert all(j.attempts == 1 for j in jobs)
            for job_id in ids[::97]:
                value = client.jobs.GetResult(id=job_id).value.string_value
                assert value == "done:" + job_id
        assert problems == []

        # Each job leased once, to one worker, never past its capacity.
        leased = collections.Counter(
            a.job.id for w in workers for a in w.assignments)
        assert sum(leased.values()) == total
        assert set(leased) == set(ids)
        assert max(leased.values()) == 1
        assert all(len(w.assignments) > 0 for w in workers), [
            len(w.assignments) for w in workers]
        # No Complete accepted twice.
        assert max(unary_ok.values()) == 1
        assert refused and set(refused) == {
            grpc.StatusCode.FAILED_PRECONDITION}
        for job_id, events in histories(
                hub.address, ids,
                lambda _, events: done_transitions(events) > 0).items():
            assert [(e.from_state, e.to_state) for e in events
                    if e.to_state == DONE] == [(IN_PROGRESS, DONE)], (
                job_id, events)
            assert len(events) == 3, (job_id, events)

        for worker in workers:
            worker.close(timeout=30)
    finally:
        for worker in workers:
            worker.cancel()
        stop_hub(hub)


def test_sigkill_mid_load_loses_no_acknowledged_job():
    submitters, per_submitter, n_workers = 3, 250, 3
    pool, job_type = 9, 4
    data = tempfile.mkdtemp(prefix="jobhub-e2e-crash-")
    args = ["--data", data, "--retry-backoff-ms", "50"]
    hub = start_hub(args)
    current = {"address": hub.address, "generation": 0}
    cond = threading.Condition()
    acked = {}          # idempotency key -> (job id, generation, retried)
    problems = []
    completions = [0]   # results sent by the workers
    stop = threading.Event()
    deadline = time.monotonic() + 400

    def now_serving():
        with cond:
            return current["generation"], current["address"]

    def wait_for_next(generation, timeout):
        with cond:
            cond.wait_for(lambda: current["generation"] != generation,
                          timeout)

    def submit(n):
        generation, address = now_serving()
        client = HubClient(address)
        try:
            for i in range(per_submitter):
                key = "crash-%d-%d" % (n, i)
                first = None
                for attempt in range(100):
                    generation, address = now_serving()
                    first = generation if first is None else first
                    if client.address != address:
                        client.close()
                        client = HubClient(address)
                    try:
                        job = client.submit(
                            pool, job_type, idempotency_key=key,
                            payload=key.encode(), lease_seconds=2,
                            max_attempts=100, timeout=15)
                    except grpc.RpcError:
                        if time.monotonic() > deadline:
                            break
                        wait_for_next(generation, 0.5)
                        continue
                    with cond:
                        acked[key] = (job.id, first, attempt > 0)
                    break
                else:
                    problems.append("Submit of %s never succeeded" % key)
                    return
        finally:
            client.close()

    def work(n):
        while not stop.is_set() and time.monotonic() < deadline:
            generation, address = now_serving()

            def count(worker, assignment):
                worker.complete(assignment)
                with cond:
                    completions[0] += 1

            worker = ConnectWorker(address, "crash-w%d" % n, pool,
                                   [job_type], capacity=8, lifetime=600,
                                   on_assignment=count)
            try:
                while not stop.is_set() and not worker.ended_within(0.2):
                    pass
            finally:
                worker.cancel()
            if not stop.is_set():
                wait_for_next(generation, 0.5)  # reconnect when it is back

    threads = [threading.Thread(target=work, args=(n,))
               for n in range(n_workers)]
    threads += [threading.Thread(target=submit, args=(n,))
                for n in range(submitters)]
    restarted = None
    try:
        for thread in threads:
            thread.start()
        # Kill it mid-load: submissions and completions under way.
        wait_until(lambda: len(acked) >= 250 and completions[0] >= 100,
                   timeout=120, what="the load to build up")
        hub.kill()  # also removes its folder (not the store)
        with cond:
            before_kill = {key: value[0] for key, value in acked.items()}
        assert len(before_kill) < submitters * per_submitter, (
            "the load was over before the kill")
        restarted = start_hub(args)
        with cond:
            current["address"] = restarted.address
            current["generation"] = 1
            cond.notify_all()
        for thread in threads[n_workers:]:
            thread.join(timeout=300)
        assert not any(t.is_alive() for t in threads[n_workers:]), (
            "a submitter hung")
        assert problems == []
        assert len(acked) == submitters * per_submitter

        with HubClient(restarted.address) as client:
            ids = {value[0] for value in acked.values()}
            assert len(ids) == len(acked), "two keys got the same job"

            def all_done():
                jobs = {j.id: j for j in client.list_all(
                    pool_id=pool, job_type_id=job_type)}
                missing = ids - set(jobs)
                assert not missing, "acknowledged jobs lost: %s" % sorted(
                    missing)[:10]
                return all(jobs[i].state == DONE for i in ids) and jobs
            jobs = wait_until(all_done, timeout=180, interval=0.3,
                              what="every acknowledged job DONE")
            stop.set()
            for key, (job_id, _, _) in acked.items():
                assert jobs[job_id].payload == key.encode(), key
            # What was acknowledged before the kill is still the same job.
            for key, job_id in list(before_kill.items())[::10]:
                again = client.submit(pool, job_type, idempotency_key=key,
                                      payload=key.encode(), lease_seconds=2,
                                      max_attempts=100)
                assert again.id == job_id and again.state == DONE
            # Ids keep growing across the restart.
            old = max(before_kill.values())
            fresh = [job_id for job_id, generation, retried in acked.values()
                     if generation == 1 and not retried]
            assert fresh and min(fresh) > old
            # No job finished twice, acknowledged or not.
            for job_id, events in histories(
                    restarted.address, jobs.keys(),
                    lambda job_id, events: jobs[job_id].state != DONE or
                    done_transitions(events) > 0).items():
                expected = 1 if jobs[job_id].state == DONE else 0
                assert done_transitions(events) == expected, (
                    job_id, [(e.from_state, e.to_state, e.actor)
                             for e in events])
                assert events[0].to_state != 0 and events[0].from_state == 0
    finally:
        stop.set()
        with cond:
            cond.notify_all()
        for thread in threads:
            thread.join(timeout=60)
        hub.stop()  # killed already, unless the test failed first
        if restarted is not None:
            stop_hub(restarted)
        shutil.rmtree(data, ignore_errors=True)
