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
