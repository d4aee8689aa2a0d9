"""The Jobs API as its users run it today, reduced to the one route that
bench/http.sh measures: GET /jobs/<id> answers the job's JSON from Redis,
404 if there is no such job. A Flask app for gunicorn (Debian
python3-flask, python3-redis):

    JOBS_API_REDIS=redis://127.0.0.1:PORT/0 gunicorn --chdir bench/peers \
        --bind 127.0.0.1:PORT jobs_api:app

Each job is one Redis string, key "job:<id>", holding the job as JSON
(bench/http.sh stores what jobhub answers for the same job). The app
returns those bytes as they are: no json.loads and jsonify round trip, the
least work a Flask app can do for this route, so that the peer is measured
at its best.
"""
import os

import redis
from flask import Flask, Response

app = Flask(__name__)
# One client per worker process; redis-py keeps a pool of connections, one
# per thread that uses it at the same time.
store = redis.Redis.from_url(os.environ.get("JOBS_API_REDIS", "redis://127.0.0.1:6379/0"))


@app.get("/jobs/<job_id>")
def get_job(job_id):
    job = store.get("job:" + job_id)
    if job is None:
        return {"code": 5, "message": 'no job with id "%s"' % job_id}, 404
    return Response(job, mimetype="application/json")
