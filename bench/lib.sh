# bench/lib.sh: what the benchmark scripts share; sourced, not run.
# The sourcing script sets $root, $build and $work (its work dir) first and
# keeps every process it starts in started_pids.
started_pids=()

# alive PID: the process exists and is not a zombie.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# stop PID [SIGNAL]: SIGNAL (TERM), up to 15 s to exit (jobhubd drains,
# Redis syncs its AOF), then SIGKILL.
stop() {
  local pid=$1 signal=${2:-TERM} i
  kill "-$signal" "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}

# forget PID: drops PID from started_pids (it may be reused later).
forget() {
  local -a rest=()
  local i
  for i in "${started_pids[@]}"; do [[ $i == "$1" ]] || rest+=("$i"); done
  started_pids=("${rest[@]}")
}

# shellcheck disable=SC2317 # called by the trap
cleanup() {
  local pid
  trap - EXIT INT TERM
  for pid in "${started_pids[@]}"; do stop "$pid"; done
  rm -rf "$work"
}

# bench_cleanup_on_exit: stop everything started, remove $work, on exit.
bench_cleanup_on_exit() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# configure_bench_build: configures $build (JOBHUB_BENCH=ON, Release) if it
# is not configured yet; refuses one without JOBHUB_BENCH, warns about one
# that is not Release. Sets build_type.
configure_bench_build() {
  if [[ ! -f $build/CMakeCache.txt ]]; then
    echo "configuring $build (JOBHUB_BENCH=ON, Release)"
    timeout 600 cmake -S "$root" -B "$build" -DJOBHUB_BENCH=ON \
      -DJOBHUB_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >"$work/configure.log" 2>&1 ||
      { tail -20 "$work/configure.log"; die "configuring $build failed"; }
  fi
  grep -q '^JOBHUB_BENCH:BOOL=ON' "$build/CMakeCache.txt" ||
    die "$build is not configured with -DJOBHUB_BENCH=ON; configure it so or pass another BUILD_DIR"
  build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt")
  [[ $build_type == Release ]] ||
    echo "WARNING: $build is a '$build_type' build, not Release: figures are not comparable"
}

# median: the median of the numbers on stdin (the lower one of two), 0 for
# none.
median() { sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : 0 }'; }

# listening PORT: something accepts connections on 127.0.0.1:PORT.
listening() { timeout 2 bash -c ": </dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# start NAME CPUS PORT COMMAND...: starts COMMAND pinned to CPUS. PORT is
# the port, or "file" when COMMAND writes it to $work/NAME.port. Waits up
# to 30 s for it to listen (jobhubd recovers its store first). Sets
# pid_of[NAME], port_of[NAME] (associative arrays of the caller); 1 on
# failure.
start() {
  local name=$1 cpus=$2 port=$3 pid i
  shift 3
  rm -f "$work/$name.port"
  taskset -c "$cpus" "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  started_pids+=("$pid")
  pid_of[$name]=$pid
  for ((i = 0; i < 300; i++)); do
    alive "$pid" || break
    if [[ $port == file && -s $work/$name.port ]]; then
      port=$(<"$work/$name.port")
    fi
    if [[ $port != file ]] && listening "$port"; then
      port_of[$name]=$port
      return 0
    fi
    sleep 0.1
  done
  echo "$name did not start listening within 30 s: $*"
  tail -20 "$work/$name.log"
  stop "$pid"
  return 1
}

# free_port: a port that was free a moment ago, for servers that cannot
# report the port they bound (nghttpd, beanstalkd, Redis).
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# field FILE N: field N of every line of FILE.
field() { awk -v n="$2" '{ print $n }' "$1"; }

# verdict TEXT OK: prints TEXT with "ok" (OK is 1) or "MISSED", and then
# sets missed=1.
verdict() {
  if [[ $2 == 1 ]]; then echo "$1 ok"; else echo "$1 MISSED"; missed=1; fi
}

# ratio A B: A / B with two decimals, 0 when B is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }

# at_least A B: 1 when A >= B, else 0.
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { print (a >= b) ? 1 : 0 }'; }

# h2load_summary RC OUT LOG BODY_MIN BODY_MAX INFLIGHT: one line "req/s p50
# p99 data_bytes_per_request header_bytes_per_request problem" from an
# h2load run that exited RC, printed OUT (its stdout) and wrote the
# per-request LOG (--log-file). problem is "-" when the run was clean:
# every request done with a 2xx in the summary, except at most INFLIGHT
# that a -D run cut at its end, 200 on every log line, and
# the DATA bytes between BODY_MIN per request and BODY_MAX per request plus
# INFLIGHT (-c times -m) bodies still in flight when a -D run stopped. p50
# and p99 are nearest-rank percentiles of the log's request times (us).
h2load_summary() {
  awk -v rc="$1" -v logfile="$3" -v body_min="$4" -v body_max="$5" \
    -v inflight="$6" '
    /^finished in/ { rps = $4 }
    /^requests:/ { done = $6; ok = $8; failed = $10; errored = $12; tout = $14 }
    /^status codes:/ { ok2xx = $3 }
    /^traffic:/ {
      match($0, /\([0-9]+\) headers/); headers = substr($0, RSTART + 1, RLENGTH - 10) + 0
      match($0, /\([0-9]+\) data/); data = substr($0, RSTART + 1, RLENGTH - 7) + 0
    }
    END {
      problem = "-"
      if (rc == 124) problem = "h2load-timed-out"
      else if (rc != 0) problem = "h2load-exit-" rc
      else if (done == 0) problem = "no-requests"
      else if (failed + errored + tout > 0 || done - ok > inflight ||
               done - ok2xx > inflight)
        problem = "failed-or-non-2xx:" failed "/" errored "/" tout "/" ok2xx
      else if (data < done * body_min || data > (done + inflight) * body_max)
        problem = "body-bytes:" data "-for-" done "-requests"
      n = 0; bad = 0
      cmd = "cut -f2,3 \"" logfile "\" | sort -t\"\t\" -k2,2n"
      while ((cmd | getline line) > 0) {
        split(line, f, "\t"); if (f[1] != 200) bad++; v[++n] = f[2]
      }
      close(cmd)
      if (problem == "-" && bad > 0) problem = "log-non-200:" bad
      if (problem == "-" && n != done) problem = "log-lines:" n "-for-" done
      p50 = n ? v[int((n * 50 + 99) / 100)] : 0
      p99 = n ? v[int((n * 99 + 99) / 100)] : 0
      printf "%.0f %d %d %.3f %.3f %s\n", rps, p50, p99,
        done ? data / done : 0, done ? headers / done : 0, problem
    }' "$2"
}
