#!/usr/bin/env bash
# bench/http.sh: GET /jobs/{id} as JSON from jobhubd over HTTP/1.1
# keep-alive and over h2c, against gRPC jobhub.v1.Jobs/Get on the same
# jobhubd, and against the stack the Jobs API's users run today: a Flask
# app under gunicorn reading the job's JSON from Redis
# (bench/peers/jobs_api.py). All in this one run, at the same concurrency
# (h2load -c CONCURRENCY -m 1), each server pinned to one core and h2load
# to another. jobhubd and Redis hold the same JOBS jobs; the requests spread
# over them. Runs are interleaved across systems; the figures are medians
# of RUNS runs. See bench/README.md for what each figure means.
#
# Usage: bench/http.sh [BUILD_DIR]
#   BUILD_DIR (argument or env; default build-bench in the source tree) is
#   built with `cmake --build`; if it has no CMakeCache.txt yet it is first
#   configured with -DJOBHUB_BENCH=ON -DCMAKE_BUILD_TYPE=Release.
# Env: RUNS (3), DURATION (5, seconds per run; a 2 s warm-up run first),
#   CONCURRENCY (16, h2load -c on every system, always -m 1), JOBS (1000,
#   jobs in jobhubd and in Redis), SAMPLE (20, jobs whose answers the
#   fairness check compares), SYSTEMS (all: "json-h1 json-h2c grpc
#   flask"; a subset measures only those), SERVER_CPU (0), LOAD_CPU (1),
#   JOBHUBD_FLAGS (--log-level warn), GUNICORN_FLAGS (--workers 1
#   --worker-class gthread --threads 16), STRICT (1; 0: a missed target
#   is printed but does not fail the run).
# Exit codes: 0 done, 1 a verification or set-up failure (the JSON face
#   missing from the build is one), 2 usage error, 3 a target missed.
set -euo pipefail

bench_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$bench_dir")
build=${1:-${BUILD_DIR:-$root/build-bench}}
runs=${RUNS:-3}
duration=${DURATION:-5}
concurrency=${CONCURRENCY:-16}
jobs=${JOBS:-1000}
sample=${SAMPLE:-20}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
read -r -a jobhubd_flags <<<"${JOBHUBD_FLAGS:---log-level warn}"
# One core: one gunicorn process can use all of it (the GIL lets a process
# run Python on one core at a time), and more processes only take turns on
# it (2 workers measured 35% fewer req/s here). gthread, because the sync
# worker closes the connection after every answer, so h2load --h1 would
# measure a new TCP connection per request (and h2load -D hangs when its
# clients must reconnect); gthread keeps HTTP/1.1 keep-alive as jobhubd
# does. 16 threads: one per connection of -c 16, so that a request waiting
# on Redis never holds up another connection.
read -r -a gunicorn_flags <<<"${GUNICORN_FLAGS:---workers 1 --worker-class gthread --threads 16}"
strict=${STRICT:-1}
python=/usr/bin/python3
all_systems=(json-h1 json-h2c grpc flask)
read -r -a systems <<<"${SYSTEMS:-${all_systems[*]}}"
declare -A label_of=(
  [json-h1]="jobhubd JSON HTTP/1.1"
  [json-h2c]="jobhubd JSON h2c"
  [grpc]="jobhubd gRPC Jobs/Get"
  [flask]="Flask+gunicorn+Redis"
)
# The targets of the issue.
target_json_vs_grpc=0.5
target_jobhubd_vs_flask=20

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "http.sh: $*" >&2; exit 1; }
for value in "$runs" "$duration" "$concurrency" "$jobs" "$sample" \
    "$server_cpu" "$load_cpu" "$strict"; do
  [[ $value =~ ^[0-9]+$ ]] || usage
done
((runs >= 1 && duration >= 1 && concurrency >= 1 && jobs >= 1 && sample >= 1)) || usage
((${#systems[@]} >= 1)) || usage
for name in "${systems[@]}"; do
  [[ " ${all_systems[*]} " == *" $name "* ]] || usage
done
[[ $# -le 1 && ${1:-} != -* ]] || usage

for tool in h2load nghttp curl taskset cmake timeout awk sort xargs redis-server gunicorn; do
  command -v "$tool" >/dev/null || die "$tool missing: run ci/setup --bench"
done
"$python" -c 'import flask, redis' 2>/dev/null ||
  die "$python cannot import flask and redis: run ci/setup --bench (python3-flask, python3-redis)"
taskset -c "$server_cpu,$load_cpu" true 2>/dev/null ||
  die "cannot pin to cores $server_cpu and $load_cpu (nproc: $(nproc))"
[[ $server_cpu != "$load_cpu" ]] || die "SERVER_CPU and LOAD_CPU are equal"

work=$(mktemp -d /tmp/jobhub-bench-http-XXXXXX)
exit_code=0
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh" # start, stop, h2load_summary, verdict, ...
bench_cleanup_on_exit

# selected NAME: system NAME is in SYSTEMS.
selected() { [[ " ${systems[*]} " == *" $1 "* ]]; }
measuring=()
for name in "${systems[@]}"; do measuring+=("$name"); done
# drop NAME WHY: NAME is not measured, and the run fails (exit 1).
drop() {
  local -a rest=()
  local name
  echo "NOT MEASURED ${label_of[$1]}: $2"
  for name in "${measuring[@]}"; do [[ $name == "$1" ]] || rest+=("$name"); done
  measuring=("${rest[@]}")
  exit_code=1
}

# ---------------------------------------------------------------- build
configure_bench_build
jobhubd_bin=$build/server/jobhubd
cli_bin=$build/client/jobhub
timeout 1800 cmake --build "$build" --target jobhubd jobhub -j "$(nproc)" \
  >"$work/build.log" 2>&1 || { tail -15 "$work/build.log"; die "building jobhubd and jobhub in $build failed"; }

# ---------------------------------------------------------------- servers
declare -A pid_of=() port_of=()
echo "== bench/http.sh: $(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   $(h2load --version | head -1), $(gunicorn --version 2>&1), Flask $("$python" -c 'import flask; print(flask.__version__)'), $(redis-server --version | cut -d' ' -f1-3), build $build ($build_type)"
echo "   servers on core $server_cpu, h2load on core $load_cpu; -c $concurrency -m 1, $duration s per run; medians of $runs interleaved runs"

mkdir "$work/jobhubd-data" "$work/redis-data"
start jobhubd "$server_cpu" file "$jobhubd_bin" --threads 1 --data "$work/jobhubd-data" \
  --listen 127.0.0.1:0 --port-file "$work/jobhubd.port" "${jobhubd_flags[@]}" ||
  die "jobhubd did not start"
jobhubd_url=http://127.0.0.1:${port_of[jobhubd]}

echo "-- data: $jobs jobs submitted with the CLI as the Jobs API's users submit them ({\"start\":i,\"end\":i+1})"
# Four CLIs at a time on the load core: each is a new process and a new
# connection, and jobhubd syncs each group of submits before answering.
awk -v n="$jobs" 'BEGIN { for (i = 1; i <= n; i++) printf "{\"start\":%d,\"end\":%d}\n", i, i + 1 }' |
  timeout 600 taskset -c "$load_cpu" xargs -d '\n' -P 4 -I{} \
  "$cli_bin" --addr "127.0.0.1:${port_of[jobhubd]}" jobs submit \
  --params {} >/dev/null 2>"$work/submit.err" ||
  { tail -5 "$work/submit.err"; die "submitting $jobs jobs failed"; }
timeout 600 "$python" "$bench_dir/peers/jobs_api_data.py" collect "$cli_bin" \
  "127.0.0.1:${port_of[jobhubd]}" "$work/jobs.ndjson" || die "listing the jobs failed"
held=$(wc -l <"$work/jobs.ndjson")
((held == jobs)) || die "jobhubd lists $held jobs, not $jobs"
echo "   one of them, as jobhubd renders it: $(sed -n 1p "$work/jobs.ndjson")"

if selected flask; then
  # The durability of bench/jobs.sh's durable Redis (reads never sync).
  for attempt in 1 2 3; do # free_port can race with another program
    port=$(free_port)
    start redis "$server_cpu" "$port" redis-server --port "$port" --bind 127.0.0.1 \
      --appendonly yes --appendfsync always --save '' --dir "$work/redis-data" && break
    [[ $attempt == 3 ]] && die "redis-server did not start"
  done
  export JOBS_API_REDIS=redis://127.0.0.1:${port_of[redis]}/0 # for the app
  timeout 300 "$python" "$bench_dir/peers/jobs_api_data.py" load "$JOBS_API_REDIS" \
    "$work/jobs.ndjson" | sed 's/^/   /' || die "loading Redis failed"
  for attempt in 1 2 3; do
    port=$(free_port)
    start flask "$server_cpu" "$port" gunicorn \
      --chdir "$bench_dir/peers" --bind "127.0.0.1:$port" "${gunicorn_flags[@]}" \
      jobs_api:app && break
    [[ $attempt == 3 ]] && die "gunicorn did not start"
  done
  flask_url=http://127.0.0.1:${port_of[flask]}
fi

# ---------------------------------------------------------------- checks
# Every system answers the right thing before it is measured; h2load
# then checks the status (and the body size) of every request.
declare -A body_min_of=() body_max_of=() uris_of=()
for prefix in jobhubd flask; do
  [[ $prefix == flask ]] && ! selected flask && continue
  base=$jobhubd_url
  [[ $prefix == flask ]] && base=$flask_url
  "$python" -c 'import json, sys
for line in open(sys.argv[1]): print(sys.argv[2] + "/jobs/" + json.loads(line)["id"])' \
    "$work/jobs.ndjson" "$base" >"$work/$prefix.uris"
done
uris_of[json-h1]=$work/jobhubd.uris uris_of[json-h2c]=$work/jobhubd.uris
uris_of[flask]=$work/flask.uris
read -r stored_min stored_max < <(awk '{ n = length($0) }
  NR == 1 || n < min { min = n } n > max { max = n } END { print min, max }' "$work/jobs.ndjson")

# face_status PROTOCOL_FLAG: the HTTP status of GET /jobs/{id} of the
# first job on jobhubd, with curl and PROTOCOL_FLAG; its body in
# $work/face.body.
face_status() {
  local id
  id=$(sed -n '1s/^{"id":"\([^"]*\)".*/\1/p' "$work/jobs.ndjson")
  timeout 10 curl -s -o "$work/face.body" -w '%{http_code}' "$1" \
    "$jobhubd_url/jobs/$id" 2>/dev/null || true
}
echo "-- checks"
for name in json-h1 json-h2c; do
  selected "$name" || continue
  flag=--http1.1
  [[ $name == json-h2c ]] && flag=--http2-prior-knowledge
  status=$(face_status "$flag")
  if [[ $status == 200 ]]; then
    echo "  ${label_of[$name]}: GET /jobs/{id}: 200 $(wc -c <"$work/face.body") bytes"
  else
    drop "$name" "GET /jobs/{id}: HTTP ${status:-none} — the JSON face is not in this build"
  fi
done
if selected flask; then
  # The fairness check: the peer answers what jobhubd answers.
  rc=0
  timeout 120 "$python" "$bench_dir/peers/jobs_api_data.py" compare "$flask_url" \
    "$jobhubd_url" "$work/jobs.ndjson" "$sample" >"$work/compare.out" 2>&1 || rc=$?
  sed 's/^/  /' "$work/compare.out"
  case $rc in
  0) ;;
  3) echo "  WARNING: the peer's answers are not jobhubd's (above): the comparison is not like for like" ;;
  4) echo "  (jobhubd's JSON face does not answer: the peer was checked against jobhubd's gRPC answers, rendered as JSON by the CLI)" ;;
  *) drop flask "the peer answers wrong (above)" ;;
  esac
fi
# The peer answers the stored JSON. jobhubd's JSON face should answer the
# same (the check above says if it does not); half to twice the stored
# sizes lets a rendering that differs a little through, and still catches
# a 200 with an empty or an error body.
body_min_of[flask]=$stored_min body_max_of[flask]=$stored_max
for name in json-h1 json-h2c; do
  body_min_of[$name]=$((stored_min / 2)) body_max_of[$name]=$((stored_max * 2))
done
if selected grpc; then
  # h2load sends the same body with every request: gRPC gets one job, the
  # one in the middle of the list.
  grpc_id=$(sed -n "$(((jobs + 1) / 2))s/^{\"id\":\"\\([^\"]*\\)\".*/\\1/p" "$work/jobs.ndjson")
  # A GetRequest{id} (field 1, a string of ${#grpc_id} bytes) in its
  # 5-byte gRPC frame.
  "$python" -c 'import sys
message = b"\x0a" + bytes([len(sys.argv[1])]) + sys.argv[1].encode()
sys.stdout.buffer.write(b"\0" + len(message).to_bytes(4, "big") + message)' \
    "$grpc_id" >"$work/get.bin"
  out=$(timeout 10 nghttp -nv -d "$work/get.bin" -H 'content-type: application/grpc' \
    -H 'te: trailers' "$jobhubd_url/jobhub.v1.Jobs/Get" 2>&1) || true
  length=$(awk '/recv DATA frame/ { match($0, /length=[0-9]+/); n += substr($0, RSTART + 7, RLENGTH - 7) }
    /recv \(stream_id=[0-9]+\) grpc-status: 0$/ { ok = 1 } END { if (ok && n) print n }' <<<"$out")
  if [[ -n $length ]]; then
    echo "  ${label_of[grpc]}: nghttp -v: grpc-status: 0, $length bytes of DATA (job $grpc_id)"
    body_min_of[grpc]=$length body_max_of[grpc]=$length
  else
    tail -20 <<<"$out"
    drop grpc "Jobs/Get did not answer with grpc-status: 0 and a body"
  fi
fi

# ---------------------------------------------------------------- h2load
# run_h2load NAME OUT ARGS...: one h2load run against system NAME; appends
# its h2load_summary line to OUT.results.
run_h2load() {
  local name=$1 out=$2 rc=0
  shift 2
  local -a target=()
  case $name in
  json-h1) target=(--h1 -i "${uris_of[$name]}") ;;
  json-h2c) target=(-i "${uris_of[$name]}") ;;
  flask) target=(--h1 -i "${uris_of[$name]}") ;;
  grpc) target=(-d "$work/get.bin" -H 'content-type: application/grpc'
    -H 'te: trailers' "$jobhubd_url/jobhub.v1.Jobs/Get") ;;
  esac
  rm -f "$out.log" # h2load appends to its log file
  timeout $((duration + 60)) taskset -c "$load_cpu" h2load -t 1 -c "$concurrency" \
    -m 1 "$@" --log-file="$out.log" "${target[@]}" >"$out.out" 2>&1 || rc=$?
  printf '%q ' taskset -c "$load_cpu" h2load -t 1 -c "$concurrency" -m 1 "$@" \
    --log-file=LOG "${target[@]}" | sed "s|$work/||g; s/ $//" >"$out.command"
  h2load_summary "$rc" "$out.out" "$out.log" "${body_min_of[$name]}" \
    "${body_max_of[$name]}" "$concurrency" >>"$out.results"
  rm -f "$out.log"
}

# med NAME FIELD: a median of the clean runs, or empty if none.
med() {
  local file=$work/$1.results
  [[ -s $file ]] || return 0
  awk -v n="$2" '$6 == "-" { print $n }' "$file" | median | awk '$1 != 0'
}

echo "-- throughput: -c $concurrency -m 1, $duration s per run (-D $duration), after a 2 s warm-up run"
for name in "${measuring[@]}"; do
  run_h2load "$name" "$work/$name.warmup" -D 2
done
count=${#measuring[@]}
for ((round = 0; round < runs; round++)); do
  for ((index = 0; index < count; index++)); do
    name=${measuring[(index + round) % count]}
    run_h2load "$name" "$work/$name" -D "$duration"
  done
done
printf '  %-24s %9s %8s %8s %8s %8s   %s\n' system req/s 'p50 us' 'p99 us' \
  'body B' 'hdr B' 'req/s of each run'
for name in "${measuring[@]}"; do
  file=$work/$name.results
  problems=$(awk '$6 != "-" { print $6 }' "$file" | sort -u | paste -sd, -)
  printf '  %-24s %9s %8s %8s %8s %8s   %s\n' "${label_of[$name]}" \
    "$(med "$name" 1)" "$(med "$name" 2)" "$(med "$name" 3)" "$(med "$name" 4)" \
    "$(med "$name" 5)" "$(field "$file" 1 | paste -sd' ' -)${problems:+   INVALID: $problems}"
  [[ -z $problems ]] || exit_code=1
done
for name in "${!pid_of[@]}"; do
  alive "${pid_of[$name]}" || { echo "  INVALID: $name died during the runs"; exit_code=1; }
done

# ---------------------------------------------------------------- verdicts
echo "== results (medians of $runs runs)"
missed=0
grpc_rps=$(med grpc 1)
for name in json-h1 json-h2c; do
  if ! selected "$name" || ! selected grpc; then continue; fi
  ours=$(med "$name" 1)
  if [[ -n $ours && -n $grpc_rps ]]; then
    r=$(ratio "$ours" "$grpc_rps")
    verdict "ratio ${label_of[$name]} / gRPC Jobs/Get req/s: $r ($ours / $grpc_rps; p99 $(med "$name" 3) us vs $(med grpc 3) us; target >= $target_json_vs_grpc)" \
      "$(at_least "$r" "$target_json_vs_grpc")"
  else
    echo "ratio ${label_of[$name]} / gRPC Jobs/Get req/s: n/a (not measured)"
  fi
done
if selected flask; then
  theirs=$(med flask 1) theirs_p99=$(med flask 3)
  ours=$(med json-h1 1) ours_p99=$(med json-h1 3)
  if [[ -n $ours && -n $theirs ]]; then
    r=$(ratio "$ours" "$theirs")
    verdict "ratio jobhubd JSON HTTP/1.1 / Flask req/s: $r ($ours / $theirs; target >= $target_jobhubd_vs_flask)" \
      "$(at_least "$r" "$target_jobhubd_vs_flask")"
    verdict "p99 jobhubd JSON HTTP/1.1 $ours_p99 us, Flask $theirs_p99 us (target: jobhubd lower)" \
      "$(at_least "$((theirs_p99 - 1))" "$ours_p99")"
  else
    echo "ratio jobhubd JSON HTTP/1.1 / Flask req/s: n/a (json-h1 or flask not measured)"
  fi
  if [[ -n $grpc_rps && -n $theirs ]]; then
    echo "ratio jobhubd gRPC Jobs/Get / Flask req/s: $(ratio "$grpc_rps" "$theirs") ($grpc_rps / $theirs; p99 $(med grpc 3) us vs $theirs_p99 us; for reference, no target: not the same protocol)"
  fi
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
echo "h2load command lines (*.uris: one URL per job; get.bin: a framed GetRequest):"
for name in "${measuring[@]}"; do
  [[ -f $work/$name.command ]] && echo "  $name: $(<"$work/$name.command")"
done
echo "server command lines (pinned: taskset -c $server_cpu; DIR a fresh dir, PORT a free port):"
echo "  jobhubd --threads 1 --data DIR --listen 127.0.0.1:0 --port-file FILE ${jobhubd_flags[*]}"
if selected flask; then
  echo "  redis-server --port PORT --bind 127.0.0.1 --appendonly yes --appendfsync always --save '' --dir DIR"
  echo "  JOBS_API_REDIS=redis://127.0.0.1:PORT/0 gunicorn --chdir bench/peers --bind 127.0.0.1:PORT ${gunicorn_flags[*]} jobs_api:app"
fi

if ((exit_code != 0)); then
  echo "FAILED: some system was not measured or some verification failed (see NOT MEASURED / INVALID above)"
elif ((missed && strict)); then
  exit_code=3
fi
exit "$exit_code"
