#!/usr/bin/env bash
# bench/jobs.sh: end-to-end jobs per second (submit -> pushed to a worker
# over Workers.Connect -> Complete) of jobhubd, durable, against beanstalkd
# (put / reserve / delete) and a Redis list queue (LPUSH / BRPOP), both
# durable (beanstalkd -b DIR -f 0: binlog fsync on every write; Redis
# appendfsync always) and in memory, in this one script: the same 100-byte
# bodies and client concurrency, each server pinned to one core and its
# load client (bench/jobs_bench.c for ours, bench/queue_peers.c for the
# peers) to another. Every run gets a fresh server and data dir; runs are
# interleaved across systems; figures are medians of RUNS runs. Then:
# latency at half our median rate, RSS with 1,000,000 queued jobs, time to
# serve again after a restart with them, and a drain proving they are all
# there. See bench/README.md for what each figure means.
#
# Usage: bench/jobs.sh [BUILD_DIR]
#   BUILD_DIR (argument or env; default build-bench in the source tree) is
#   built with `cmake --build`; if it has no CMakeCache.txt yet it is first
#   configured with -DJOBHUB_BENCH=ON -DCMAKE_BUILD_TYPE=Release.
# Env: RUNS (3), jobs per run, sized for about 5-15 s each here:
#   JOBS (300000, jobhubd), JOBS_BEANSTALKD (20000), JOBS_REDIS (800000),
#   JOBS_BEANSTALKD_MEMORY (300000), JOBS_REDIS_MEMORY (3000000);
#   concurrency, the same on both sides: PRODUCERS (1; jobs_bench
#   --connections, queue_peers --producers), PIPELINE (64; --inflight and
#   --capacity, queue_peers --pipeline), CONSUMERS (1; --workers,
#   queue_peers --consumers), BODY (100, bytes);
#   LATENCY_SECONDS (5, length of the run at half rate), FILL_JOBS
#   (1000000), RESTART_SIGNAL (KILL or TERM; KILL), DRAIN (1; 0 skips the
#   drain after the restart), FSYNC_JOBS (2000, jobs per strace'd run; 0
#   skips that check), RUN_TIMEOUT (600, s per client run), DATA_ROOT
#   (the work dir under /tmp; where the data dirs go: must be a real disk),
#   SERVER_CPU (0), LOAD_CPU (1), JOBHUBD_FLAGS (--log-level warn),
#   SYSTEMS (all: "jobhubd beanstalkd redis beanstalkd-memory
#   redis-memory"; a subset measures only those), KEEP_WORK (0; 1 keeps
#   the work dir with every log and client output), STRICT (0; 1: a missed
#   target fails the run), BASELINE_JOBHUBD (a jobhubd binary of another
#   build, e.g. of main before a change: measured as system
#   jobhubd-baseline with the same client, interleaved, and the ratio
#   printed; built with -DCMAKE_BUILD_TYPE=Release for a fair figure).
# Exit codes: 0 done, 1 a verification or set-up failure, 2 usage error,
#   3 a target missed with STRICT=1, 4 a system was skipped.
set -euo pipefail

bench_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$bench_dir")
build=${1:-${BUILD_DIR:-$root/build-bench}}
runs=${RUNS:-3}
declare -A jobs_of=(
  [jobhubd]=${JOBS:-300000}
  [jobhubd-baseline]=${JOBS:-300000}
  [beanstalkd]=${JOBS_BEANSTALKD:-20000}
  [redis]=${JOBS_REDIS:-800000}
  [beanstalkd-memory]=${JOBS_BEANSTALKD_MEMORY:-300000}
  [redis-memory]=${JOBS_REDIS_MEMORY:-3000000}
)
producers=${PRODUCERS:-1}
pipeline=${PIPELINE:-64}
consumers=${CONSUMERS:-1}
body=${BODY:-100}
latency_seconds=${LATENCY_SECONDS:-5}
fill_jobs=${FILL_JOBS:-1000000}
restart_signal=${RESTART_SIGNAL:-KILL}
drain=${DRAIN:-1}
fsync_jobs=${FSYNC_JOBS:-2000}
run_timeout=${RUN_TIMEOUT:-600}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
read -r -a jobhubd_flags <<<"${JOBHUBD_FLAGS:---log-level warn}"
strict=${STRICT:-0}
python=/usr/bin/python3
# The targets of the issue.
target_rate=50000        # durable jobs/s end to end
# ours / each durable peer, at the same concurrency (DEVELOPERS.md); the
# in-memory peers are printed for reference, without a target.
declare -A target_ratio_of=([beanstalkd]=20 [redis]=1.0)
target_p50_us=1000       # submit-to-assignment at half the peak rate
target_p99_us=5000
target_rss_kib=1048576   # 1 GiB with FILL_JOBS queued
target_restart_s=3       # exec to SERVING with FILL_JOBS queued
all_systems=(jobhubd beanstalkd redis beanstalkd-memory redis-memory)
baseline_bin=${BASELINE_JOBHUBD:-}
if [[ -n $baseline_bin ]]; then
  [[ -x $baseline_bin ]] || { echo "jobs.sh: BASELINE_JOBHUBD=$baseline_bin is not an executable" >&2; exit 2; }
  all_systems+=(jobhubd-baseline)
fi
read -r -a systems <<<"${SYSTEMS:-${all_systems[*]}}"
keep_work=${KEEP_WORK:-0}
declare -A label_of=(
  [jobhubd]="jobhubd (durable)"
  [jobhubd-baseline]="jobhubd baseline (durable)"
  [beanstalkd]="beanstalkd -f 0"
  [redis]="redis appendfsync always"
  [beanstalkd-memory]="beanstalkd in memory"
  [redis-memory]="redis in memory"
)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "jobs.sh: $*" >&2; exit 1; }
for value in "$runs" "${jobs_of[@]}" "$producers" "$pipeline" "$consumers" \
    "$body" "$latency_seconds" "$fill_jobs" "$drain" "$fsync_jobs" \
    "$run_timeout" "$server_cpu" "$load_cpu" "$strict"; do
  [[ $value =~ ^[0-9]+$ ]] || usage
done
for name in "${systems[@]}"; do
  [[ " ${all_systems[*]} " == *" $name "* ]] || usage
  ((jobs_of[$name] >= 1)) || usage
done
((${#systems[@]} >= 1)) || usage
((runs >= 1 && producers >= 1 && pipeline >= 1 && consumers >= 1)) || usage
((body >= 16 && latency_seconds >= 1 && fill_jobs >= 1 && run_timeout >= 1)) || usage
[[ $restart_signal == KILL || $restart_signal == TERM ]] || usage
[[ $# -le 1 && ${1:-} != -* ]] || usage

for tool in taskset cmake timeout awk sort; do
  command -v "$tool" >/dev/null || die "$tool missing: run ci/setup --bench"
done
"$python" -c 'import grpc' 2>/dev/null ||
  die "$python cannot import grpc: run ci/setup --bench (python3-grpcio)"
taskset -c "$server_cpu,$load_cpu" true 2>/dev/null ||
  die "cannot pin to cores $server_cpu and $load_cpu (nproc: $(nproc))"
[[ $server_cpu != "$load_cpu" ]] || die "SERVER_CPU and LOAD_CPU are equal"
((BASH_VERSINFO[0] >= 5)) || die "bash 5 is needed (\$EPOCHREALTIME)"

work=$(mktemp -d /tmp/jobhub-bench-jobs-XXXXXX)
data_root=$work
if [[ -n ${DATA_ROOT:-} ]]; then
  data_root=$(mktemp -d "$DATA_ROOT/jobhub-bench-data-XXXXXX") ||
    die "cannot make a data dir under DATA_ROOT=$DATA_ROOT"
fi
exit_code=0
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh" # alive, stop, configure_bench_build, median

# The cleanup of lib.sh, and KEEP_WORK and DATA_ROOT.
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  local pid
  trap - EXIT INT TERM
  for pid in "${started_pids[@]}"; do stop "$pid"; done
  if [[ $keep_work == 1 ]]; then
    echo "kept the work dir $work (KEEP_WORK=1)"
  else
    rm -rf "$work"
  fi
  [[ $data_root == "$work" ]] || rm -rf "$data_root"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- build
declare -A skipped=() # system name -> why it is not measured
configure_bench_build

# build TARGET BINARY NAMES...: builds one target; marks each of NAMES
# skipped on failure.
build() {
  local target=$1 binary=$2 why='' name
  shift 2
  if ! timeout 1800 cmake --build "$build" --target "$target" -j "$(nproc)" \
      >"$work/build-$target.log" 2>&1; then
    tail -15 "$work/build-$target.log"
    why="building target $target in $build failed"
  elif [[ ! -x $binary ]]; then
    why="$binary missing after the build"
  fi
  if [[ -n $why ]]; then
    for name in "$@"; do skipped[$name]=${skipped[$name]:-$why}; done
  fi
}
jobhubd_bin=$build/server/jobhubd
jobs_bench_bin=$build/bench/jobs_bench
queue_peers_bin=$build/bench/queue_peers
# selected NAME: system NAME is in SYSTEMS.
selected() { [[ " ${systems[*]} " == *" $1 "* ]]; }
if selected jobhubd; then
  build jobhubd "$jobhubd_bin" jobhubd
  build jobs_bench "$jobs_bench_bin" jobhubd
fi
peers=(beanstalkd redis beanstalkd-memory redis-memory)
for name in "${peers[@]}"; do
  if selected "$name"; then
    build queue_peers "$queue_peers_bin" "${peers[@]}"
    break
  fi
done
for peer in beanstalkd redis-server; do
  if ! command -v "$peer" >/dev/null; then
    for name in "${systems[@]}"; do
      [[ $name == "${peer%-server}"* ]] &&
        skipped[$name]=${skipped[$name]:-"$peer is not installed: run ci/setup --bench"}
    done
  fi
done
for name in "${!skipped[@]}"; do
  selected "$name" || unset "skipped[$name]"
done
for name in "${systems[@]}"; do
  [[ -n ${skipped[$name]:-} ]] && echo "SKIPPING $name: ${skipped[$name]}"
done

# ---------------------------------------------------------------- servers
declare -A pid_of=() port_of=()

# start_system NAME DATA: a fresh server of system NAME, its data (if
# durable) in the empty dir DATA.
start_system() {
  local name=$1 data=$2 port
  if [[ $name == jobhubd* ]]; then
    local binary=$jobhubd_bin
    [[ $name == jobhubd-baseline ]] && binary=$baseline_bin
    start "$name" "$server_cpu" file "$binary" --threads 1 --data "$data" \
      --listen 127.0.0.1:0 --port-file "$work/$name.port" "${jobhubd_flags[@]}"
    return
  fi
  for _ in 1 2 3; do # free_port can race with another program
    port=$(free_port)
    case $name in
    beanstalkd)
      start "$name" "$server_cpu" "$port" beanstalkd -l 127.0.0.1 -p "$port" -b "$data" -f 0 ;;
    beanstalkd-memory)
      start "$name" "$server_cpu" "$port" beanstalkd -l 127.0.0.1 -p "$port" ;;
    redis)
      start "$name" "$server_cpu" "$port" redis-server --port "$port" --bind 127.0.0.1 \
        --appendonly yes --appendfsync always --save '' --dir "$data" ;;
    redis-memory)
      start "$name" "$server_cpu" "$port" redis-server --port "$port" --bind 127.0.0.1 \
        --appendonly no --save '' --dir "$data" ;;
    esac && return 0
  done
  return 1
}

# client_command NAME JOBS: sets `client` to the load client command for
# system NAME doing JOBS jobs end to end, concurrency matched: producers =
# submitter connections, pipeline = Submits in flight per connection and
# the capacity of each Connect worker, consumers = workers.
client_command() {
  local name=$1 jobs=$2 kind=${1%-memory}
  if [[ $name == jobhubd* ]]; then
    client=("$jobs_bench_bin" --addr "127.0.0.1:${port_of[$name]}" --mode e2e
      --jobs "$jobs" --connections "$producers" --inflight "$pipeline"
      --workers "$consumers" --capacity "$pipeline" --body "$body")
  else
    client=("$queue_peers_bin" --kind "$kind" --addr "127.0.0.1:${port_of[$name]}"
      --jobs "$jobs" --producers "$producers" --consumers "$consumers"
      --pipeline "$pipeline" --body "$body" --timeout "$run_timeout")
  fi
}

# run_client OUT JOBS COMMAND...: runs a load client pinned to LOAD_CPU
# and checks its final line. Appends to OUT.results one line:
# "jobs_per_s seconds submit_p50 submit_p99 assign_p50 assign_p99 problem"
# ("-" for figures a client does not give; problem "-" when clean). The
# client must exit 0 having done exactly JOBS jobs with no errors.
run_client() {
  local out=$1 jobs=$2 rc=0
  shift 2
  echo "taskset -c $load_cpu ${*##*/}" >"$out.command"
  timeout "$run_timeout" taskset -c "$load_cpu" "$@" >"$out.out" 2>"$out.err" || rc=$?
  awk -v rc="$rc" -v jobs="$jobs" '
    /^(jobs_bench|queue_peers) / {
      delete f
      for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      line = 1
    }
    END {
      problem = "-"
      if (rc == 124) problem = "timed-out"
      else if (rc != 0) problem = "client-exit-" rc
      else if (!line) problem = "no-final-line"
      else if (f["jobs"] != jobs) problem = "jobs-" f["jobs"] "-not-" jobs
      else if (("errors" in f) && f["errors"] != 0) problem = "errors-" f["errors"]
      else if (f["jobs_per_s"] + 0 <= 0) problem = "no-rate"
      split("jobs_per_s seconds submit_p50_us submit_p99_us assign_p50_us assign_p99_us", k, " ")
      for (i = 1; i <= 6; i++) printf "%s ", (k[i] in f) ? f[k[i]] : "-"
      print problem
    }' "$out.out" >>"$out.results"
  if [[ $(awk 'END { print $NF }' "$out.results") != - ]]; then
    echo "  $(basename "$out"): client failed: $(tail -q -n 3 "$out.err" "$out.out" | tr -d '\0' | tr '\n' ' ')"
  fi
}

# one_run NAME ROUND: one end-to-end run of system NAME against a fresh
# server and data dir; results in $work/NAME.e2e.results.
one_run() {
  local name=$1 round=$2 data=$data_root/$1-$2 out=$work/$1.e2e
  rm -rf "$data" && mkdir -p "$data"
  if ! start_system "$name" "$data"; then
    echo "0 - - - - - - server-did-not-start" >>"$out.results"
    rm -rf "$data"
    return
  fi
  client_command "$name" "${jobs_of[$name]}"
  run_client "$out" "${jobs_of[$name]}" "${client[@]}"
  if ! alive "${pid_of[$name]}"; then # the server must survive the run
    sed -i '$ s/[^ ]*$/server-died/' "$out.results"
    tail -5 "$work/$name.log"
  fi
  stop "${pid_of[$name]}"
  rm -rf "$data"
  # Write back this run's dirty pages (a Redis AOF is 150 MB) now, not
  # during the next system's run.
  timeout 120 sync || true
}

# med NAME SUFFIX FIELD: a median of clean runs, or empty if none.
med() {
  local file=$work/$1.$2.results
  [[ -s $file ]] || return 0
  awk -v n="$3" '$7 == "-" { print $n }' "$file" | median | awk '$1 != 0'
}

# problems NAME SUFFIX: the problems of a .results file, comma-separated.
problems() {
  [[ -s $work/$1.$2.results ]] || return 0
  awk '$7 != "-" { print $7 }' "$work/$1.$2.results" | sort -u | paste -sd, -
}

rss_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

# ---------------------------------------------------------------- run
echo "== bench/jobs.sh: $(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   $(beanstalkd -v 2>/dev/null || echo 'beanstalkd ?'), $(redis-server --version 2>/dev/null | cut -d' ' -f1-3 || echo 'redis ?'), build $build ($build_type)"
echo "   servers on core $server_cpu, load clients on core $load_cpu; medians of $runs interleaved runs, a fresh server each run"
echo "   concurrency: $producers producer connection(s) x $pipeline in flight, $consumers consumer(s) x $pipeline; $body-byte bodies"
fs_type=$(stat -f -c %T "$data_root")
echo "   data dirs under $data_root ($fs_type)"
if [[ $fs_type == tmpfs || $fs_type == ramfs ]]; then
  echo "WARNING: $data_root is on $fs_type, where fsync costs nothing: the durable figures mean nothing; set DATA_ROOT to a dir on a disk"
fi
measuring=()
for name in "${systems[@]}"; do
  [[ -z ${skipped[$name]:-} ]] && measuring+=("$name")
done

# ----------------------------------------------- durability: count syncs
# Each system once more under `strace -f -c` for FSYNC_JOBS jobs: the
# durable ones must call fsync/fdatasync, the in-memory ones need not.
# Not timed (strace slows every system call).
declare -A syncs_per_job=()
fsync_check() {
  local name=$1 data=$data_root/$1-strace tracer out=$work/$1.strace i
  rm -rf "$data" && mkdir -p "$data"
  start_system "$name" "$data" || { rm -rf "$data"; return 1; }
  strace -f -c -e trace=fsync,fdatasync,sync_file_range,syncfs,msync \
    -o "$out.summary" -p "${pid_of[$name]}" 2>"$out.err" &
  tracer=$!
  started_pids+=("$tracer")
  for ((i = 0; i < 100; i++)); do # attached to every thread?
    grep -q attached "$out.err" 2>/dev/null && break
    alive "$tracer" || break
    sleep 0.1
  done
  sleep 0.2
  client_command "$name" "$fsync_jobs"
  run_client "$out" "$fsync_jobs" "${client[@]}"
  stop "$tracer" INT # -c prints its summary as it detaches
  stop "${pid_of[$name]}"
  rm -rf "$data"
  [[ $(awk 'END { print $NF }' "$out.results") == - ]] || return 1
  [[ -f $out.summary ]] || return 1 # empty when there was no sync at all
  # strace -c: "% time seconds usecs/call calls [errors] syscall".
  syncs_per_job[$name]=$(awk -v jobs="$fsync_jobs" '
    $NF ~ /^(fsync|fdatasync|sync_file_range|syncfs|msync)$/ && $4 ~ /^[0-9]+$/ {
      calls += $4; detail = detail sprintf("%s%s %d", detail ? ", " : "", $NF, $4)
    }
    END { printf "%.3f %s\n", calls / jobs, detail ? detail : "none" }' "$out.summary")
}
if ((fsync_jobs == 0)); then
  echo "-- durability check: skipped (FSYNC_JOBS=0)"
elif ! command -v strace >/dev/null; then
  echo "-- durability check: skipped, strace is not installed"
else
  echo "-- durability: sync calls per job under strace -f -c, $fsync_jobs jobs per system (not timed)"
  for name in "${measuring[@]}"; do
    if ! fsync_check "$name"; then
      echo "  ${label_of[$name]}: strace run failed: $(tail -n 2 "$work/$name.strace.err" | tr -d '\0' | tr '\n' ' ')"
      exit_code=1
      continue
    fi
    read -r per detail <<<"${syncs_per_job[$name]}"
    note=
    if [[ $name != *-memory ]] && awk -v p="$per" 'BEGIN { exit !(p == 0) }'; then
      note="   INVALID: a durable system that never syncs"
      exit_code=1
    fi
    printf '  %-26s %7.3f syncs per job (%s)%s\n' "${label_of[$name]}" \
      "$per" "$detail" "$note"
  done
fi

# ----------------------------------------------- throughput
echo "-- throughput: end to end, a fresh server and data dir per run; jobs per run: $(
  for name in "${measuring[@]}"; do printf '%s %s  ' "$name" "${jobs_of[$name]}"; done)"
count=${#measuring[@]}
for ((round = 0; round < runs; round++)); do
  for ((index = 0; index < count; index++)); do
    name=${measuring[(index + round) % count]}
    one_run "$name" "$round"
  done
done
printf '  %-26s %9s %8s %10s %10s   %s\n' system jobs/s seconds 'assign p50' \
  'assign p99' 'jobs/s of each run'
for name in "${measuring[@]}"; do
  file=$work/$name.e2e.results
  bad=$(problems "$name" e2e)
  printf '  %-26s %9s %8s %10s %10s   %s\n' "${label_of[$name]}" \
    "$(med "$name" e2e 1)" "$(med "$name" e2e 2)" "$(med "$name" e2e 5)" \
    "$(med "$name" e2e 6)" \
    "$(field "$file" 1 | paste -sd' ' -)${bad:+   INVALID: $bad}"
  [[ -z $bad ]] || exit_code=1
done

# ----------------------------------------------- latency at half the rate
peak=$(med jobhubd e2e 1)
if [[ -n $peak ]]; then
  half=$((peak / 2))
  latency_jobs=$((half * latency_seconds))
  echo "-- latency: jobs_bench --mode e2e --rate $half (half of $peak jobs/s), $latency_jobs jobs, fresh jobhubd"
  data=$data_root/latency
  mkdir -p "$data"
  if start_system jobhubd "$data"; then
    client_command jobhubd "$latency_jobs"
    run_client "$work/jobhubd.latency" "$latency_jobs" "${client[@]}" --rate "$half"
    stop "${pid_of[jobhubd]}"
  else
    echo "0 - - - - - - server-did-not-start" >>"$work/jobhubd.latency.results"
  fi
  rm -rf "$data"
  read -r l_rate _ l_sp50 l_sp99 l_ap50 l_ap99 l_problem <"$work/jobhubd.latency.results"
  echo "  $l_rate jobs/s; submit p50 $l_sp50 us, p99 $l_sp99 us; submit-to-assignment p50 $l_ap50 us, p99 $l_ap99 us"
  [[ $l_problem == - ]] || { echo "  INVALID: $l_problem"; exit_code=1; }
elif selected jobhubd; then
  echo "-- latency: skipped (no clean jobhubd run to take the rate from)"
fi

# ----------------------------------------------- memory, restart, drain
fill_rss='' fill_hwm='' restart_s='' drain_line=''
if ! selected jobhubd; then
  echo "-- latency, memory, restart: skipped (jobhubd is not in SYSTEMS)"
elif [[ -z ${skipped[jobhubd]:-} ]]; then
  echo "-- memory: jobs_bench --mode fill --jobs $fill_jobs into a fresh jobhubd, then VmRSS"
  data=$data_root/fill
  mkdir -p "$data"
  if start_system jobhubd "$data"; then
    run_client "$work/jobhubd.fill" "$fill_jobs" "$jobs_bench_bin" \
      --addr "127.0.0.1:${port_of[jobhubd]}" --mode fill --jobs "$fill_jobs" \
      --connections "$producers" --inflight "$pipeline" --body "$body"
    read -r f_rate f_seconds _ <"$work/jobhubd.fill.results"
    fill_problem=$(problems jobhubd fill)
    if [[ -z $fill_problem ]] && alive "${pid_of[jobhubd]}"; then
      fill_rss=$(rss_kib "${pid_of[jobhubd]}" VmRSS)
      fill_hwm=$(rss_kib "${pid_of[jobhubd]}" VmHWM)
      echo "  filled in $f_seconds s ($f_rate jobs/s); VmRSS $fill_rss KiB, peak (VmHWM) $fill_hwm KiB; data dir $(du -sh "$data" | cut -f1)"
    else
      echo "  INVALID: the fill failed: ${fill_problem:-jobhubd died}"
      exit_code=1
    fi
    # ------------------------------------------- restart
    if [[ -n $fill_rss ]]; then
      echo "-- restart: SIG$restart_signal to jobhubd with $fill_jobs queued, then a new jobhubd on the same data dir"
      stop "${pid_of[jobhubd]}" "$restart_signal"
      rm -f "$work/jobhubd.port"
      timeout 120 taskset -c "$load_cpu" "$python" "$bench_dir/wait_serving.py" \
        "$work/jobhubd.port" 60 >"$work/wait.out" 2>&1 &
      waiter=$!
      started_pids+=("$waiter")
      for ((i = 0; i < 300; i++)); do # grpcio takes a moment to import
        grep -q '^armed' "$work/wait.out" && break
        alive "$waiter" || break
        sleep 0.05
      done
      exec_time=$EPOCHREALTIME
      taskset -c "$server_cpu" "$jobhubd_bin" --threads 1 --data "$data" \
        --listen 127.0.0.1:0 --port-file "$work/jobhubd.port" \
        "${jobhubd_flags[@]}" >"$work/jobhubd-restart.log" 2>&1 &
      pid_of[jobhubd]=$!
      started_pids+=("${pid_of[jobhubd]}")
      wait "$waiter" 2>/dev/null || true
      forget "$waiter"
      serving=$(sed -n 's/^serving_ns=\([0-9]*\) port=\([0-9]*\)$/\1 \2/p' "$work/wait.out")
      if [[ -n $serving ]]; then
        read -r serving_ns "port_of[jobhubd]" <<<"$serving"
        restart_s=$(awk -v a="$serving_ns" -v b="${exec_time/[.,]/}" \
          'BEGIN { printf "%.3f", (a / 1000 - b) / 1e6 }')
        echo "  exec to port file and Health/Check SERVING: $restart_s s; VmRSS after recovery $(rss_kib "${pid_of[jobhubd]}" VmRSS) KiB"
      else
        echo "  INVALID: the new jobhubd did not serve: $(cat "$work/wait.out")"
        tail -5 "$work/jobhubd-restart.log"
        exit_code=1
      fi
      # ----------------------------------------- drain
      if [[ -n $restart_s && $drain == 1 ]]; then
        echo "-- drain: jobs_bench --mode drain --jobs $fill_jobs after the restart"
        run_client "$work/jobhubd.drain" "$fill_jobs" "$jobs_bench_bin" \
          --addr "127.0.0.1:${port_of[jobhubd]}" --mode drain --jobs "$fill_jobs" \
          --workers "$consumers" --capacity "$pipeline" --body "$body"
        read -r d_rate d_seconds _ <"$work/jobhubd.drain.results"
        drain_problem=$(problems jobhubd drain)
        if [[ -z $drain_problem ]]; then
          drain_line="all $fill_jobs jobs completed after the restart in $d_seconds s ($d_rate jobs/s)"
          echo "  $drain_line"
        else
          echo "  INVALID: the drain failed: $drain_problem"
          exit_code=1
        fi
      elif [[ $drain != 1 ]]; then
        echo "-- drain: skipped (DRAIN=0)"
      fi
    fi
    stop "${pid_of[jobhubd]}"
  else
    echo "  INVALID: jobhubd did not start"
    exit_code=1
  fi
  rm -rf "$data"
else
  echo "-- latency, memory, restart: skipped (jobhubd: ${skipped[jobhubd]})"
fi

# ---------------------------------------------------------------- verdicts
echo "== results (medians of $runs runs)"
missed=0
ours=$(med jobhubd e2e 1)
if [[ -n $ours ]]; then
  verdict "jobhubd durable jobs/s end to end: $ours (target >= $target_rate)" \
    "$(at_least "$ours" "$target_rate")"
else
  echo "jobhubd durable jobs/s end to end: n/a (no clean run)"
fi
for name in beanstalkd redis beanstalkd-memory redis-memory jobhubd-baseline; do
  selected "$name" || continue
  theirs=$(med "$name" e2e 1)
  target=${target_ratio_of[$name]:-}
  if [[ -n $ours && -n $theirs && -n $target ]]; then
    r=$(ratio "$ours" "$theirs")
    verdict "ratio jobhubd/${label_of[$name]} jobs/s: $r ($ours / $theirs; target >= $target)" \
      "$(at_least "$r" "$target")"
  elif [[ -n $ours && -n $theirs ]]; then
    echo "ratio jobhubd/${label_of[$name]} jobs/s: $(ratio "$ours" "$theirs") ($ours / $theirs; no target)"
  else
    echo "ratio jobhubd/${label_of[$name]} jobs/s: n/a (a system was skipped or failed)"
  fi
done
if [[ -n ${l_ap50:-} && ${l_problem:-} == - ]]; then
  verdict "submit-to-assignment p50 at ${half:-?} jobs/s: $l_ap50 us (target <= $target_p50_us us)" \
    "$(at_least "$target_p50_us" "$l_ap50")"
  verdict "submit-to-assignment p99 at ${half:-?} jobs/s: $l_ap99 us (target <= $target_p99_us us)" \
    "$(at_least "$target_p99_us" "$l_ap99")"
else
  echo "submit-to-assignment latency at half the rate: n/a"
fi
if [[ -n $fill_rss ]]; then
  verdict "VmRSS with $fill_jobs queued $body-byte jobs: $fill_rss KiB (peak $fill_hwm KiB; target <= $target_rss_kib KiB)" \
    "$(at_least "$target_rss_kib" "$fill_rss")"
else
  echo "VmRSS with $fill_jobs queued jobs: n/a"
fi
if [[ -n $restart_s ]]; then
  verdict "restart after SIG$restart_signal with $fill_jobs queued, exec to SERVING: $restart_s s (target <= $target_restart_s s)" \
    "$(at_least "$target_restart_s" "$restart_s")"
else
  echo "restart with $fill_jobs queued: n/a"
fi
[[ -n $drain_line ]] && echo "drain after the restart: $drain_line"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
echo "client command lines (ADDR a fresh server's 127.0.0.1:PORT):"
for file in "$work"/*.e2e.command "$work"/*.latency.command \
    "$work"/*.fill.command "$work"/*.drain.command; do
  [[ -f $file ]] || continue
  label=${file##*/}
  echo "  ${label%.command}: $(sed 's/--addr [^ ]*/--addr ADDR/' "$file")"
done
echo "server command lines (pinned: taskset -c $server_cpu; DIR a fresh dir, PORT a free port):"
echo "  jobhubd: jobhubd --threads 1 --data DIR --listen 127.0.0.1:0 --port-file FILE ${jobhubd_flags[*]}"
echo "  beanstalkd: beanstalkd -l 127.0.0.1 -p PORT -b DIR -f 0; in memory: without -b and -f"
echo "  redis: redis-server --port PORT --bind 127.0.0.1 --appendonly yes --appendfsync always --save '' --dir DIR; in memory: --appendonly no"
for name in "${systems[@]}"; do
  [[ -n ${skipped[$name]:-} ]] && echo "SKIPPED $name: ${skipped[$name]}"
done

if ((exit_code != 0)); then
  echo "FAILED: some verification failed (see INVALID / FAILED above)"
elif ((${#skipped[@]})); then
  exit_code=4
elif ((missed && strict)); then
  exit_code=3
fi
exit "$exit_code"
