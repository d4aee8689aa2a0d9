#!/usr/bin/env bash
# bench/unary.sh: unary gRPC requests/s, latency and memory of jobhubd
# against the official gRPC C++ server (its default health service), with
# nghttpd serving a tiny static file as this machine's HTTP/2 ceiling. All
# three run in this one script, same h2load settings, server pinned to
# core 0 and h2load to core 1. Prints medians of RUNS runs and the ratios.
#
# Env: BUILD_DIR (default build-bench), RUNS (3), REQUESTS (400000),
#      SECONDS_LIMIT per h2load run (60).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD_DIR:-$root/build-bench}
runs=${RUNS:-3}
requests=${REQUESTS:-400000}
limit=${SECONDS_LIMIT:-60}
work=$(mktemp -d /tmp/jobhub-bench-XXXXXX)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cmake -S . -B "$build" -DJOBHUB_BENCH=ON -DJOBHUB_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target jobhubd grpc_health_server \
  >/dev/null
ulimit -n 8192

printf '\0\0\0\0\0' >"$work/health.bin" # empty HealthCheckRequest, framed
mkdir -p "$work/www" && printf 'hello' >"$work/www/5b"

# start NAME CORES COMMAND...: starts a server pinned to CORES; its port is
# read from $work/NAME.port (the command must write it). Sets $port, $pid.
start() {
  local name=$1 cores=$2
  shift 2
  rm -f "$work/$name.port"
  taskset -c "$cores" "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do
    [ -s "$work/$name.port" ] && break
    sleep 0.1
  done
  [ -s "$work/$name.port" ] || { echo "$name did not start"; cat "$work/$name.log"; exit 1; }
  port=$(cat "$work/$name.port")
  sleep 0.3
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# load CORES URL KIND ARGS...: one h2load run; prints "req/s p50_us p99_us
# ok total bytes_per_request".
load() {
  local cores=$1 url=$2 kind=$3
  shift 3
  local grpc=()
  if [ "$kind" = grpc ]; then
    grpc=(-d "$work/health.bin" -H 'content-type: application/grpc' -H 'te: trailers')
  fi
  rm -f "$work/h2load.log"
  timeout "$limit" taskset -c "$cores" h2load "${grpc[@]}" "$@" \
    --log-file="$work/h2load.log" "$url" >"$work/h2load.out" 2>&1 || true
  local rps ok total bytes percentiles
  rps=$(awk '/^finished in/ {print $4}' "$work/h2load.out")
  ok=$(awk '/^status codes:/ {print $3}' "$work/h2load.out")
  total=$(awk '/^requests:/ {print $2}' "$work/h2load.out")
  bytes=$(awk '/^traffic:/ {gsub(/[()]/, "", $3); print $3}' "$work/h2load.out")
  # The log has one line per request: start, status, microseconds taken.
  percentiles=$(cut -f3 "$work/h2load.log" | sort -n | awk '
    {v[NR] = $1}
    END {
      if (NR == 0) { print "0 0"; exit }
      p50 = int(NR * 0.50); if (p50 < 1) p50 = 1
      p99 = int(NR * 0.99); if (p99 < 1) p99 = 1
      print v[p50], v[p99]
    }')
  total=${total:-0}
  local per_request=0
  if [ "$total" -gt 0 ]; then per_request=$(( ${bytes:-0} / total )); fi
  echo "${rps:-0} $percentiles ${ok:-0} $total $per_request"
}

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# measure LABEL CORES URL KIND ARGS...: RUNS runs; prints medians and sets
# globals m_rps m_p50 m_p99.
measure() {
  local label=$1 cores=$2 url=$3 kind=$4
  shift 4
  local results=()
  for _ in $(seq "$runs"); do
    results+=("$(load "$cores" "$url" "$kind" "$@")")
  done
  m_rps=$(printf '%s\n' "${results[@]}" | awk '{print $1}' | median)
  m_p50=$(printf '%s\n' "${results[@]}" | awk '{print $2}' | median)
  m_p99=$(printf '%s\n' "${results[@]}" | awk '{print $3}' | median)
  local bad
  bad=$(printf '%s\n' "${results[@]}" | awk '$4 != $5 {n++} END {print n+0}')
  local per_request
  per_request=$(printf '%s\n' "${results[@]}" | awk '{print $6}' | median)
  printf '%-28s %12.0f req/s   p50 %6d us   p99 %6d us   %4d B/req%s\n' \
    "$label" "$m_rps" "$m_p50" "$m_p99" "$per_request" \
    "$([ "$bad" -gt 0 ] && echo "   ($bad runs with non-2xx!)")"
}

# Every response must carry grpc-status 0 (h2load counts HTTP 200 only).
check_grpc_status() {
  local name=$1 url=$2
  local out
  out=$(nghttp -v -d "$work/health.bin" -H 'content-type: application/grpc' \
        -H 'te: trailers' "$url" 2>&1)
  if ! grep -q 'grpc-status: 0' <<<"$out"; then
    echo "$name: no grpc-status 0 in the response:"; echo "$out"; exit 1
  fi
  echo "$name: verified grpc-status: 0 in the trailers (nghttp -v)"
}

path=/grpc.health.v1.Health/Check
echo "== unary gRPC: h2load on core 1, each server on core 0; medians of $runs runs"

start jobhubd 0 "$build/server/jobhubd" --listen 127.0.0.1:0 --threads 1 \
  --port-file "$work/jobhubd.port" --log-level warn
ours=$pid ours_port=$port
start grpc 0 "$build/bench/grpc_health_server" "$work/grpc.port"
peer=$pid peer_port=$port
nghttpd_port=$(free_port)
taskset -c 0 nghttpd --no-tls -d "$work/www" "$nghttpd_port" >"$work/nghttpd.log" 2>&1 &
ceiling=$!; pids+=("$ceiling"); sleep 0.5

check_grpc_status jobhubd "http://127.0.0.1:$ours_port$path"
check_grpc_status grpc-c++ "http://127.0.0.1:$peer_port$path"

ours_idle=$(rss_kib "$ours"); peer_idle=$(rss_kib "$peer")

echo "-- throughput: -c 8 -m 32 -n $requests"
measure "jobhubd (1 thread)" 1 "http://127.0.0.1:$ours_port$path" grpc -n "$requests" -c 8 -m 32
ours_rps=$m_rps
measure "grpc-c++" 1 "http://127.0.0.1:$peer_port$path" grpc -n "$requests" -c 8 -m 32
peer_rps=$m_rps
measure "nghttpd (static 5 B)" 1 "http://127.0.0.1:$nghttpd_port/5b" get -n "$requests" -c 8 -m 32
ceiling_rps=$m_rps

echo "-- latency: -c 1 -m 1 -n 20000"
measure "jobhubd (1 thread)" 1 "http://127.0.0.1:$ours_port$path" grpc -n 20000 -c 1 -m 1
ours_p50=$m_p50
measure "grpc-c++" 1 "http://127.0.0.1:$peer_port$path" grpc -n 20000 -c 1 -m 1
peer_p50=$m_p50

echo "-- memory (VmRSS)"
hold() { # hold PORT: 1,000 idle connections; prints RSS of $2 meanwhile
  coproc holder { /usr/bin/python3 "$root/bench/hold_connections.py" "$1" 1000; }
  read -r ready <&"${holder[0]}"
  [ "$ready" = ready ] || { echo "holding connections failed"; exit 1; }
  rss_kib "$2"
  exec {holder[1]}>&-
  wait "$holder_PID" 2>/dev/null || true
}
ours_held=$(hold "$ours_port" "$ours")
peer_held=$(hold "$peer_port" "$peer")
printf '%-28s idle %6d KiB   with 1000 idle conns %7d KiB   (%.1f KiB/conn)\n' \
  jobhubd "$ours_idle" "$ours_held" "$(echo "($ours_held - $ours_idle) / 1000" | bc -l)"
printf '%-28s idle %6d KiB   with 1000 idle conns %7d KiB   (%.1f KiB/conn)\n' \
  grpc-c++ "$peer_idle" "$peer_held" "$(echo "($peer_held - $peer_idle) / 1000" | bc -l)"

stop "$ours"; stop "$peer"; stop "$ceiling"

echo "-- scaling: server and h2load share cores 0-1 (h2load -t 2 -c 8 -m 32)"
start jobhubd1 0-1 "$build/server/jobhubd" --listen 127.0.0.1:0 --threads 1 \
  --port-file "$work/jobhubd1.port" --log-level warn
measure "jobhubd --threads 1" 0-1 "http://127.0.0.1:$port$path" grpc -n "$requests" -c 8 -m 32 -t 2
one=$m_rps; stop "$pid"
start jobhubd2 0-1 "$build/server/jobhubd" --listen 127.0.0.1:0 --threads 2 \
  --port-file "$work/jobhubd2.port" --log-level warn
measure "jobhubd --threads 2" 0-1 "http://127.0.0.1:$port$path" grpc -n "$requests" -c 8 -m 32 -t 2
two=$m_rps; stop "$pid"

echo "== results"
ratio() { echo "scale=2; $1 / $2" | bc -l; }
echo "ratio jobhubd/grpc-c++ req/s: $(ratio "$ours_rps" "$peer_rps") (target >= 3.0)"
echo "ratio jobhubd/nghttpd req/s: $(ratio "$ours_rps" "$ceiling_rps") (target >= 0.5)"
echo "p50 latency -c 1 -m 1: jobhubd ${ours_p50} us, grpc-c++ ${peer_p50} us (target: jobhubd <= grpc-c++)"
echo "idle RSS jobhubd: ${ours_idle} KiB (target <= 8192); per idle connection: $(( (ours_held - ours_idle) * 1024 / 1000 / 1024 )) KiB (target <= 64)"
echo "scaling --threads 2 / --threads 1 on 2 shared cores: $(ratio "$two" "$one")"
