#!/usr/bin/env bash
# The list server's read path under h2load, next to the bare gRPC ceiling.
#
#   bash loadtest/bench/list-read-path.sh
#
# Phases (each h2load run DURATION seconds, default 15):
#   1. memory: release pricing-list, tiers ["sql"] on the embedded demo
#      database, 1 h ttl, warmed: every id of the batch is in moka. The
#      ceiling (../shared/tools/grpc-ceiling, beside the repo root) answers
#      with a payload of exactly the list server's reply size. Both at peak (-c16 -m16 -t1),
#      twice, alternating; then the list server's p99 at half its own peak
#      (common.sh: h2_half_peak, 64 connections of one stream, their own
#      peak, then paced at half of it, the connections started together and
#      then 1 ms apart), from a per-request log.
#   1b. instructions: both servers again, each alone under valgrind's
#      callgrind (common.sh: callgrind_per_call), INSTR_CALLS calls (default
#      5000) after 500 warm-up: instructions per call, a figure that does not
#      move with the machine's load (INSTR_CALLS=0 skips it).
#   2. redis: two redis-server processes filled through the list server's
#      write-back (tiers ["redis", "sql"]), then a server with tiers
#      ["redis"] and the shortest cache ttl the config allows (1 ms): peak
#      rate, then a paced run (one request every 5 ms > ttl) in which every
#      batch misses memory; INFO commandstats before/after each.
# Not part of the test command. Kills only the processes it started.
# Results: $OUT (default target/bench-list-read-path), summary.txt there.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=common.sh
. "$here/common.sh" # say, wait_port, stop_pid, cleanup (stops $pids), callgrind_per_call
target=${CARGO_TARGET_DIR:-$root/target}
instr_calls=${INSTR_CALLS:-5000}
# The shared tools sit beside the repository: ../shared from its root.
shared=$(cd "$root/.." && pwd)/shared
out=${OUT:-$root/target/bench-list-read-path}
duration=${DURATION:-15}
clients=${CLIENTS:-16}
streams=${STREAMS:-16}
first_id=${FIRST_ID:-101}
batch=20
list_port=${LIST_PORT:-50161}
metrics_port=${METRICS_PORT:-9561}
ceiling_port=${CEILING_PORT:-50199}
redis_a=${REDIS_A_PORT:-6391}
redis_b=${REDIS_B_PORT:-6392}
list_path=/pricing.v1.ListPricing/BatchGetPrices
ceiling_path=/ceiling.v1.Ceiling/Get

# SERVER_CPU and LOAD_CPU pin phase 1's servers (the list server and the
# ceiling, each with one tokio worker per core it may use) and its h2load
# to those cores with taskset, as detail/run.sh does: the pinned setup is
# `SERVER_CPU=0 LOAD_CPU=1 bash loadtest/bench/list-read-path.sh`.
pin_server=()
h2load_pin=()
if [ -n "${SERVER_CPU:-}" ]; then pin_server=(taskset -c "$SERVER_CPU"); fi
if [ -n "${LOAD_CPU:-}" ]; then h2load_pin=(taskset -c "$LOAD_CPU"); fi
server_workers=$(${pin_server[@]+"${pin_server[@]}"} nproc)

mkdir -p "$out"
summary=$out/summary.txt
: >"$summary"

pids=()
trap cleanup EXIT INT TERM

metric() { # name and label filter (a grep pattern), summed
    curl -s "http://127.0.0.1:$metrics_port/metrics" | awk -v name="$1" -v want="${2:-.}" '
        ($1 ~ "^" name "([{]|$)") && ($0 ~ want) {s += $NF} END {printf "%d", s}'
}

# common.sh's h2_peak with this script's CLIENTS and STREAMS; prints requests/s.
h2_peak_flags=(-c "$clients" -m "$streams" -t 1 -H 'content-type: application/grpc' -H 'te: trailers')
list_peak_run() { # name port path
    h2_peak "$out/$1.txt" "$duration" "$out/request.bin" "http://127.0.0.1:$2$3"
}

redis_stats() { # port -> "mget=N other=M" from INFO commandstats (INFO, CONFIG, DBSIZE excluded)
    redis-cli -p "$1" INFO commandstats | tr -d '\r' | awk -F'[:=,]' '
        /^cmdstat_/ { name = substr($1, 9); if (name == "mget") m += $3;
                      else if (name != "info" && name != "config|resetstat" && name != "dbsize") o += $3 }
        END { printf "mget=%d other=%d", m, o }'
}

say "# list read path benchmark, $(date -u +%FT%TZ), $(nproc) cores"
say "load before: $(uptime)"
say "pinning: list server and grpc-ceiling on cpu ${SERVER_CPU:-any} ($server_workers tokio workers each), h2load on cpu ${LOAD_CPU:-any}"

cargo build --release -p pricing-list
# Into the same target folder: the dependencies both share are built once.
cargo build --release --manifest-path "$shared/tools/grpc-ceiling/Cargo.toml" --target-dir "$target"
list_bin=$target/release/pricing-list
ceiling_bin=$target/release/grpc-ceiling
python3 "$here/grpc_body.py" "$first_id" "$batch" >"$out/request.bin"
say "request: $batch ids from $first_id, $(stat -c %s "$out/request.bin") bytes framed"

# ---- phase 1: every id in moka ------------------------------------------------
cat >"$out/list-memory.toml" <<EOF
version = 1
[server]
listen = "127.0.0.1:$list_port"
metrics_listen = "127.0.0.1:$metrics_port"
log = "warn"
worker_threads = $server_workers
[source]
embedded_path = "$out/demo.db"
[cache]
ttl_ms = 3600000
[read]
tiers = ["sql"]
EOF
${pin_server[@]+"${pin_server[@]}"} "$list_bin" --config "$out/list-memory.toml" >"$out/list-memory.log" 2>&1 &
list_pid=$!
pids+=("$list_pid")
wait_port "$list_port" "$list_pid"
grpc_call "$list_port" "$list_path" "$out/request.bin" "$out/list-reply.bin"
grpc_call "$list_port" "$list_path" "$out/request.bin" "$out/list-reply.bin"
reply_bytes=$(($(stat -c %s "$out/list-reply.bin") - 5))
say "list reply: $reply_bytes bytes of protobuf; after warm-up, goods from the cache: $(metric pricing_chain_hits_total 'tier="memory"'), from the price memo: $(metric pricing_list_memo_hits_total)"

# The ceiling's reply is `bytes payload = 1`: tag, length varint, payload.
payload=$(ceiling_payload "$reply_bytes")
${pin_server[@]+"${pin_server[@]}"} "$ceiling_bin" "127.0.0.1:$ceiling_port" "$payload" "$server_workers" >"$out/ceiling.log" 2>&1 &
ceiling_pid=$!
pids+=("$ceiling_pid")
wait_port "$ceiling_port" "$ceiling_pid"
grpc_call "$ceiling_port" "$ceiling_path" "$out/request.bin" "$out/ceiling-reply.bin"
say "ceiling reply: $(($(stat -c %s "$out/ceiling-reply.bin") - 5)) bytes (payload $payload)"

h2="h2load -D $duration --warm-up-time 2 -c $clients -m $streams -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -d request.bin"
say "peak: $h2 http://127.0.0.1:PORT/PATH"
ceiling1=$(list_peak_run ceiling-1 "$ceiling_port" "$ceiling_path")
list1=$(list_peak_run list-memory-1 "$list_port" "$list_path")
ceiling2=$(list_peak_run ceiling-2 "$ceiling_port" "$ceiling_path")
list2=$(list_peak_run list-memory-2 "$list_port" "$list_path")
stop_pid "$ceiling_pid"
say "ceiling req/s: $ceiling1, $ceiling2"
say "list (memory) req/s: $list1, $list2"
say "list / ceiling: $(python3 -c "print(f'{($list1 + $list2) / ($ceiling1 + $ceiling2):.0%}')")"
codes() {
    curl -s "http://127.0.0.1:$metrics_port/metrics" | grep -E '^pricing_grpc_requests_total\{.*BatchGetPrices' |
        sed -E 's/.*code="([^"]+)".* ([0-9]+)$/\1=\2/' | tr '\n' ' '
}
say "grpc codes at the list server after the timed runs: $(codes)"
# A timed h2load run ends by resetting the streams still in flight; a run
# with a fixed count ends clean, so any non-OK code there is a real error.
${h2load_pin[@]+"${h2load_pin[@]}"} h2load -n 50000 -c "$clients" -m "$streams" -t 1 -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$out/request.bin" "http://127.0.0.1:$list_port$list_path" >"$out/list-memory-count.txt"
say "after 50000 more with -n (no reset at the end): $(codes)"

# p99 at half the peak: common.sh's h2_half_peak (64 connections of one
# stream: their own closed-loop peak, then paced at half of it with the
# connections started together and 1 ms apart; the spread run's p99 is the
# figure against the target).
h2_half_peak "list (memory) p99 at half the peak" "$out/list-memory-paced" "http://127.0.0.1:$list_port$list_path" \
    "$out/request.bin" "$duration"
say "list memo hits (goods answered from the price memo): $(metric pricing_list_memo_hits_total)"
stop_pid "$list_pid"

# ---- phase 1b: instructions per call under callgrind ----------------------------
if [[ $instr_calls -gt 0 ]]; then
    read -r list_total list_per_call < <(callgrind_per_call "$out/list.callgrind" "$list_port" "$list_path" \
        "$out/request.bin" "$instr_calls" "$list_bin" --config "$out/list-memory.toml")
    read -r ceiling_total ceiling_per_call < <(callgrind_per_call "$out/ceiling.callgrind" "$ceiling_port" "$ceiling_path" \
        "$out/request.bin" "$instr_calls" "$ceiling_bin" "127.0.0.1:$ceiling_port" "$payload" 2)
    say "instructions per call (callgrind, $instr_calls calls after 500, h2load -c 4 -m 4): list $list_per_call ($list_total), ceiling $ceiling_per_call ($ceiling_total), list / ceiling $(python3 -c "print(f'{$list_per_call / $ceiling_per_call:.2f}')")"
fi

# ---- phase 2: every id in Redis, cache effectively off -------------------------
for port in "$redis_a" "$redis_b"; do
    mkdir -p "$out/redis-$port"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$out/redis-$port" \
        >"$out/redis-$port.log" 2>&1 &
    pids+=("$!")
    wait_port "$port" "$!"
    redis-cli -p "$port" FLUSHALL >/dev/null
done

redis_config() { # tiers
    cat <<EOF
version = 1
[server]
listen = "127.0.0.1:$list_port"
metrics_listen = "127.0.0.1:$metrics_port"
log = "warn"
worker_threads = 2
[source]
embedded_path = "$out/demo.db"
[cache]
ttl_ms = 1
negative_ttl_ms = 1
stale_grace_ms = 0
[read]
tiers = $1
[redis]
a = { urls = ["redis://127.0.0.1:$redis_a/"] }
b = { urls = ["redis://127.0.0.1:$redis_b/"] }
EOF
}

# Fill both Redis through the write-back of a chain that ends at the database.
redis_config '["redis", "sql"]' >"$out/list-redis-fill.toml"
"$list_bin" --config "$out/list-redis-fill.toml" >"$out/list-redis-fill.log" 2>&1 &
fill_pid=$!
pids+=("$fill_pid")
wait_port "$list_port" "$fill_pid"
grpc_call "$list_port" "$list_path" "$out/request.bin" "$out/list-reply-fill.bin"
for _ in $(seq 1 100); do
    [[ $(redis-cli -p "$redis_a" DBSIZE) == "$batch" && $(redis-cli -p "$redis_b" DBSIZE) == "$batch" ]] && break
    sleep 0.1
done
say "redis keys after the write-back: a=$(redis-cli -p "$redis_a" DBSIZE) b=$(redis-cli -p "$redis_b" DBSIZE)"
stop_pid "$fill_pid"

redis_config '["redis"]' >"$out/list-redis.toml"
"$list_bin" --config "$out/list-redis.toml" >"$out/list-redis.log" 2>&1 &
list_pid=$!
pids+=("$list_pid")
wait_port "$list_port" "$list_pid"
grpc_call "$list_port" "$list_path" "$out/request.bin" "$out/list-reply-redis.bin"
[[ $(($(stat -c %s "$out/list-reply-redis.bin") - 5)) -le $((reply_bytes + batch * 2)) ]] ||
    { echo "redis reply differs in size from the memory reply" >&2; exit 1; }

for port in "$redis_a" "$redis_b"; do redis-cli -p "$port" CONFIG RESETSTAT >/dev/null; done
hits_before="$(metric pricing_chain_hits_total 'tier="memory"') $(metric pricing_chain_hits_total 'tier="redis"') $(metric pricing_chain_coalesced_total)"
redis_peak=$(list_peak_run list-redis "$list_port" "$list_path")
read -r mem0 red0 coal0 <<<"$hits_before"
say "list (redis, ttl 1 ms) req/s: $redis_peak  [$h2 ...]"
say "  redis a: $(redis_stats "$redis_a"); redis b: $(redis_stats "$redis_b")"
say "  requests sent incl. warm-up: $(($(metric pricing_grpc_requests_total 'BatchGetPrices') - 1)); ids from memory: $(($(metric pricing_chain_hits_total 'tier="memory"') - mem0)), from redis: $(($(metric pricing_chain_hits_total 'tier="redis"') - red0)), joined a fetch in flight: $(($(metric pricing_chain_coalesced_total) - coal0))"

for port in "$redis_a" "$redis_b"; do redis-cli -p "$port" CONFIG RESETSTAT >/dev/null; done
mem0=$(metric pricing_chain_hits_total 'tier="memory"')
# One batch every 5 ms (a timing script: --rps sends what is due in bursts,
# and a burst would be answered from the 1 ms cache).
paced_n=2000
awk -v n="$paced_n" -v uri="http://127.0.0.1:$list_port$list_path" \
    'BEGIN { for (i = 0; i < n; i++) printf "%d.000\t%s\n", i * 5, uri }' >"$out/every-5ms.tsv"
h2load -c 1 -m 1 -t 1 --timing-script-file "$out/every-5ms.tsv" \
    -H 'content-type: application/grpc' -H 'te: trailers' -d "$out/request.bin" >"$out/list-redis-paced.txt"
say "paced: h2load -c 1 -m 1 -t 1 --timing-script-file every-5ms.tsv ($paced_n batches, one every 5 ms > the 1 ms ttl)"
say "  $(grep '^requests:' "$out/list-redis-paced.txt")"
say "  redis a: $(redis_stats "$redis_a"); redis b: $(redis_stats "$redis_b"); batches answered from memory (sent < 1 ms after the previous one): $((($(metric pricing_chain_hits_total 'tier="memory"') - mem0) / batch))"
stop_pid "$list_pid"

say "load after: $(uptime)"
