#!/usr/bin/env bash
# bench/worker.sh: jobs/s through one real jobhub-worker (echo module,
# capacity CAPACITY) against the hub alone with the bench client's own
# Connect worker, in this one script: jobhubd (durable, --threads 1) pinned
# to SERVER_CPU, the load (bench/jobs_bench, and jobhub-worker in the
# first case) pinned to LOAD_CPU. In both cases a job counts once a filter
# Watch reports it DONE (jobs_bench --watch), so both measure the same
# path. Runs alternate; figures are medians of RUNS runs. Target: the
# worker at least 80% of the bench client.
#
# Usage: bench/worker.sh [BUILD_DIR]
#   BUILD_DIR (argument or env; default build-bench) as for bench/unary.sh.
# Env: RUNS (3), JOBS (200000 per run), CONNECTIONS (4), INFLIGHT (64),
#   CAPACITY (64), SERVER_CPU (0), LOAD_CPU (1), STRICT (0; 1: a missed
#   target exits 3).
# Exit codes: 0 done, 1 a run failed or set-up failed, 2 usage error,
#   3 the target missed with STRICT=1.
set -euo pipefail

bench_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$bench_dir")
build=${1:-${BUILD_DIR:-$root/build-bench}}
runs=${RUNS:-3}
jobs=${JOBS:-200000}
connections=${CONNECTIONS:-4}
inflight=${INFLIGHT:-64}
capacity=${CAPACITY:-64}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
strict=${STRICT:-0}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "worker.sh: $*" >&2; exit 1; }
for value in "$runs" "$jobs" "$connections" "$inflight" "$capacity" \
    "$server_cpu" "$load_cpu"; do
  [[ $value =~ ^[0-9]+$ ]] || usage
done
((runs >= 1 && jobs >= 1)) || usage
[[ $# -le 1 && ${1:-} != -* ]] || usage
taskset -c "$server_cpu,$load_cpu" true 2>/dev/null ||
  die "cannot pin to cores $server_cpu and $load_cpu (nproc: $(nproc))"

work=$(mktemp -d /tmp/jobhub-bench-worker-XXXXXX)
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"
bench_cleanup_on_exit
configure_bench_build
timeout 1800 cmake --build "$build" -j "$(nproc)" --target jobhubd \
  jobhub-worker jobs_bench >"$work/build.log" 2>&1 ||
  { tail -20 "$work/build.log"; die "building in $build failed"; }

# one_run KIND N: one run, KIND "client" (jobs_bench's own worker) or
# "worker" (jobhub-worker); appends its jobs/s to $work/KIND.results.
one_run() {
  local kind=$1 n=$2 hub worker= port out
  rm -rf "$work/data" "$work/port"
  taskset -c "$server_cpu" "$build/server/jobhubd" --threads 1 \
    --data "$work/data" --listen 127.0.0.1:0 --port-file "$work/port" \
    --log-level warn >"$work/jobhubd-$kind-$n.log" 2>&1 &
  hub=$!
  started_pids+=("$hub")
  for ((i = 0; i < 100; i++)); do
    [[ -s $work/port ]] && break
    alive "$hub" || die "jobhubd did not start: $(tail -5 "$work/jobhubd-$kind-$n.log")"
    sleep 0.1
  done
  port=$(<"$work/port")
  local -a load=(--addr "127.0.0.1:$port" --jobs "$jobs" --connections
    "$connections" --inflight "$inflight" --timeout 600)
  if [[ $kind == worker ]]; then
    taskset -c "$load_cpu" "$build/worker/jobhub-worker" \
      --addr "127.0.0.1:$port" --module echo --capacity "$capacity" \
      --log-level warn >"$work/worker-$n.log" 2>&1 &
    worker=$!
    started_pids+=("$worker")
    load+=(--mode external)
  else
    load+=(--mode e2e --watch --workers 1 --capacity "$capacity")
  fi
  out=$(taskset -c "$load_cpu" "$build/bench/jobs_bench" "${load[@]}") ||
    die "$kind run $n failed: $out"
  echo "  $kind run $n: $out"
  sed -n 's/.*jobs_per_s=\([0-9]*\).*/\1/p' <<<"$out" >>"$work/$kind.results"
  [[ -n $worker ]] && stop "$worker"
  stop "$hub"
}

echo "== jobs/s: hub pinned to core $server_cpu, load to core $load_cpu;" \
     "$jobs jobs a run, $connections x $inflight submits in flight," \
     "worker capacity $capacity"
for ((n = 1; n <= runs; n++)); do
  if ((n % 2)); then one_run client "$n"; one_run worker "$n"
  else one_run worker "$n"; one_run client "$n"; fi
done
client=$(median <"$work/client.results")
worker=$(median <"$work/worker.results")
ratio=$(awk -v w="$worker" -v c="$client" 'BEGIN { printf "%.2f", c ? w / c : 0 }')
echo "== medians of $runs runs"
printf '  bench client as worker  %8s jobs/s\n' "$client"
printf '  jobhub-worker (echo)    %8s jobs/s\n' "$worker"
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8 ? "MET" : "MISSED") }')
echo "  ratio $ratio (target >= 0.80): $verdict"
[[ $verdict == MET || $strict != 1 ]] || exit 3
