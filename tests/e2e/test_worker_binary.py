"""The real jobhub-worker against the real jobhubd, driven with
python3-grpcio: jobs pushed and answered, cancellation of a running job,
SIGTERM drains (running jobs finish, no new ones, exit 0), a worker killed
mid-job leaves it to another, and a hub restart is ridden out (reconnect,
results re-sent)."""
import os
import signal
import tempfile

from hub_client import (CANCELLED, DONE, FAILED, IN_PROGRESS, QUEUED,
                        HubClient, Worker,
                        common_pb2, new_pool, start_hub, stop_hub, struct,
                        wait_until, workers_pb2)

JobConfig = common_pb2.JobConfig


def connected_workers(client, pool):
    return [w for w in client.workers.List(pool_id=pool).workers
            if w.status != workers_pb2.WORKER_DISCONNECTED]


def sleep_job(client, pool, job_type, seconds, **fields):
    return client.submit(pool, job_type, config=JobConfig(
        module="sleep", module_params=struct(seconds=seconds)), **fields)


def test_echo_jobs_are_pushed_and_answered():
    hub = start_hub()
    pool, job_type = new_pool()
    worker = Worker(hub.address, pool, job_type, capacity=8)
    try:
        with HubClient(hub.address) as client:
            jobs = [client.submit(pool, job_type, payload=b"p%d" % i,
                                  config=JobConfig(module_params=struct(n=i)))
                    for i in range(50)]
            for i, job in enumerate(jobs):
                wait_until(lambda: client.get(job.id).state == DONE,
                           timeout=20, what="job %d DONE" % i)
                result = client.jobs.GetResult(id=job.id)
                assert result.data == b"p%d" % i
                assert result.value.struct_value["n"] == i
            assert worker.stop() == 0
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
        stop_hub(hub)


def test_cancel_reaches_the_running_job_and_drain_finishes_the_rest():
    hub = start_hub()
    pool, job_type = new_pool()
    worker = Worker(hub.address, pool, job_type, module="sleep", capacity=2)
    try:
        with HubClient(hub.address) as client:
            long_job = sleep_job(client, pool, job_type, 60)
            short_job = sleep_job(client, pool, job_type, 1.5)
            wait_until(lambda: client.get(long_job.id).state == IN_PROGRESS
                       and client.get(short_job.id).state == IN_PROGRESS,
                       timeout=20, what="both jobs running")
            assert client.jobs.Cancel(id=long_job.id).state == CANCELLED
            wait_until(lambda: "worker_job_cancelled" in worker.output(),
                       timeout=10, what="the worker to hear of the cancel")
            # SIGTERM while the short job runs: it finishes, a job
            # submitted now is not taken, and the worker exits 0.
            worker.signal(signal.SIGTERM)
            wait_until(lambda: [w.status for w in client.workers.List(
                pool_id=pool).workers] == [workers_pb2.WORKER_DRAINING],
                timeout=10, what="the hub to see the worker draining")
            late = sleep_job(client, pool, job_type, 0)
            assert worker.wait(timeout=30) == 0, worker.output()
            assert client.get(short_job.id).state == DONE
            assert client.get(long_job.id).state == CANCELLED
            assert client.get(late.id).state == QUEUED
            assert client.get(late.id).attempts == 0
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
        stop_hub(hub)


def test_a_killed_worker_leaves_its_job_to_another():
    hub = start_hub()
    pool, job_type = new_pool()
    first = Worker(hub.address, pool, job_type, module="sleep", capacity=1,
                   client_id="first")
    second = None
    try:
        with HubClient(hub.address) as client:
            wait_until(lambda: len(connected_workers(client, pool)) == 1,
                       timeout=20, what="the first worker")
            job = sleep_job(client, pool, job_type, 1)
            wait_until(lambda: client.get(job.id).state == IN_PROGRESS,
                       timeout=20, what="the job to start")
            first.kill()
            second = Worker(hub.address, pool, job_type, module="sleep",
                            capacity=1, client_id="second")
            done = wait_until(
                lambda: (lambda j: j.state == DONE and j)(client.get(job.id)),
                timeout=30, what="the job DONE by the second worker")
            assert done.attempts == 2
            events = client.history(job.id)
            leases = [e for e in events if e.to_state == IN_PROGRESS]
            assert len(leases) == 2
            # The first's slot (worker_idx) was freed when it left; the
            # second, the only one connected, finished the job.
            assert [w.client_id for w in connected_workers(client, pool)] == [
                "second"]
            assert second.stop() == 0
    finally:
        for w in (first, second):
            if w is not None and w.process.poll() is None:
                w.process.kill()
        stop_hub(hub)


def test_the_worker_rides_out_a_hub_restart():
    data = tempfile.mkdtemp(prefix="jobhub-e2e-worker-data-")
    hub = start_hub(["--data", data])
    pool, job_type = new_pool()
    port = hub.port
    worker = Worker(hub.address, pool, job_type, module="sleep", capacity=2)
    restarted = None
    try:
        with HubClient(hub.address) as client:
            job = sleep_job(client, pool, job_type, 2)
            wait_until(lambda: client.get(job.id).state == IN_PROGRESS,
                       timeout=20, what="the job to start")
        # The hub goes away while the job runs and comes back on the same
        # port and store: the worker reconnects, the recovered lease is its
        # again, and its result is taken.
        hub.kill()
        restarted = start_hub(["--data", data, "--listen",
                               "127.0.0.1:%d" % port])
        with HubClient(restarted.address) as client:
            done = wait_until(
                lambda: (lambda j: j.state == DONE and j)(client.get(job.id)),
                timeout=40, what="the job DONE after the restart")
            assert done.attempts == 1
            assert "worker_disconnected" in worker.output()
            later = client.submit(pool, job_type)
            wait_until(lambda: client.get(later.id).state == DONE,
                       timeout=20, what="a job after the restart")
        assert worker.stop() == 0
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
        hub.stop()  # killed already, unless the test failed first
        if restarted is not None:
            stop_hub(restarted)


def test_forecast_job_of_the_example_returns_periods_ordered_points():
    """examples/forecast.json (the existing hub's forecast request with
    inline points) through jobhub-worker --module forecast."""
    import json
    from google.protobuf import json_format
    from hub_client import jobs_pb2
    from conftest import ROOT
    with open(os.path.join(ROOT, "examples", "forecast.json")) as f:
        request = json_format.Parse(f.read(), jobs_pb2.SubmitRequest())
    params = json.loads(json_format.MessageToJson(
        request.config.module_params))
    hub = start_hub()
    worker = Worker(hub.address, request.pool_id, request.job_type_id,
                    module="forecast", capacity=2)
    try:
        with HubClient(hub.address) as client:
            job = client.jobs.Submit(request)
            done = wait_until(
                lambda: (lambda j: j.state in (DONE, FAILED) and j)(
                    client.get(job.id)), timeout=60, what="the forecast")
            assert done.state == DONE, done.error
            value = json.loads(json_format.MessageToJson(
                client.jobs.GetResult(id=job.id).value))
            points = value["points"]
            assert len(points) == params["periods"] == 200
            last = params["points"][-1][0]
            for i, p in enumerate(points):
                assert p["ts"] == last + (i + 1) * 1800
                assert p["yhat_lower"] <= p["yhat"] <= p["yhat_upper"]
                assert p["yhat_lower"] < p["yhat_upper"]
            # The daily cycle of the input (amplitude 8) is forecast.
            yhat = [p["yhat"] for p in points[:48]]
            assert max(yhat) - min(yhat) > 10
            assert value["points_used"] == len(params["points"])
            # A bad parameter fails the job for good, saying which.
            bad = jobs_pb2.SubmitRequest()
            bad.CopyFrom(request)
            bad.config.module_params["forecast_freq"] = "fortnightly"
            failed = client.jobs.Submit(bad)
            got = wait_until(
                lambda: (lambda j: j.state == FAILED and j)(client.get(failed.id)),
                timeout=30, what="the bad forecast to fail")
            assert "forecast_freq" in got.error and got.attempts == 1
        assert worker.stop() == 0
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
        stop_hub(hub)


def test_anomaly_job_reports_the_spike():
    from google.protobuf import json_format
    import json
    hub = start_hub()
    pool, job_type = new_pool()
    worker = Worker(hub.address, pool, job_type, module="anomaly")
    try:
        points = [[1700000000 + 60 * i, 10 + (i % 3) * 0.1] for i in range(100)]
        points[70][1] = 50  # the spike
        with HubClient(hub.address) as client:
            job = client.submit(pool, job_type, config=JobConfig(
                module="anomaly",
                module_params=struct(points=points, window=20, threshold=5)))
            wait_until(lambda: client.get(job.id).state == DONE, timeout=30,
                       what="the anomaly job")
            value = json.loads(json_format.MessageToJson(
                client.jobs.GetResult(id=job.id).value))
            assert value["scored"] == 80
            assert [p["ts"] for p in value["points"]] == [points[70][0]]
            assert value["points"][0]["value"] == 50
            assert value["points"][0]["score"] > 5
        assert worker.stop() == 0
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
        stop_hub(hub)


EXEC_ANSWER = ("import json, sys; job = json.load(sys.stdin); "
               "sys.stderr.write('working\\n'); "
               "code = job['config']['moduleParams'].get('exit', 0); "
               "print(json.dumps({'id': job['id']})) "
               "if code == 0 else sys.exit(code)")


def test_exec_runs_the_command_with_the_job_as_json():
    hub = start_hub()
    pool, job_type = new_pool()
    worker = Worker(hub.address, pool, job_type, module="exec", capacity=2,
                    extra=["--module-config",
                           "/usr/bin/python3 -c \"%s\"" % EXEC_ANSWER])
    try:
        with HubClient(hub.address) as client:
            job = client.submit(pool, job_type, config=JobConfig(
                module="exec", module_params=struct(exit=0)))
            wait_until(lambda: client.get(job.id).state == DONE, timeout=30,
                       what="the exec job")
            value = client.jobs.GetResult(id=job.id).value.struct_value
            assert value["id"] == job.id
            # A non-zero exit fails the job with the command's stderr.
            bad = client.submit(pool, job_type, config=JobConfig(
                module="exec", module_params=struct(exit=3)))
            got = wait_until(
                lambda: (lambda j: j.state == FAILED and j)(client.get(bad.id)),
                timeout=30, what="the failing exec job")
            assert got.error == "exit code 3: working", got.error
        assert worker.stop() == 0
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
        stop_hub(hub)


def test_cancel_and_timeout_kill_the_exec_process_group():
    """The command starts a child of its own (a process group to kill, not
    just the shell); its pid is written where the test can watch it."""
    hub = start_hub()
    pool, job_type = new_pool()
    pids = tempfile.mkdtemp(prefix="jobhub-e2e-exec-")
    command = ("cat > /dev/null; sleep 300 & echo $! > %s/$$; wait" % pids)
    worker = Worker(hub.address, pool, job_type, module="exec", capacity=2,
                    extra=["--module-config", command])

    def sleeper_pid():
        names = os.listdir(pids)
        if len(names) != 1:
            return None
        with open(os.path.join(pids, names[0])) as f:
            text = f.read().strip()
        return int(text) if text else None

    def alive(pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().split(") ")[-1][0] != "Z"
        except FileNotFoundError:
            return False

    try:
        with HubClient(hub.address) as client:
            job = client.submit(pool, job_type, config=JobConfig(
                module="exec", module_params=struct(timeout_seconds=300)))
            pid = wait_until(sleeper_pid, timeout=30, what="the command's child")
            assert alive(pid)
            assert client.jobs.Cancel(id=job.id).state == CANCELLED
            wait_until(lambda: not alive(pid), timeout=10,
                       what="the cancelled command's child to be killed")
            for name in os.listdir(pids):
                os.unlink(os.path.join(pids, name))
            # A timeout kills the group too, and the job fails (retryable,
            # so with attempts left it is queued again: max_attempts 1).
            slow = client.submit(pool, job_type, max_attempts=1,
                                 config=JobConfig(
                                     module="exec",
                                     module_params=struct(timeout_seconds=1)))
            pid = wait_until(sleeper_pid, timeout=30, what="the second child")
            got = wait_until(
                lambda: (lambda j: j.state == FAILED and j)(client.get(slow.id)),
                timeout=30, what="the timed-out job to fail")
            assert got.error.startswith("timed out"), got.error
            wait_until(lambda: not alive(pid), timeout=10,
                       what="the timed-out command's child to be killed")
        assert worker.stop() == 0
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
        stop_hub(hub)
        import shutil
        shutil.rmtree(pids, ignore_errors=True)
