#!/usr/bin/env bash
# bench/unary.sh: unary gRPC requests/s, latency and memory of jobhubd
# against the official gRPC C++ server (bench/grpc_health_server.cc, its
# default health service), with nghttpd serving a 5-byte static file as
# this machine's HTTP/2 ceiling. All three run in this one script under the
# same h2load settings: each server pinned to one core, h2load to another.
# Runs are interleaved across servers; the figures are medians of RUNS runs.
# See bench/README.md for what each figure means.
#
# Usage: bench/unary.sh [BUILD_DIR]
#   BUILD_DIR (argument or env; default build-bench in the source tree) is
#   built with `cmake --build`; if it has no CMakeCache.txt yet it is first
#   configured with -DJOBHUB_BENCH=ON -DCMAKE_BUILD_TYPE=Release.
# Env: RUNS (3), DURATION (5, seconds per throughput run),
#   LATENCY_REQUESTS (20000), CONNECTIONS (1000, idle connections for the
#   memory figure), VERIFY_CALLS (1000, grpcio calls per gRPC server),
#   SERVER_CPU (0), LOAD_CPU (1), JOBHUBD_FLAGS (--log-level warn
#   --busy-poll-us 200: the poll on, as the server has its core alone),
#   STRICT (0; 1: a missed target fails the run).
# Exit codes: 0 done, 1 a verification or set-up failure, 2 usage error,
#   3 a target missed with STRICT=1, 4 a server was skipped.
set -euo pipefail

bench_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$bench_dir")
build=${1:-${BUILD_DIR:-$root/build-bench}}
runs=${RUNS:-3}
duration=${DURATION:-5}
latency_requests=${LATENCY_REQUESTS:-20000}
connections=${CONNECTIONS:-1000}
verify_calls=${VERIFY_CALLS:-1000}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
read -r -a jobhubd_flags <<<"${JOBHUBD_FLAGS:---log-level warn --busy-poll-us 200}"
strict=${STRICT:-0}
python=/usr/bin/python3
path=/grpc.health.v1.Health/Check
clients=8 streams=32 # the throughput settings: -c 8 -m 32

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "unary.sh: $*" >&2; exit 1; }
for value in "$runs" "$duration" "$latency_requests" "$connections" \
    "$verify_calls" "$server_cpu" "$load_cpu"; do
  [[ $value =~ ^[0-9]+$ ]] || usage
done
((runs >= 1 && duration >= 1 && latency_requests >= 1)) || usage
[[ $# -le 1 && ${1:-} != -* ]] || usage

for tool in h2load nghttp taskset cmake timeout awk sort; do
  command -v "$tool" >/dev/null || die "$tool missing: run ci/setup --bench"
done
"$python" -c 'import grpc' 2>/dev/null ||
  die "$python cannot import grpc: run ci/setup --bench (python3-grpcio)"
taskset -c "$server_cpu,$load_cpu" true 2>/dev/null ||
  die "cannot pin to cores $server_cpu and $load_cpu (nproc: $(nproc))"
[[ $server_cpu != "$load_cpu" ]] || die "SERVER_CPU and LOAD_CPU are equal"
both_cpus="$server_cpu,$load_cpu"
# Every server must hold CONNECTIONS descriptors; children inherit this.
ulimit -n $((connections + 1024)) 2>/dev/null ||
  die "cannot raise ulimit -n to $((connections + 1024)) (hard: $(ulimit -Hn))"

work=$(mktemp -d /tmp/jobhub-bench-XXXXXX)
exit_code=0
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh" # start, stop, h2load_summary, verdict, ...
bench_cleanup_on_exit

# ---------------------------------------------------------------- build
declare -A skipped=() # server name -> why it is not measured
configure_bench_build

# build TARGET BINARY NAME: builds one target; marks NAME skipped on failure.
build() {
  local target=$1 binary=$2 name=$3
  if ! timeout 1800 cmake --build "$build" --target "$target" -j "$(nproc)" \
      >"$work/build-$target.log" 2>&1; then
    tail -15 "$work/build-$target.log"
    skipped[$name]="building target $target in $build failed"
  elif [[ ! -x $binary ]]; then
    skipped[$name]="$binary missing after the build"
  fi
}
jobhubd_bin=$build/server/jobhubd
peer_bin=$build/bench/grpc_health_server
build jobhubd "$jobhubd_bin" jobhubd
build grpc_health_server "$peer_bin" grpc-c++
for name in "${!skipped[@]}"; do
  echo "SKIPPING $name: ${skipped[$name]}"
done

printf '\0\0\0\0\0' >"$work/request.bin" # empty HealthCheckRequest, framed
mkdir "$work/www" && printf 'hello' >"$work/www/5b"

# ---------------------------------------------------------------- servers
declare -A pid_of=() port_of=() url_of=() bytes_of=()

# start_all CPUS: starts every server that is not skipped on CPUS:
# jobhubd --threads 1, the gRPC C++ peer and nghttpd.
start_all() {
  local cpus=$1 attempt port
  if [[ -z ${skipped[jobhubd]:-} ]]; then
    start jobhubd "$cpus" file "$jobhubd_bin" --listen 127.0.0.1:0 \
      --data "$work/jobhubd.data" --threads 1 --port-file "$work/jobhubd.port" "${jobhubd_flags[@]}" ||
      skipped[jobhubd]="jobhubd did not start (see above)"
  fi
  if [[ -z ${skipped[grpc-c++]:-} ]]; then
    start grpc-c++ "$cpus" file "$peer_bin" 0 "$work/grpc-c++.port" ||
      skipped[grpc-c++]="grpc_health_server did not start (see above)"
  fi
  for attempt in 1 2 3; do # free_port can race with another program
    port=$(free_port)
    start nghttpd "$cpus" "$port" nghttpd --no-tls -d "$work/www" "$port" &&
      break
    [[ $attempt == 3 ]] && die "nghttpd did not start"
  done
}

# ---------------------------------------------------------------- h2load
# run_h2load NAME CPUS THREADS OUT ARGS...: one h2load run against NAME
# (gRPC Check or GET of the 5-byte file), per-request log in OUT.log,
# output in OUT.out. Appends to OUT.results one line: "req/s p50 p99
# data_bytes_per_request header_bytes_per_request problem", problem "-"
# when the run was clean. Every request must be a 200 carrying exactly the
# expected body (7 bytes: the framed SERVING answer; 5 for nghttpd): an
# error answer (trailers-only) has no body.
run_h2load() {
  local name=$1 cpus=$2 threads=$3 out=$4 inflight=1 previous=
  shift 4
  local -a args=("$@")
  for arg in "${args[@]}"; do # inflight: -c times -m, an upper bound
    case $previous in -c | -m) inflight=$((inflight * arg)) ;; esac
    previous=$arg
  done
  local -a request=()
  if [[ $name != nghttpd* ]]; then
    request=(-d "$work/request.bin" -H 'content-type: application/grpc'
      -H 'te: trailers')
  fi
  rm -f "$out.log" # h2load appends to its log file
  local rc=0
  timeout $((duration + 60)) taskset -c "$cpus" h2load -t "$threads" \
    "${request[@]}" "${args[@]}" --log-file="$out.log" "${url_of[$name]}" \
    >"$out.out" 2>&1 || rc=$?
  local shown="taskset -c $cpus h2load -t $threads ${args[*]}"
  if ((${#request[@]})); then
    shown+=" -d request.bin -H 'content-type: application/grpc' -H 'te: trailers'"
  fi
  echo "$shown --log-file=LOG ${url_of[$name]}" >"$out.command"
  h2load_summary "$rc" "$out.out" "$out.log" "${bytes_of[$name]}" \
    "${bytes_of[$name]}" "$inflight" >>"$out.results"
  rm -f "$out.log"
}

# report LABEL FILE: one line of medians from a .results file; marks the
# run invalid (exit code 1) if any run had a problem.
report() {
  local label=$1 file=$2 problems
  problems=$(awk '$6 != "-" { print $6 }' "$file" | sort -u | paste -sd, -)
  printf '  %-26s %9.0f %8d %8d %8.2f %8.2f   %s\n' "$label" \
    "$(field "$file" 1 | median)" "$(field "$file" 2 | median)" \
    "$(field "$file" 3 | median)" "$(field "$file" 4 | median)" \
    "$(field "$file" 5 | median)" \
    "$(field "$file" 1 | paste -sd' ' -)${problems:+   INVALID: $problems}"
  if [[ -n $problems ]]; then exit_code=1; fi
}
table_header() {
  printf '  %-26s %9s %8s %8s %8s %8s   %s\n' server req/s 'p50 us' \
    'p99 us' 'body B' 'hdr B' 'req/s of each run'
}

# interleave SUFFIX CPUS THREADS ARGS...: RUNS rounds, each running h2load
# once against every server in $measuring, the order rotated each round so
# that none is always first. Results go to $work/NAME.SUFFIX.results.
measuring=()
interleave() {
  local suffix=$1 cpus=$2 threads=$3 round index name
  local count=${#measuring[@]}
  shift 3
  for ((round = 0; round < runs; round++)); do
    for ((index = 0; index < count; index++)); do
      name=${measuring[(index + round) % count]}
      run_h2load "$name" "$cpus" "$threads" "$work/$name.$suffix" "$@"
    done
  done
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# rss_with_connections NAME: sets held_rss[NAME] to the VmRSS (KiB) of
# NAME while CONNECTIONS idle h2c connections, SETTINGS exchanged, are open
# to it; 0 if they could not be opened.
rss_with_connections() {
  local name=$1 holder i
  held_rss[$name]=0
  timeout 300 taskset -c "$load_cpu" "$python" "$bench_dir/hold_connections.py" \
    "${port_of[$name]}" "$connections" 240 >"$work/hold.out" 2>&1 &
  holder=$!
  started_pids+=("$holder")
  for ((i = 0; i < 1200; i++)); do # up to 120 s for the connections
    grep -q '^ready' "$work/hold.out" && break
    alive "$holder" || break
    sleep 0.1
  done
  if grep -q '^ready' "$work/hold.out"; then
    sleep 1 # let the server finish with the SETTINGS acks
    held_rss[$name]=$(rss_kib "${pid_of[$name]}")
  else
    echo "  $name: holding $connections connections failed: $(cat "$work/hold.out")"
  fi
  stop "$holder"
}

# ---------------------------------------------------------------- run
echo "== bench/unary.sh: $(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   $(h2load --version | head -1), gRPC C++ $(pkg-config --modversion grpc++ 2>/dev/null || echo '?'), build $build ($build_type)"
echo "   servers on core $server_cpu, h2load on core $load_cpu; medians of $runs interleaved runs"
start_all "$server_cpu"
url_of[jobhubd]="http://127.0.0.1:${port_of[jobhubd]:-0}$path"
url_of[grpc-c++]="http://127.0.0.1:${port_of[grpc-c++]:-0}$path"
url_of[nghttpd]="http://127.0.0.1:${port_of[nghttpd]}/5b"
bytes_of[jobhubd]=7 bytes_of[grpc-c++]=7 bytes_of[nghttpd]=5
for name in jobhubd grpc-c++ nghttpd; do
  [[ -z ${skipped[$name]:-} ]] && measuring+=("$name")
done

echo "-- grpc-status: $verify_calls Check calls with python3-grpcio per gRPC server"
# verify NAME: every grpcio call must end with grpc-status 0 and SERVING,
# and nghttp must see grpc-status: 0 in the trailers (a second client that
# shows the HTTP/2 frames themselves).
verify() {
  local name=$1 out
  if out=$(timeout 120 "$python" "$bench_dir/grpc_check.py" \
      "${port_of[$name]}" "$verify_calls" 2>&1); then
    echo "  $name: grpcio: $out"
  else
    echo "  $name: grpcio: FAILED: $out"
    exit_code=1
  fi
  out=$(timeout 10 nghttp -nv -d "$work/request.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "${url_of[$name]}" 2>&1) || true
  # Trailers follow the DATA frame (nghttp prints a frame's fields first).
  if awk '/recv DATA frame/ { data = 1 }
          data && /recv \(stream_id=[0-9]+\) grpc-status: 0$/ { found = 1 }
          END { exit !found }' <<<"$out"; then
    echo "  $name: nghttp -v: grpc-status: 0 in the trailers"
  else
    echo "  $name: nghttp -v: FAILED, no grpc-status: 0 in the trailers:"
    tail -30 <<<"$out"
    exit_code=1
  fi
}
for name in "${measuring[@]}"; do
  [[ $name == nghttpd ]] || verify "$name"
done

echo "-- memory: VmRSS idle and with $connections idle h2c connections"
declare -A idle_rss=() held_rss=()
for name in "${measuring[@]}"; do
  idle_rss[$name]=$(rss_kib "${pid_of[$name]}")
  rss_with_connections "$name"
  if ((held_rss[$name] == 0)); then exit_code=1; fi
  awk -v name="$name" -v idle="${idle_rss[$name]}" -v held="${held_rss[$name]}" \
    -v n="$connections" -v threads="$(awk '/^Threads:/ { print $2 }' \
    "/proc/${pid_of[$name]}/status")" 'BEGIN {
      printf "  %-18s idle %6d KiB   with %d connections %7d KiB   %5.1f KiB per connection   %2d threads\n",
        name, idle, n, held, (held - idle) / n, threads }'
done

echo "-- throughput: -c $clients -m $streams, $duration s per run (-D $duration), after a 2 s warm-up run"
for name in "${measuring[@]}"; do
  run_h2load "$name" "$load_cpu" 1 "$work/$name.warmup" -D 2 -c "$clients" -m "$streams"
done
interleave throughput "$load_cpu" 1 -D "$duration" -c "$clients" -m "$streams"
table_header
for name in "${measuring[@]}"; do
  report "$name" "$work/$name.throughput.results"
done

echo "-- latency: -c 1 -m 1 -n $latency_requests (one request in flight)"
interleave latency "$load_cpu" 1 -n "$latency_requests" -c 1 -m 1
table_header
for name in "${measuring[@]}"; do
  report "$name" "$work/$name.latency.results"
done

echo "-- after the connections and the load"
for name in "${measuring[@]}"; do
  [[ $name == nghttpd ]] || verify "$name"
  echo "  $name: VmRSS $(rss_kib "${pid_of[$name]}") KiB"
done
for name in "${measuring[@]}"; do
  stop "${pid_of[$name]}"
done

echo "-- scaling: servers and h2load (-t 2) all on cores $both_cpus, -c $clients -m $streams"
scaling_names=()
if [[ -z ${skipped[jobhubd]:-} ]]; then
  for threads in 1 2; do
    name=jobhubd-threads-$threads
    if start "$name" "$both_cpus" file "$jobhubd_bin" --listen 127.0.0.1:0 \
        --data "$work/$name.data" --threads "$threads" --port-file "$work/$name.port" "${jobhubd_flags[@]}"; then
      url_of[$name]="http://127.0.0.1:${port_of[$name]}$path" bytes_of[$name]=7
      scaling_names+=("$name")
    else
      exit_code=1
    fi
  done
fi
if [[ -z ${skipped[grpc-c++]:-} ]] &&
    start grpc-c++-2-cores "$both_cpus" file "$peer_bin" 0 "$work/grpc-c++-2-cores.port"; then
  url_of[grpc-c++-2-cores]="http://127.0.0.1:${port_of[grpc-c++-2-cores]}$path"
  bytes_of[grpc-c++-2-cores]=7
  scaling_names+=(grpc-c++-2-cores)
fi
measuring=("${scaling_names[@]}")
if ((${#scaling_names[@]})); then
  for name in "${scaling_names[@]}"; do
    run_h2load "$name" "$both_cpus" 2 "$work/$name.warmup" -D 2 -c "$clients" -m "$streams"
  done
  interleave scaling "$both_cpus" 2 -D "$duration" -c "$clients" -m "$streams"
  table_header
  for name in "${scaling_names[@]}"; do
    report "$name" "$work/$name.scaling.results"
  done
fi
for name in "${scaling_names[@]}"; do stop "${pid_of[$name]}"; done

# ---------------------------------------------------------------- verdicts
echo "== results (medians of $runs runs)"
med() { # med NAME SUFFIX FIELD: a median, or empty if never measured
  [[ -s $work/$1.$2.results ]] && field "$work/$1.$2.results" "$3" | median
  return 0
}
missed=0
ours=$(med jobhubd throughput 1) theirs=$(med grpc-c++ throughput 1)
ceiling=$(med nghttpd throughput 1)
if [[ -n $ours && -n $theirs ]]; then
  r=$(ratio "$ours" "$theirs")
  verdict "ratio jobhubd/grpc-c++ req/s: $r (target >= 3.0)" "$(at_least "$r" 3.0)"
else
  echo "ratio jobhubd/grpc-c++ req/s: n/a (a server was skipped)"
fi
if [[ -n $ours && -n $ceiling ]]; then
  r=$(ratio "$ours" "$ceiling")
  verdict "ratio jobhubd/nghttpd req/s: $r (target >= 0.5)" "$(at_least "$r" 0.5)"
else
  echo "ratio jobhubd/nghttpd req/s: n/a (jobhubd was skipped)"
fi
ours=$(med jobhubd latency 2) theirs=$(med grpc-c++ latency 2)
if [[ -n $ours && -n $theirs ]]; then
  verdict "p50 latency at -c 1 -m 1: jobhubd $ours us, grpc-c++ $theirs us (target: jobhubd <= grpc-c++)" \
    "$(at_least "$theirs" "$ours")"
else
  echo "p50 latency at -c 1 -m 1: n/a (a server was skipped)"
fi
if [[ -n ${idle_rss[jobhubd]:-} ]]; then
  verdict "idle RSS jobhubd: ${idle_rss[jobhubd]} KiB (target <= 8192 KiB)" \
    "$(at_least 8192 "${idle_rss[jobhubd]}")"
  per=$(awk -v a="${held_rss[jobhubd]}" -v b="${idle_rss[jobhubd]}" -v n="$connections" \
    'BEGIN { printf "%.1f", (a - b) / n }')
  verdict "RSS per idle connection jobhubd: $per KiB with $connections open (target <= 64 KiB)" \
    "$(at_least 64 "$per")"
else
  echo "RSS jobhubd: n/a (jobhubd was skipped)"
fi
one=$(med jobhubd-threads-1 scaling 1) two=$(med jobhubd-threads-2 scaling 1)
if [[ -n $one && -n $two ]]; then
  echo "scaling jobhubd --threads 2 / --threads 1, all on cores $both_cpus: $(ratio "$two" "$one") ($two vs $one req/s; reported, no target)"
else
  echo "scaling jobhubd --threads 2 / --threads 1: n/a (jobhubd was skipped)"
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
echo "h2load command lines (request.bin: the 5 bytes 00 00 00 00 00):"
for file in "$work"/*.throughput.command "$work"/*.latency.command \
    "$work"/*.scaling.command; do
  [[ -f $file ]] || continue
  label=${file##*/}
  echo "  ${label%.command}: $(<"$file")"
done
for name in "${!skipped[@]}"; do
  echo "SKIPPED $name: ${skipped[$name]}"
done

if ((exit_code != 0)); then
  echo "FAILED: some verification failed (see INVALID / FAILED above)"
elif ((${#skipped[@]})); then
  exit_code=4
elif ((missed && strict)); then
  exit_code=3
fi
exit "$exit_code"
