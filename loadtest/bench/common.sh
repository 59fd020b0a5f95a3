# Shell helpers shared by the benchmark scripts that source it
# (ab.sh, list-instructions.sh, list-read-path.sh, freshness.sh,
# detail/run.sh, protection/run.sh, drill/run.sh). Not a script of its own.

# Progress and figures: to stderr and appended to $summary (each script sets
# summary first); stdout stays free for the values a function returns.
say() { echo "$*" | tee -a "$summary" >&2; }

# A port nothing listens on now (the kernel's pick).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until something listens on PORT; fails when PID (if given) exits
# first, or after 120 s.
wait_port() { # port [pid]
    for _ in $(seq 1 1200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
            echo "bench: process $2 exited before listening on $1" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "bench: nothing listens on port $1" >&2
    exit 1
}

# Stops PID (one this script started): TERM, up to 10 s to exit, then KILL.
stop_pid() {
    kill "$1" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# The EXIT trap of the scripts that start processes (`trap cleanup EXIT INT
# TERM`): stops every pid of the array `pids` in start order, then removes
# the temp dir `$work` when set. A script with more to undo defines
# `cleanup_first`, which runs before.
cleanup() {
    if declare -F cleanup_first >/dev/null; then cleanup_first; fi
    local pid
    for pid in ${pids[@]+"${pids[@]}"}; do stop_pid "$pid"; done
    if [ -n "${work:-}" ]; then rm -rf "$work"; fi
}

# A run's start: $out with an empty $out/summary.txt, a scratch dir $work
# (/tmp/pricing-bench-NAME.*), no pids yet, and the exit trap `cleanup`.
bench_start() { # name
    mkdir -p "$out"
    summary=$out/summary.txt
    : >"$summary"
    work=$(mktemp -d "/tmp/pricing-bench-$1.XXXXXX")
    pids=()
    trap cleanup EXIT INT TERM
}

# One gRPC call with curl over HTTP/2 (h2load sees HTTP status only; this
# checks grpc-status in the trailers): fails unless it is 0. The framed reply
# goes to REPLY, the response headers and trailers to REPLY.headers.
grpc_call() { # port path body reply
    curl -s --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
        --data-binary @"$3" -D "$4.headers" -o "$4" "http://127.0.0.1:$1$2"
    grep -qi '^grpc-status: *0' "$4.headers" || { echo "bench: call to $2 failed:" >&2; cat "$4.headers" >&2; exit 1; }
}

# The ceiling's payload size that makes its reply (`bytes payload = 1`: tag,
# length varint, payload) exactly REPLY_BYTES of protobuf.
ceiling_payload() { # reply-bytes
    python3 -c "
m = $1
varint_len = lambda n: max(1, (n.bit_length() + 6) // 7)
print(next(p for p in range(m, 0, -1) if 1 + varint_len(p) + p == m))"
}

# The peak command of the h2load benchmarks: closed loop, 16 connections of
# 16 streams on one thread, 2 s warm-up, then SECONDS timed.
h2_peak_flags=(-c 16 -m 16 -t 1 -H 'content-type: application/grpc' -H 'te: trailers')

# The requests/s an h2load output file reports (its "finished in" line).
h2_rate() { # txt
    awk '/^finished in/ {gsub(",", "", $4); print int($4)}' "$1"
}

# h2load at full speed (h2_peak_flags) against URL with BODY; its output goes
# to TXT, and it prints the requests/s. Fails unless every request got an
# HTTP answer (h2load counts HTTP status only, not gRPC codes). Run under
# the command in the array h2load_pin when it is set (e.g. taskset -c 1).
h2_peak() { # txt seconds body url
    ${h2load_pin[@]+"${h2load_pin[@]}"} h2load -D "$2" --warm-up-time 2 "${h2_peak_flags[@]}" -d "$3" "$4" >"$1"
    grep -q ' 0 failed, 0 errored, 0 timeout' "$1" || { cat "$1" >&2; exit 1; }
    h2_rate "$1"
}

# A throwaway mariadbd on a free port, its data in $work/mysql, with the
# database `pricing` created: sets db_port, db_pid and db_url. Started under
# the command in the array pin_stores when it is set (e.g. taskset -c 0).
start_mariadb() {
    local mariadbd install_db deadline
    mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)
    install_db=$(command -v mariadb-install-db || command -v mysql_install_db)
    db_port=$(free_port)
    "$install_db" --no-defaults --datadir="$work/mysql" --auth-root-authentication-method=normal \
        --skip-test-db --user="$(id -un)" >"$work/install.log" 2>&1 ||
        { cat "$work/install.log" >&2; echo "bench: mariadb-install-db failed" >&2; exit 1; }
    ${pin_stores[@]+"${pin_stores[@]}"} "$mariadbd" --no-defaults --datadir="$work/mysql" --port="$db_port" \
        --bind-address=127.0.0.1 --socket="$work/mysql.sock" --pid-file="$work/mysql.pid" --user="$(id -un)" \
        --skip-log-bin --innodb-buffer-pool-size=128M --innodb-log-file-size=48M \
        --max-connections=500 --log-error="$work/mysql.err" &
    db_pid=$!
    pids+=("$db_pid")
    deadline=$((SECONDS + 60))
    until mariadb --no-defaults -uroot -h127.0.0.1 -P"$db_port" -e 'select 1' >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then cat "$work/mysql.err" >&2; echo "bench: mariadbd did not start" >&2; exit 1; fi
        sleep 0.2
    done
    mariadb --no-defaults -uroot -h127.0.0.1 -P"$db_port" -e 'CREATE DATABASE pricing'
    db_url="mysql://root@127.0.0.1:$db_port/pricing"
}

# A redis-server without persistence on a free port, its dir $work/redis-NAME
# (under pin_stores when set): sets redis_port and redis_pid.
start_redis() { # name
    redis_port=$(free_port)
    mkdir -p "$work/redis-$1"
    ${pin_stores[@]+"${pin_stores[@]}"} redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$work/redis-$1" >"$work/redis-$1.log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    wait_port "$redis_port" "$redis_pid"
}

# Latency percentiles of an h2load --log-file (its third column: microseconds).
percentiles() { # h2load log file -> "p50 p99 p99.9" in ms
    cut -f3 "$1" | sort -n | awk '{v[NR] = $1} END {
        printf "%.3f %.3f %.3f\n", v[int(NR * 0.50)] / 1000, v[int(NR * 0.99)] / 1000, v[int(NR * 0.999)] / 1000 }'
}

# How evenly an h2load run sent its requests (the log's first column: each
# request's start, microseconds since the epoch): "mean p99 max poisson_p99",
# requests started per millisecond, the last the p99 that random (Poisson)
# arrivals of the same mean would show. An open loop whose p99 is far above
# the Poisson one sent bursts, and a burst's queue is the instrument's, not
# the server's.
arrivals() { # h2load log file
    python3 - "$1" <<'PY'
import collections, math, sys
starts = [int(line.split("\t")[0]) // 1000 for line in open(sys.argv[1]) if line.strip()]
per_ms = collections.Counter(starts)
counts = sorted(per_ms.get(ms, 0) for ms in range(min(starts), max(starts) + 1))
mean = len(starts) / len(counts)
k, term = 0, math.exp(-mean)
total = term
while total < 0.99:
    k += 1
    term *= mean / k
    total += term
print(f"{mean:.1f} {counts[int(len(counts) * 0.99)]} {counts[-1]} {k}")
PY
}

# The p99 at half the peak of one request shape, with h2load (under
# h2load_pin when set): PACED_CLIENTS connections (default 64) of one
# stream each. First closed loop: the peak of that shape (one request per
# read and write, which costs a server more than multiplexed streams).
# Then paced at half of it (--rps per connection: each connection's
# interval stays above the latency it measures), twice: "together",
# h2load's default, where every connection starts at once and so every
# connection's --rps timer fires in the same instant (the server is sent
# PACED_CLIENTS requests at a time, once per interval); and "spread", the
# connections started 1 ms apart (-r 1 --rate-period 1ms, which h2load
# allows only with -n, not -D: the count is half the peak times SECONDS),
# so the timers' phases spread over the interval and requests arrive
# about as a random stream would (`arrivals` says how evenly, beside
# Poisson's p99). Latency from h2load's per-request log. Files:
# PREFIX-peak.txt, PREFIX-together.{txt,log}, PREFIX-spread.{txt,log}.
# When the array paced_hook names a command, it is run as `CMD before|after
# PREFIX-LABEL` around each paced run (the detail bench reads its counters
# there, into files of that stem; the after call comes once the run's lines
# are written, the server idle by then). Writes its lines with `say`, NAME
# first.
paced_hook=()
h2_half_peak() { # name prefix url body seconds
    local name=$1 prefix=$2 url=$3 body=$4 seconds=$5 clients=${PACED_CLIENTS:-64} peak half rps label log
    local h2=(h2load -t 1 -c "$clients" -m 1 -H 'content-type: application/grpc' -H 'te: trailers' -d "$body")
    ${h2load_pin[@]+"${h2load_pin[@]}"} "${h2[@]}" -D "$seconds" --warm-up-time 2 "$url" >"$prefix-peak.txt"
    peak=$(h2_rate "$prefix-peak.txt")
    half=$((peak / 2))
    rps=$(((half + clients - 1) / clients))
    say "$name: peak $peak req/s (closed loop, -c $clients -m 1; $(grep -o '[0-9]* succeeded, [0-9]* failed' "$prefix-peak.txt")); half $half/s asked as $clients x --rps $rps"
    for label in together spread; do
        local start=(-D "$seconds" --warm-up-time 2)
        [ "$label" = spread ] && start=(-r 1 --rate-period 1ms -n $((half * seconds)))
        log="$prefix-$label.log"
        rm -f "$log" # h2load appends to its log file: a rerun into the same folder would mix runs
        if [ ${#paced_hook[@]} -gt 0 ]; then "${paced_hook[@]}" before "$prefix-$label"; fi
        ${h2load_pin[@]+"${h2load_pin[@]}"} "${h2[@]}" --rps "$rps" "${start[@]}" --log-file "$log" "$url" \
            >"$prefix-$label.txt"
        read -r p50 p99 p999 < <(percentiles "$log")
        read -r mean_ms p99_ms max_ms poisson_ms < <(arrivals "$log")
        say "  paced at half, connections started $label (${start[*]}): got $(h2_rate "$prefix-$label.txt")/s; p50 $p50 ms, p99 $p99 ms, p99.9 $p999 ms; $(grep -o '[0-9]* succeeded, [0-9]* failed' "$prefix-$label.txt")"
        say "    requests started per ms: mean $mean_ms, p99 $p99_ms, max $max_ms (Poisson arrivals of that mean: p99 $poisson_ms)"
        if [ ${#paced_hook[@]} -gt 0 ]; then "${paced_hook[@]}" after "$prefix-$label"; fi
    done
}

# The gRPC codes the server with metrics at PORT counted for METHOD
# (pricing_grpc_requests_total, every variant), one "CODE=count" a line.
grpc_codes() { # metrics-port method
    curl -s "http://127.0.0.1:$1/metrics" | awk -v m="method=\"$2\"" '
        /^pricing_grpc_requests_total[{]/ && index($0, m) {
            match($0, /code="[^"]*"/); c[substr($0, RSTART + 6, RLENGTH - 7)] += $NF }
        END { for (k in c) printf "%s=%d\n", k, c[k] }' | sort
}

# What moved between two grpc_codes outputs (files): "OK +N Cancelled +M".
codes_delta() { # before after
    awk -F= 'NR == FNR { a[$1] = $2; next } $2 != a[$1] { printf "%s%s +%d", sep, $1, $2 - a[$1]; sep = " " }
        END { if (!sep) printf "(none)" }' "$1" "$2"
}

# The list server with every id of a batch in memory: tiers ["sql"] on the
# embedded demo database at DB (created and seeded on first start), 1 h ttl.
list_memory_config() { # port metrics-port db-path
    cat <<EOT
version = 1
[server]
listen = "127.0.0.1:$1"
metrics_listen = "127.0.0.1:$2"
log = "warn"
worker_threads = 2
[source]
embedded_path = "$3"
[cache]
ttl_ms = 3600000
[read]
tiers = ["sql"]
EOT
}

# The list server's batch method.
LIST_PATH=/pricing.v1.ListPricing/BatchGetPrices

# Instructions per call of a gRPC server under valgrind's callgrind: a count
# that does not move with the machine's load. Starts CMD... under callgrind,
# waits for PORT, sends 500 warm-up calls of BODY to PATH (h2load -c 4 -m 4),
# zeroes the counters, sends CALLS calls, dumps the counters, stops the
# server and prints "TOTAL PER_CALL". The dump is left at OUT.1.
callgrind_per_call() { # out port path body calls cmd...
    local out=$1 port=$2 path=$3 body=$4 calls=$5
    shift 5
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$out.log" 2>&1 &
    local pid=$!
    wait_port "$port" "$pid"
    local h2=(h2load -c 4 -m 4 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -d "$body")
    "${h2[@]}" -n 500 "http://127.0.0.1:$port$path" >"$out.warmup.txt"
    callgrind_control -z "$pid" >/dev/null 2>&1
    "${h2[@]}" -n "$calls" "http://127.0.0.1:$port$path" >"$out.h2load.txt"
    grep -q "$calls succeeded" "$out.h2load.txt" || { echo "bench: not every call succeeded under callgrind" >&2; cat "$out.h2load.txt" >&2; }
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"
    wait "$pid" || true
    local total
    total=$(awk '/^summary:/ {print $2}' "$out.1")
    echo "$total $((total / calls))"
}
