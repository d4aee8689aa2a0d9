"""The data side of bench/http.sh: the same jobs in jobhubd and in the
Flask peer's Redis, and a check that both answer GET /jobs/<id> alike.
Run with /usr/bin/python3 (Debian python3-redis).

    jobs_api_data.py collect CLI ADDR OUT
        Lists every job of the hub at ADDR with the jobhub CLI (Jobs.List,
        pages of 1000, --json) and writes one job a line to OUT, as jobhub
        renders it in ProtoJSON, compact, keys in jobhub's order.
    jobs_api_data.py load REDIS_URL JOBS
        Stores each job of the file JOBS in Redis as the string "job:<id>"
        (the JSON line as it is), then checks that Redis holds that many
        keys.
    jobs_api_data.py compare FLASK_URL JOBHUB_URL JOBS SAMPLE
        GET /jobs/<id> from the Flask peer and from jobhubd's JSON face
        (both over HTTP/1.1) for SAMPLE jobs spread over the file JOBS, and
        GET /jobs/<an id that does not exist> from both. The peer must
        answer 200 with the stored JSON, and 404 for the missing job. Then
        jobhubd's answer is compared with the peer's, value by value.

Exit codes: 0 done (compare: both answer the same JSON); 1 an error (a
failed command, Redis, or the peer answering wrong); 2 usage; 3 (compare)
jobhubd's JSON differs from the peer's (the differences are printed);
4 (compare) jobhubd's JSON face answered no job at all: it is not in this
build (its status is printed).
"""
import http.client
import json
import subprocess
import sys
import urllib.parse

import redis

MISSING_ID = "ffffffffffffff00"


def compact(job):
    """The job as one JSON line, as jobhub writes it: no spaces."""
    return json.dumps(job, separators=(",", ":"))


def collect(cli, addr, out_path):
    count = 0
    token = ""
    with open(out_path, "w") as out:
        while True:
            command = [cli, "--addr", addr, "jobs", "list", "--json",
                       "--page-size", "1000"]
            if token:
                command += ["--page-token", token]
            page = json.loads(subprocess.run(
                command, check=True, capture_output=True, timeout=60).stdout)
            for job in page.get("jobs", []):
                out.write(compact(job) + "\n")
                count += 1
            token = page.get("nextPageToken", "")
            if not token:
                break
    print("collected %d jobs" % count)


def load(url, jobs_path):
    store = redis.Redis.from_url(url)
    pipe = store.pipeline(transaction=False)
    count = 0
    with open(jobs_path) as jobs:
        for line in jobs:
            line = line.rstrip("\n")
            pipe.set("job:" + json.loads(line)["id"], line)
            count += 1
            if count % 1000 == 0:
                pipe.execute()
    pipe.execute()
    held = store.dbsize()
    if held != count:
        sys.exit("Redis holds %d keys for %d jobs" % (held, count))
    print("stored %d jobs in Redis" % count)


def get(base_url, job_id):
    """GET /jobs/<job_id> on base_url over HTTP/1.1: (status,
    content-type, body bytes)."""
    parts = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port,
                                            timeout=10)
    try:
        connection.request("GET", "/jobs/" + job_id)
        response = connection.getresponse()
        return (response.status, response.getheader("content-type", ""),
                response.read())
    except (OSError, http.client.HTTPException) as error:
        return (0, "", str(error).encode())
    finally:
        connection.close()


def differences(ours, theirs, path=""):
    """The paths where the JSON values ours and theirs differ, each with
    both values."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = []
        for key in sorted(set(ours) | set(theirs)):
            if key not in theirs:
                found.append("%s.%s: jobhubd only (%s)" % (path, key, compact(ours[key])))
            elif key not in ours:
                found.append("%s.%s: peer only (%s)" % (path, key, compact(theirs[key])))
            else:
                found += differences(ours[key], theirs[key], path + "." + key)
        return found
    if ours != theirs:
        return ["%s: jobhubd %s, peer %s" % (path or ".", compact(ours), compact(theirs))]
    return []


def compare(flask_url, jobhub_url, jobs_path, sample):
    with open(jobs_path) as jobs:
        lines = [line.rstrip("\n") for line in jobs]
    step = max(1, len(lines) // sample)
    chosen = lines[::step][:sample]
    status, content_type, body = get(flask_url, MISSING_ID)
    if status != 404:
        sys.exit("peer: GET /jobs/%s (no such job): HTTP %d, not 404" % (MISSING_ID, status))
    for line in chosen:
        job_id = json.loads(line)["id"]
        status, content_type, body = get(flask_url, job_id)
        if status != 200 or content_type != "application/json" or body.decode() != line:
            sys.exit("peer: GET /jobs/%s: HTTP %d %s %r, not the stored job"
                     % (job_id, status, content_type, body[:200]))
    print("peer: %d jobs answered as stored (200 application/json), "
          "a missing one 404" % len(chosen))

    face_missing = True
    different = []
    sizes = []
    for line in chosen:
        job_id = json.loads(line)["id"]
        status, content_type, body = get(jobhub_url, job_id)
        if status != 200:
            if face_missing:
                print("jobhubd: GET /jobs/%s: HTTP %d %s" % (
                    job_id, status, body[:100].decode(errors="replace")))
                break
            different.append("%s: jobhubd HTTP %d" % (job_id, status))
            continue
        face_missing = False
        sizes.append(len(body))
        if not content_type.startswith("application/json"):
            different.append("%s: content-type %s" % (job_id, content_type))
        try:
            ours = json.loads(body)
        except ValueError as error:
            different.append("%s: not JSON: %s" % (job_id, error))
            continue
        found = differences(ours, json.loads(line))
        different += ["%s: %s" % (job_id, difference) for difference in found]
        if body.decode() != line and not found:
            different.append("%s: the same values, other bytes (%d vs %d)"
                             % (job_id, len(body), len(line)))
    if face_missing:
        return 4
    status, _, _ = get(jobhub_url, MISSING_ID)
    if status != 404:
        different.append("GET /jobs/%s (no such job): jobhubd HTTP %d, the peer 404"
                         % (MISSING_ID, status))
    print("jobhubd: %d of %d jobs answered, %d-%d bytes"
          % (len(sizes), len(chosen), min(sizes), max(sizes)))
    if different:
        print("jobhubd and the peer answer differently:")
        for difference in different[:20]:
            print("  " + difference)
        return 3
    print("jobhubd answers the same JSON as the peer, byte for byte")
    return 0


def main(argv):
    if len(argv) == 4 and argv[0] == "collect":
        collect(argv[1], argv[2], argv[3])
    elif len(argv) == 3 and argv[0] == "load":
        load(argv[1], argv[2])
    elif len(argv) == 5 and argv[0] == "compare" and argv[4].isdigit():
        return compare(argv[1], argv[2], argv[3], int(argv[4]))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, subprocess.SubprocessError, redis.RedisError,
            ValueError, KeyError) as error:
        sys.exit("jobs_api_data.py: %s" % error)
