"""End-to-end: the paths the systems jobhub replaces are called on today
(SPEC "JSON transcoding endpoint" table and "HTTP face, auth, browsers,
operations (settled)", legacy paths), with python3-requests as their
clients send them (HTTP/1.1, keep-alive): the work manager's getWork /
storeResult / storeError loop, the Jobs API's POST /jobs and GET
/jobs/{id}[/results], and the Enodo hub's worker admin and stats paths.
The jobs are checked from the other side with python3-grpcio."""
import json

import pytest
import requests

from hub_client import (HubClient, common_pb2, jobs_pb2, new_pool, start_hub,
                        stop_hub)
from test_auth import BEARER, auth_file, guarded_hub  # noqa: F401

TIMEOUT = 10
MAX_LOOPS = 100  # a client loop ends at 410 long before


@pytest.fixture(scope="module")
def hub():
    h = start_hub(["--legacy-pool", "7", "--legacy-job-type", "3"])
    yield h
    stop_hub(h)


@pytest.fixture(scope="module")
def grpc_client(hub):
    with HubClient(hub.address) as c:
        yield c


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def url(hub, path):
    return "http://%s%s" % (hub.address, path)


def json_error(answer, status, code=None):
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()
    assert set(error) == {"code", "message", "details"}, error
    if code is not None:
        assert error["code"] == code, error
    return error


def submit_units(grpc_client, pool, job_type, count):
    """Jobs as the work manager's producer makes them: a unit of work in
    module_params, the table name as subject."""
    ids = []
    for i in range(count):
        request = jobs_pb2.SubmitRequest(pool_id=pool, job_type_id=job_type,
                                         subject="table_%d" % i)
        request.config.module_params.update({"start": i, "end": i + 1})
        ids.append(grpc_client.jobs.Submit(request).id)
    return ids


def test_work_manager_client_loop_until_410(hub, grpc_client, http):
    pool, job_type = new_pool()
    ids = submit_units(grpc_client, pool, job_type, 5)
    where = "client=guid-a&pool=%d&jobType=%d" % (pool, job_type)
    done = []
    for _ in range(MAX_LOOPS):
        work = http.post(url(hub, "/getWork?" + where), timeout=TIMEOUT)
        if work.status_code == 410:
            json_error(work, 410)
            break
        assert work.status_code == 200, work.text
        unit = work.json()
        assert unit["end"] == unit["start"] + 1
        assert unit["name"] == "table_%d" % unit["start"]  # the subject
        stored = http.put(url(hub, "/storeResult/%s?%s" % (unit["name"],
                                                           where)),
                          data=json.dumps({"sum": unit["start"] * 2}),
                          timeout=TIMEOUT)
        assert stored.status_code == 200, stored.text
        done.append(unit["start"])
    else:
        pytest.fail("getWork never answered 410")
    assert sorted(done) == list(range(5))
    for i, job_id in enumerate(ids):
        job = grpc_client.jobs.Get(jobs_pb2.GetRequest(id=job_id))
        assert job.state == common_pb2.DONE
        result = grpc_client.jobs.GetResult(jobs_pb2.GetResultRequest(
            id=job_id))
        assert json.loads(result.data) == {"sum": i * 2}  # the raw body


def test_store_paths_answer_401_404_410(hub, grpc_client, http):
    pool, job_type = new_pool()
    submit_units(grpc_client, pool, job_type, 2)
    where = "pool=%d&jobType=%d" % (pool, job_type)
    answer = http.post(url(hub, "/getWork?" + where), timeout=TIMEOUT)
    json_error(answer, 401, 16)
    assert answer.headers["www-authenticate"].startswith("Bearer")
    json_error(http.put(url(hub, "/storeResult/table_0?" + where), data="1",
                        timeout=TIMEOUT), 401, 16)
    work = http.post(url(hub, "/getWork/?client=guid-b&" + where),
                     timeout=TIMEOUT).json()  # a trailing slash too
    name = work["name"]
    json_error(http.put(url(hub, "/storeResult/no_such_table?client=guid-b&"
                            + where), data="1", timeout=TIMEOUT), 404, 5)
    json_error(http.put(url(hub, "/storeResult/%s?client=guid-other&%s"
                            % (name, where)), data="1", timeout=TIMEOUT),
               404, 5)
    first = http.put(url(hub, "/storeResult/%s?client=guid-b&%s"
                         % (name, where)), data="1", timeout=TIMEOUT)
    assert first.status_code == 200, first.text
    json_error(http.put(url(hub, "/storeResult/%s?client=guid-b&%s"
                            % (name, where)), data="2", timeout=TIMEOUT), 410)


def test_store_error_fails_the_job_and_reset_requeues_it(hub, grpc_client,
                                                         http):
    pool, job_type = new_pool()
    (job_id,) = submit_units(grpc_client, pool, job_type, 1)
    where = "client=guid-c&pool=%d&jobType=%d" % (pool, job_type)
    work = http.post(url(hub, "/getWork?" + where), timeout=TIMEOUT).json()
    failed = http.put(url(hub, "/storeError/%s?%s" % (work["name"], where)),
                      data="division by zero", timeout=TIMEOUT)
    assert failed.status_code == 200, failed.text
    job = grpc_client.jobs.Get(jobs_pb2.GetRequest(id=job_id))
    assert job.state == common_pb2.FAILED  # no retry
    assert job.error == "division by zero"
    grpc_client.jobs.Reset(jobs_pb2.ResetRequest(ids=[job_id]))
    again = http.post(url(hub, "/getWork?" + where), timeout=TIMEOUT)
    assert again.status_code == 200 and again.json()["name"] == work["name"]


def test_legacy_defaults_come_from_the_flags(hub, grpc_client, http):
    submit_units(grpc_client, 7, 3, 1)
    work = http.post(url(hub, "/getWork?client=guid-d"), timeout=TIMEOUT)
    assert work.status_code == 200, work.text
    json_error(http.post(url(hub, "/getWork?client=guid-d&pool=x"),
                         timeout=TIMEOUT), 400, 3)


def test_jobs_api_flow(hub, grpc_client, http):
    answer = http.post(url(hub, "/jobs?pool=%d&jobType=%d" % (8, 1)),
                       json={"start": 1, "end": 2}, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["config"]["moduleParams"] == {"start": 1, "end": 2}
    assert job["poolId"] == 8 and job["jobTypeId"] == 1
    got = http.get(url(hub, "/jobs/%s" % job["id"]), timeout=TIMEOUT)
    assert got.status_code == 200 and got.json()["state"] == "QUEUED"
    assignment = grpc_client.lease_one(8, 1)
    assert assignment.job.id == job["id"]
    grpc_client.complete(assignment, value="three")
    results = http.get(url(hub, "/jobs/%s/results" % job["id"]),
                       timeout=TIMEOUT)
    assert results.status_code == 200, results.text
    assert results.json()["value"] == "three"
    # A SubmitRequest is a Submit as usual; the default pool and type
    # otherwise.
    plain = http.post(url(hub, "/jobs"), json={"subject": "x", "poolId": 9},
                      timeout=TIMEOUT).json()
    assert plain["subject"] == "x" and plain["poolId"] == 9
    other = http.post(url(hub, "/jobs"), json={"n": 5},
                      timeout=TIMEOUT).json()
    assert other["poolId"] == 7 and other["jobTypeId"] == 3
    json_error(http.post(url(hub, "/jobs"), data="[1, 2]", headers={
        "content-type": "application/json"}, timeout=TIMEOUT), 400, 3)


def test_enodo_worker_admin_and_stats(hub, http):
    pool, job_type = new_pool()
    added = http.post(url(hub, "/api/worker/%d" % pool), json={
        "hostname": "enodo-worker-1", "port": 9104,
        "worker_config": {"job_type_id": job_type, "module": "prophet"}},
        timeout=TIMEOUT)
    assert added.status_code == 200, added.text
    assert added.json()["jobTypeIds"] == [job_type]  # Enodo's nesting
    listed = http.get(url(hub, "/api/worker/%d" % pool), timeout=TIMEOUT)
    assert listed.status_code == 200, listed.text
    assert [w["hostname"] for w in listed.json()["workers"]] == \
        ["enodo-worker-1"]
    stats = http.get(url(hub, "/api/worker/stats/%d" % pool), timeout=TIMEOUT)
    assert stats.status_code == 200, stats.text
    deleted = http.delete(url(hub, "/api/worker/%d/%d" % (pool, job_type)),
                          timeout=TIMEOUT)
    assert deleted.status_code == 200, deleted.text
    json_error(http.delete(url(hub, "/api/worker/%d/%d" % (pool, job_type)),
                           timeout=TIMEOUT), 404, 5)


def test_enodo_paths_not_built_yet_answer_501(hub, http):
    for method, path in (("GET", "/api/enodo/output/result"),
                         ("POST", "/api/series/cpu/run?byName=1&poolID=0"),
                         ("GET", "/enodo/clients")):
        body = {} if method == "POST" else None
        json_error(http.request(method, url(hub, path), json=body,
                                timeout=TIMEOUT), 501, 12)


def test_work_manager_paths_need_the_worker_role(guarded_hub, http):
    where = "/getWork?client=guid-e"
    json_error(http.post(url(guarded_hub, where), timeout=TIMEOUT), 401, 16)
    json_error(http.post(url(guarded_hub, where), timeout=TIMEOUT, headers={
        "authorization": BEARER["client"]}), 403, 7)
    json_error(http.post(url(guarded_hub, where), timeout=TIMEOUT, headers={
        "authorization": BEARER["worker"]}), 410)
