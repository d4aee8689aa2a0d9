"""Client helpers for the hub's end-to-end tests: the jobhub.v1 message
classes (generated with protoc when this module is first imported), a
unary() call helper, a HubClient whose services are called by method name,
a Connect worker running on its own threads, the real jobhub-worker
process, and bounded polling.

Run with Debian's python3-grpcio and python3-protobuf (/usr/bin/python3).
"""
import atexit
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from google.protobuf import struct_pb2, symbol_database

from conftest import BUILD, JOBHUBD, ROOT, start_server

_out = tempfile.mkdtemp(prefix="jobhub-e2e-hub-pb2-")
atexit.register(shutil.rmtree, _out, ignore_errors=True)
subprocess.run(
    ["protoc", "-I" + os.path.join(ROOT, "proto"),
     "-I" + os.path.join(ROOT, "third_party"), "-I/usr/include",
     "--python_out=" + _out, "jobhub/v1/common.proto",
     "jobhub/v1/jobs.proto", "jobhub/v1/workers.proto",
     "google/api/annotations.proto", "google/api/http.proto"], check=True)
sys.path.insert(0, _out)
from jobhub.v1 import common_pb2, jobs_pb2, workers_pb2  # noqa: E402

# Seconds a single call may take before it counts as hung: generous, the
# suite also runs under ASan and TSan.
TIMEOUT = 30

QUEUED = common_pb2.QUEUED
IN_PROGRESS = common_pb2.IN_PROGRESS
DONE = common_pb2.DONE
FAILED = common_pb2.FAILED
CANCELLED = common_pb2.CANCELLED


def state_name(state):
    return common_pb2.JobState.Name(state)


def unary(channel, service, method, request, response, timeout=TIMEOUT):
    """Calls /jobhub.v1.<service>/<method> with request; returns the
    response message (class response) or raises grpc.RpcError."""
    return channel.unary_unary(
        "/jobhub.v1.%s/%s" % (service, method),
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response.FromString)(request, timeout=timeout)


def start_hub(args=()):
    """Starts the real jobhubd on a free 127.0.0.1 port (its own store
    unless args has --data)."""
    return start_server(list(args), binary=JOBHUBD)


def stop_hub(hub):
    """Stops a hub started by start_hub and asserts a clean exit."""
    hub.stop()


WORKER = os.path.join(BUILD, "worker", "jobhub-worker")


class Worker:
    """A jobhub-worker process (log level debug, its log in a file).
    stop() and kill() check its exit code, as Server's do. As a context
    manager it kills, on the way out, a worker the test left running (the
    test failed before its stop())."""

    def __init__(self, address, pool, job_type, module="echo", capacity=4,
                 client_id=None, extra=(), env=None):
        self.log = tempfile.NamedTemporaryFile(prefix="jobhub-worker-",
                                               suffix=".log", delete=False)
        args = [WORKER, "--addr", address, "--pool", str(pool), "--job-type",
                str(job_type), "--module", module, "--capacity",
                str(capacity), "--log-level", "debug"] + list(extra)
        if client_id is not None:
            args += ["--client-id", client_id]
        self.process = subprocess.Popen(args, stdout=self.log,
                                        stderr=subprocess.STDOUT, env=env)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        self.process.send_signal(sig)

    def wait(self, timeout=30):
        """Waits for the worker to exit; returns its exit code."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("jobhub-worker did not exit:\n" +
                                 self.output())

    def stop(self, timeout=30, expect=0):
        """SIGTERM (if still running), then wait; asserts the exit code is
        expect (0: drained and left) and returns it; removes the log."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        code = self.wait(timeout)
        assert code == expect, "jobhub-worker exit code %s, expected %s\n%s" % (
            code, expect, self.output()[-4000:])
        os.unlink(self.log.name)
        return code

    def kill(self):
        """SIGKILL, as a crash would; asserts the worker was still running
        until then."""
        early = self.process.poll()
        assert early is None, "jobhub-worker exited with %s before SIGKILL" \
            "\n%s" % (early, self.output()[-4000:])
        self.process.kill()
        return self.stop(expect=-signal.SIGKILL)


_symbols = symbol_database.Default()


class _Service:
    """Calls the methods of one jobhub.v1 service by name: the request is
    built from keyword arguments (or passed whole as request=)."""

    def __init__(self, channel, descriptor):
        self._channel = channel
        self._descriptor = descriptor

    def __getattr__(self, name):
        method = self._descriptor.methods_by_name.get(name)
        if method is None:
            raise AttributeError(name)
        request_class = _symbols.GetSymbol(method.input_type.full_name)
        response_class = _symbols.GetSymbol(method.output_type.full_name)
        path = "/%s/%s" % (self._descriptor.full_name, name)
        kw = dict(request_serializer=lambda m: m.SerializeToString(),
                  response_deserializer=response_class.FromString)
        if method.server_streaming:
            callable_ = self._channel.unary_stream(path, **kw)
        else:
            callable_ = self._channel.unary_unary(path, **kw)

        def invoke(request=None, timeout=TIMEOUT, **fields):
            if request is None:
                request = request_class(**fields)
            return callable_(request, timeout=timeout)
        return invoke


class HubClient:
    """A channel to a hub with .jobs and .workers (unary and server
    streaming methods). Close it, or use it as a context manager."""

    def __init__(self, address):
        self.address = address
        self.channel = grpc.insecure_channel(address)
        self.jobs = _Service(
            self.channel, jobs_pb2.DESCRIPTOR.services_by_name["Jobs"])
        self.workers = _Service(
            self.channel, workers_pb2.DESCRIPTOR.services_by_name["Workers"])

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Shortcuts for what nearly every test does.

    def submit(self, pool_id, job_type_id, **fields):
        return self.jobs.Submit(pool_id=pool_id, job_type_id=job_type_id,
                                **fields)

    def get(self, job_id):
        return self.jobs.Get(id=job_id)

    def history(self, job_id):
        return list(self.jobs.History(id=job_id).events)

    def history_ending(self, job_id, from_state, to_state, timeout=10):
        """History once its last event is from_state -> to_state. History
        reads the store, and the hub writes some transitions (a lease, a
        lease expiry, a re-queue) behind the answer that shows them, so it
        may lag Get by a group commit."""
        def settled():
            events = self.history(job_id)
            return events and (events[-1].from_state,
                               events[-1].to_state) == (from_state,
                                                        to_state) and events
        return wait_until(settled, timeout, "the History of %s to end %s -> "
                          "%s" % (job_id, state_name(from_state),
                                  state_name(to_state)))

    def lease(self, pool_id, job_type_id, client_id="unary-worker",
              max_jobs=1, wait_ms=0, **fields):
        return list(self.workers.Lease(
            client_id=client_id, pool_id=pool_id, job_type_ids=[job_type_id],
            max_jobs=max_jobs, wait_ms=wait_ms, **fields).assignments)

    def lease_one(self, pool_id, job_type_id, client_id="unary-worker",
                  wait_ms=5000):
        got = self.lease(pool_id, job_type_id, client_id=client_id,
                         wait_ms=wait_ms)
        assert len(got) == 1, "expected one assignment, got %d" % len(got)
        return got[0]

    def complete(self, assignment, value="ok", client_id="unary-worker"):
        result = common_pb2.JobResult()
        result.value.string_value = value
        return self.workers.Complete(
            client_id=client_id, job_id=assignment.job.id,
            lease_id=assignment.lease_id, result=result)

    def fail(self, assignment, error, retryable, client_id="unary-worker"):
        return self.workers.Fail(
            client_id=client_id, job_id=assignment.job.id,
            lease_id=assignment.lease_id, error=error, retryable=retryable)

    def list_all(self, **fields):
        """Every job matching the filter, through every page."""
        jobs, token = [], ""
        for _ in range(10000):
            page = self.jobs.List(page_size=1000, page_token=token, **fields)
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token:
                return jobs
        raise AssertionError("List never reached its last page")


def expect_error(code, fn, *args, **kwargs):
    """Calls fn, which must fail with status code; returns the message."""
    try:
        fn(*args, **kwargs)
    except grpc.RpcError as error:
        assert error.code() == code, "expected %s, got %s: %s" % (
            code, error.code(), error.details())
        return error.details() or ""
    raise AssertionError("expected %s, the call succeeded" % code)


def wait_until(predicate, timeout=10, what="the condition", interval=0.02):
    """Polls predicate until it returns something true, and returns that;
    fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %s s waiting for %s" % (
                timeout, what))
        time.sleep(interval)


_next_pool = [0]
_pool_lock = threading.Lock()


def new_pool():
    """A (pool_id, job_type_id) no other test of this process used."""
    with _pool_lock:
        _next_pool[0] += 1
        n = _next_pool[0]
    return 1 + n % 1000, 1 + n // 1000


def struct(**fields):
    s = struct_pb2.Struct()
    s.update(fields)
    return s


class ConnectWorker:
    """A worker on Workers/Connect with its own channel: a reader thread
    records every HubMessage (welcome, assignments, cancels, subject-state
    queries, drains, and any newer kind); send() queues WorkerMessages.
    auto_complete answers each assignment with a result at once;
    on_assignment(worker, assignment), run on the reader thread, replaces
    that. subject_state (a function of the subject returning a dict, or
    None: no answer) answers queries. first_message replaces the hello.
    The stream lives at most lifetime seconds."""

    def __init__(self, address, client_id, pool_id, job_type_ids, capacity=1,
                 hostname="", worker_idx=0, auto_complete=False,
                 subject_state=None, lifetime=120, first_message=None,
                 on_assignment=None):
        self.client_id = client_id
        self.auto_complete = auto_complete
        self.on_assignment = on_assignment
        self.subject_state = subject_state
        self.channel = grpc.insecure_channel(address)
        self._out = queue.Queue()
        self._cond = threading.Condition()
        self.messages = []       # every HubMessage, in order
        self.assignments = []    # Assignment messages, in order
        self.cancels = []        # JobCancellation messages
        self.queries = []        # SubjectStateQuery messages
        self.drains = 0
        self.completed = []      # job ids answered with a result
        self.welcome = None
        self.ended = False
        self.code = None
        self.details = None
        if first_message is None:
            first_message = workers_pb2.WorkerMessage(
                hello=workers_pb2.WorkerHello(
                    client_id=client_id, pool_id=pool_id,
                    job_type_ids=list(job_type_ids), capacity=capacity,
                    hostname=hostname, worker_idx=worker_idx))
        self._deadline = time.monotonic() + lifetime
        self.call = self.channel.stream_stream(
            "/jobhub.v1.Workers/Connect",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=workers_pb2.HubMessage.FromString)(
                self._requests(first_message), timeout=lifetime)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _requests(self, first):
        yield first
        while time.monotonic() < self._deadline:
            try:
                item = self._out.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None:
                return  # half-close: the worker leaves
            yield item

    def _read(self):
        try:
            for message in self.call:
                self._handle(message)
        except grpc.RpcError:
            pass
        with self._cond:
            self.code = self.call.code()
            self.details = self.call.details()
            self.ended = True
            self._cond.notify_all()

    def _handle(self, message):
        kind = message.WhichOneof("message")
        with self._cond:
            self.messages.append(message)
            if kind == "welcome":
                self.welcome = message.welcome
            elif kind == "assignment":
                self.assignments.append(message.assignment)
            elif kind == "cancel":
                self.cancels.append(message.cancel)
            elif kind == "subject_state_query":
                self.queries.append(message.subject_state_query)
            elif kind == "drain":
                self.drains += 1
            self._cond.notify_all()
        if kind == "assignment" and self.on_assignment is not None:
            self.on_assignment(self, message.assignment)
        elif kind == "assignment" and self.auto_complete:
            self.complete(message.assignment)
        elif kind == "subject_state_query" and self.subject_state is not None:
            query = message.subject_state_query
            self.send(workers_pb2.WorkerMessage(
                subject_state=workers_pb2.SubjectState(
                    query_id=query.query_id, subject=query.subject,
                    state=struct(**self.subject_state(query.subject)))))

    def send(self, message):
        self._out.put(message)

    def complete(self, assignment, value=None):
        result = common_pb2.JobResult()
        result.value.string_value = value or "done:" + assignment.job.id
        self.send(workers_pb2.WorkerMessage(result=workers_pb2.CompleteRequest(
            client_id=self.client_id, job_id=assignment.job.id,
            lease_id=assignment.lease_id, result=result)))
        with self._cond:
            self.completed.append(assignment.job.id)

    def fail(self, assignment, error, retryable):
        self.send(workers_pb2.WorkerMessage(error=workers_pb2.FailRequest(
            client_id=self.client_id, job_id=assignment.job.id,
            lease_id=assignment.lease_id, error=error, retryable=retryable)))

    def progress(self, assignment, progress, message=""):
        self.send(workers_pb2.WorkerMessage(
            progress=workers_pb2.ProgressRequest(
                client_id=self.client_id, job_id=assignment.job.id,
                lease_id=assignment.lease_id, progress=progress,
                message=message)))

    def wait_for(self, predicate, timeout=10, what="the condition"):
        """Waits until predicate(self) is true (checked under the lock
        whenever a message arrives); returns its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        "timed out after %s s waiting for %s; got %s" % (
                            timeout, what,
                            [m.WhichOneof("message") for m in self.messages]))
                self._cond.wait(remaining)

    def wait_welcome(self, timeout=10):
        self.wait_for(lambda w: w.welcome is not None or w.ended, timeout,
                      "welcome")
        return self.welcome

    def wait_assignments(self, n, timeout=10):
        self.wait_for(lambda w: len(w.assignments) >= n, timeout,
                      "%d assignments" % n)
        with self._cond:
            return list(self.assignments)

    def ended_within(self, timeout):
        """True if the stream ended within timeout seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self.ended, timeout)

    def wait_ended(self, timeout=10):
        self.wait_for(lambda w: w.ended, timeout, "the stream to end")
        return self.code

    def close(self, timeout=10):
        """Half-closes the stream (the worker leaves) and waits for its end."""
        self._out.put(None)
        try:
            self.wait_ended(timeout)
        finally:
            self.cancel()

    def cancel(self):
        """Resets the stream (if still open) and closes the channel."""
        self.call.cancel()
        self._reader.join(timeout=10)
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()


class StreamCollector:
    """Reads a server stream (e.g. Jobs/Watch) on a thread, keeping every
    message; records the final status when the stream ends."""

    def __init__(self, call):
        self.call = call
        self.messages = []
        self.ended = False
        self.code = None
        self.details = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for message in self.call:
                with self._cond:
                    self.messages.append(message)
                    self._cond.notify_all()
        except grpc.RpcError:
            pass
        with self._cond:
            self.code = self.call.code()
            self.details = self.call.details()
            self.ended = True
            self._cond.notify_all()

    def wait_for(self, predicate, timeout=10, what="the condition"):
        """Waits until predicate(self) is true; returns its value."""
        with self._cond:
            value = self._cond.wait_for(lambda: predicate(self), timeout)
            if not value:
                raise AssertionError(
                    "timed out after %s s waiting for %s; got %d messages, "
                    "ended=%s code=%s" % (timeout, what, len(self.messages),
                                          self.ended, self.code))
            return value

    def snapshot(self):
        with self._cond:
            return list(self.messages)

    def cancel(self):
        self.call.cancel()
        self._thread.join(timeout=10)
