"""The hub core end to end with python3-grpcio: a job's whole life over
the unary calls, a Connect worker receiving pushed assignments, and the
store surviving a restart."""
import tempfile
import time

import grpc
import pytest

from conftest import start_server
from hub_client import common_pb2, jobs_pb2, unary, workers_pb2


@pytest.fixture
def hub():
    server = start_server(["--retry-backoff-ms", "50"])
    yield server
    server.stop()  # asserts a clean exit


def test_submit_lease_complete_result_history(hub):
    with grpc.insecure_channel(hub.address) as channel:
        job = unary(channel, "Jobs", "Submit", jobs_pb2.SubmitRequest(
            pool_id=1, job_type_id=2, payload=b"x" * 100), common_pb2.Job)
        assert job.state == common_pb2.QUEUED and job.attempts == 0
        assert len(job.id) == 16 and job.created_at.seconds > 0
        lease = unary(channel, "Workers", "Lease", workers_pb2.LeaseRequest(
            client_id="c1", pool_id=1, job_type_ids=[2], wait_ms=1000),
            workers_pb2.LeaseResponse)
        assert len(lease.assignments) == 1
        assignment = lease.assignments[0]
        assert assignment.lease_id.rsplit(".", 1)[0] == job.id + ".1"
        assert assignment.job.payload == b"x" * 100
        assert assignment.job.state == common_pb2.IN_PROGRESS
        assert assignment.job.attempts == 1
        result = common_pb2.JobResult()
        result.value.string_value = "done"
        done = unary(channel, "Workers", "Complete", workers_pb2.CompleteRequest(
            client_id="c1", job_id=job.id, lease_id=assignment.lease_id,
            result=result), common_pb2.Job)
        assert done.state == common_pb2.DONE
        got = unary(channel, "Jobs", "GetResult",
                    jobs_pb2.GetResultRequest(id=job.id), common_pb2.JobResult)
        assert got.job_id == job.id and got.value.string_value == "done"
        with pytest.raises(grpc.RpcError) as again:
            unary(channel, "Workers", "Complete", workers_pb2.CompleteRequest(
                client_id="c1", job_id=job.id, lease_id=assignment.lease_id,
                result=result), common_pb2.Job)
        assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        events = unary(channel, "Jobs", "History",
                       jobs_pb2.HistoryRequest(id=job.id),
                       jobs_pb2.HistoryResponse).events
        assert [(e.from_state, e.to_state) for e in events] == [
            (0, common_pb2.QUEUED), (common_pb2.QUEUED, common_pb2.IN_PROGRESS),
            (common_pb2.IN_PROGRESS, common_pb2.DONE)]
        assert events[2].actor == "worker:%d" % assignment.job.worker_idx


def test_connect_gets_pushed_jobs_up_to_capacity(hub):
    with grpc.insecure_channel(hub.address) as channel:
        for _ in range(3):
            unary(channel, "Jobs", "Submit", jobs_pb2.SubmitRequest(
                pool_id=3, job_type_id=1, payload=b"y"), common_pb2.Job)

        def messages():
            yield workers_pb2.WorkerMessage(hello=workers_pb2.WorkerHello(
                client_id="w", pool_id=3, job_type_ids=[1], capacity=2))
            time.sleep(1.0)

        stream = channel.stream_stream(
            "/jobhub.v1.Workers/Connect",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=workers_pb2.HubMessage.FromString)(
                messages(), timeout=10)
        kinds = [m.WhichOneof("message") for m in stream]
        assert kinds == ["welcome", "assignment", "assignment"]
        # The stream ended before the worker acknowledged its jobs: they
        # are queued again, the attempts not counted.
        time.sleep(0.2)
        jobs = unary(channel, "Jobs", "List", jobs_pb2.ListJobsRequest(
            pool_id=3, job_type_id=1), jobs_pb2.ListJobsResponse).jobs
        assert sorted(j.attempts for j in jobs) == [0, 0, 0]
        assert all(j.state == common_pb2.QUEUED for j in jobs)


def test_jobs_survive_a_restart():
    data = tempfile.mkdtemp(prefix="jobhub-e2e-data-")
    server = start_server(["--data", data])
    with grpc.insecure_channel(server.address) as channel:
        ids = [unary(channel, "Jobs", "Submit", jobs_pb2.SubmitRequest(
            pool_id=1, job_type_id=1, idempotency_key="k%d" % i),
            common_pb2.Job).id for i in range(20)]
    server.kill()  # SIGKILL: only what was durable survives
    server = start_server(["--data", data])
    with grpc.insecure_channel(server.address) as channel:
        for i, job_id in enumerate(ids):
            job = unary(channel, "Jobs", "Get", jobs_pb2.GetRequest(id=job_id),
                        common_pb2.Job)
            assert job.state == common_pb2.QUEUED
            same = unary(channel, "Jobs", "Submit", jobs_pb2.SubmitRequest(
                pool_id=1, job_type_id=1, idempotency_key="k%d" % i),
                common_pb2.Job)
            assert same.id == job_id
    server.stop()
