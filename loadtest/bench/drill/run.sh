#!/usr/bin/env bash
# The failover drill on a real stack (issue 8 item 3): one Redis of the pair
# killed while the failover-drill load runs, and restarted (empty) later.
#
#   bash loadtest/bench/drill/run.sh
#
# What it does, every step on 127.0.0.1 with free ports and a temp dir:
#   1. starts two redis-server (redis-a, redis-b; no persistence) and two
#      hbase-thrift-test-server (hbase-a, hbase-b; table pricing_goods);
#   2. starts the detail server on an embedded SQLite file (seeded with the
#      demo catalogue on first start) with the Redis pair in front of it;
#   3. fills all four stores from that SQLite file with
#      `pricing-projector full` and checks each Redis holds every goods;
#   4. starts the list server with tiers ["redis", "hbase"] over the pairs;
#      both servers read control.toml of this folder (every pair split
#      50/50, default timeouts and breakers, one caller account);
#   5. runs loadtest/scripts/failover-drill.sh: it starts pricing-load with
#      loadtest/scenarios/failover-drill.toml ($DURATION s, windows at the
#      kill and restart offsets), kills redis-a with SIGKILL at $KILL_AT s
#      and starts it again at $RESTART_AT s (empty: it had no persistence;
#      the list server refills it by write-back from HBase);
#   6. reads pricing_dual_failover_total and pricing_dual_errors_total from
#      both servers' /metrics before and after, the per-tier read counters,
#      and each Redis's key count at the end.
#
# Environment: OUT (default target/bench-drill), DURATION (default 30),
# KILL_AT (default 10), RESTART_AT (default 20), SKIP_BUILD=1 to use the
# binaries already built (in $CARGO_TARGET_DIR when set, else target/; the
# build honours it too). Results: $OUT/summary.txt and $OUT/load/
# (report.json with windows and timeline, summary.txt, SVG plots).
# Not part of the test command. Stops only the processes it started
# (the restarted redis-a included, found by its port and checked to be a
# redis-server before it is stopped).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${OUT:-$root/target/bench-drill}
duration=${DURATION:-30}
kill_at=${KILL_AT:-10}
restart_at=${RESTART_AT:-20}
target_dir=${CARGO_TARGET_DIR:-$root/target}
bin=$target_dir/release

for tool in redis-server redis-cli curl python3 ss; do
    command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: '$tool' is missing" >&2; exit 2; }
done
if [ -z "${SKIP_BUILD:-}" ]; then
    (cd "$root" && cargo build --release --locked -p pricing-list -p pricing-detail -p pricing-loadtest \
        -p pricing-projector)
    # The test server is test support (feature testsuite): a build of its
    # own, so that the servers above are built without it, as in production.
    (cd "$root" && cargo build --release --locked -p pricing-store-hbase --features testsuite \
        --bin hbase-thrift-test-server)
fi

# say, free_port, wait_port, stop_pid, cleanup (stops $pids, removes $work)
# shellcheck source=../common.sh
. "$here/../common.sh"

bench_start drill
# Before common.sh's cleanup stops the pids and removes $work: the drill
# restarts redis-a detached (setsid), so it is found by its port.
cleanup_first() {
    if [ -n "${redis_a_port:-}" ]; then
        local p
        p=$(ss -Hltnp "sport = :$redis_a_port" 2>/dev/null | grep -oE 'pid=[0-9]+' | head -n1 | cut -d= -f2 || true)
        if [ -n "$p" ] && [[ "$(cat "/proc/$p/comm" 2>/dev/null)" == redis-server* ]]; then stop_pid "$p"; fi
    fi
}

metric() { # metrics port, name, label filter (a grep pattern): summed
    curl -s "http://127.0.0.1:$1/metrics" | awk -v name="$2" -v want="${3:-.}" '
        ($1 ~ "^" name "([{]|$)") && ($0 ~ want) {s += $NF} END {printf "%d", s}'
}

say "# failover drill on a real stack, $(date -u +%FT%TZ), $(nproc) cores, commit $(git -C "$root" rev-parse --short HEAD)"

# ---- two Redis, two HBase Thrift test servers ----------------------------------------
redis_a_port=$(free_port)
redis_b_port=$(free_port)
for name in a b; do
    port_var=redis_${name}_port
    mkdir -p "$work/redis-$name"
    redis-server --port "${!port_var}" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/redis-$name" \
        >"$work/redis-$name.log" 2>&1 &
    pids+=("$!")
    wait_port "${!port_var}" "$!"
done
hbase_ports=()
for name in a b; do
    port=$(free_port)
    "$bin/hbase-thrift-test-server" --listen "127.0.0.1:$port" --table pricing_goods >"$work/hbase-$name.log" 2>&1 &
    pids+=("$!")
    wait_port "$port" "$!"
    hbase_ports+=("$port")
done
say "redis-a 127.0.0.1:$redis_a_port, redis-b 127.0.0.1:$redis_b_port ($(redis-server --version | awk '{print $3}')); hbase-a 127.0.0.1:${hbase_ports[0]}, hbase-b 127.0.0.1:${hbase_ports[1]} (hbase-thrift-test-server)"

redis_pair="a = { urls = [\"redis://127.0.0.1:$redis_a_port/\"] }
b = { urls = [\"redis://127.0.0.1:$redis_b_port/\"] }"
hbase_pair="a = { addresses = [\"127.0.0.1:${hbase_ports[0]}\"] }
b = { addresses = [\"127.0.0.1:${hbase_ports[1]}\"] }"
cp "$here/control.toml" "$work/control.toml"
token=$(sed -n 's/^token = "\(.*\)"/\1/p' "$here/control.toml")

# ---- detail server: seeds the embedded SQLite file on first start -------------------
detail_port=$(free_port)
detail_metrics=$(free_port)
cat >"$work/detail.toml" <<EOF
version = 1

[server]
listen = "127.0.0.1:$detail_port"
metrics_listen = "127.0.0.1:$detail_metrics"
drain_grace_ms = 0
log = "warn"
control_file = "$work/control.toml"

[source]
embedded_path = "$work/pricing.db"

[redis]
$redis_pair
EOF
"$bin/pricing-detail" --config "$work/detail.toml" >"$work/detail.log" 2>&1 &
detail_pid=$!
pids+=("$detail_pid")
wait_port "$detail_port" "$detail_pid"
wait_port "$detail_metrics" "$detail_pid"
say "detail server pid $detail_pid on 127.0.0.1:$detail_port (metrics $detail_metrics): embedded SQLite $work/pricing.db, Redis pair"

# ---- the projector fills the four stores -----------------------------------------------
cat >"$work/projector.toml" <<EOF
version = 1

[source]
database_url = "sqlite://$work/pricing.db"

[redis]
$redis_pair

[hbase]
$hbase_pair
EOF
started=$SECONDS
"$bin/pricing-projector" --config "$work/projector.toml" full >"$work/projector.log" 2>&1 ||
    { cat "$work/projector.log" >&2; echo "run.sh: projector full failed" >&2; exit 1; }
keys_a=$(redis-cli -p "$redis_a_port" DBSIZE)
keys_b=$(redis-cli -p "$redis_b_port" DBSIZE)
say "projector full: $((SECONDS - started)) s; redis-a holds $keys_a keys, redis-b $keys_b"
[ "$keys_a" -ge 10000 ] && [ "$keys_a" = "$keys_b" ] ||
    { echo "run.sh: the Redis pair was not filled (a $keys_a, b $keys_b)" >&2; exit 1; }

# ---- list server over the pairs -----------------------------------------------------------
list_port=$(free_port)
list_metrics=$(free_port)
cat >"$work/list.toml" <<EOF
version = 1

[server]
listen = "127.0.0.1:$list_port"
metrics_listen = "127.0.0.1:$list_metrics"
drain_grace_ms = 0
log = "warn"
control_file = "$work/control.toml"

[read]
tiers = ["redis", "hbase"]

[redis]
$redis_pair

[hbase]
$hbase_pair
EOF
"$bin/pricing-list" --config "$work/list.toml" >"$work/list.log" 2>&1 &
list_pid=$!
pids+=("$list_pid")
wait_port "$list_port" "$list_pid"
wait_port "$list_metrics" "$list_pid"
say "list server pid $list_pid on 127.0.0.1:$list_port (metrics $list_metrics): tiers [redis, hbase]"
cp "$work/list.toml" "$work/detail.toml" "$work/projector.toml" "$out/" 2>/dev/null || true

# ---- the drill -------------------------------------------------------------------------------
counters() { # label
    say "$1: list  $(metric "$list_metrics" pricing_dual_failover_total) failovers, $(metric "$list_metrics" pricing_dual_errors_total) cluster errors; detail $(metric "$detail_metrics" pricing_dual_failover_total) failovers, $(metric "$detail_metrics" pricing_dual_errors_total) cluster errors"
}
counters "before"
export PRICING_CALLER=drill PRICING_CALLER_TOKEN=$token
load=("$bin/pricing-load" --scenario "$root/loadtest/scenarios/failover-drill.toml"
    --list "127.0.0.1:$list_port" --detail "127.0.0.1:$detail_port" --duration "${duration}s"
    --windows "$kill_at,$restart_at" --out "$out/load" --log warn)
drill=(bash "$root/loadtest/scripts/failover-drill.sh" --port "$redis_a_port" --kill-at "$kill_at"
    --restart-at "$restart_at")
say ""
say "load before: $(uptime)"
say "command: PRICING_CALLER=drill PRICING_CALLER_TOKEN=... ${drill[*]#"$root/"} -- ${load[*]#"$root/"}"
# The drill script writes the restart config and the restarted node's log under TMPDIR.
TMPDIR=$work "${drill[@]}" -- "${load[@]}" >"$work/load.out" 2>"$work/drill.err" ||
    { cat "$work/drill.err" >&2; echo "run.sh: the drill failed" >&2; exit 1; }
grep 'failover-drill:' "$work/drill.err" | tee -a "$summary" >&2
tee -a "$summary" <"$work/load.out" >&2
say "load after: $(uptime)"
counters "after"
say "per second of the load (by completion; every call): second calls/not-OK p99/max in ms"
python3 - "$out/load/report.json" <<'PY' | tee -a "$summary" >&2
import json, sys
seconds = json.load(open(sys.argv[1]))["timeline"]
for row in range(0, len(seconds), 6):
    print("  ".join(f"{s['second']:>2}: {s['count']}/{s['notOk']} {s['p99'] / 1e6:5.1f}/{s['max'] / 1e6:5.1f}"
                    for s in seconds[row:row + 6]))
PY

# ---- what the servers saw --------------------------------------------------------------------
say ""
say "## list server /metrics after the drill"
for name in pricing_dual_failover_total pricing_dual_errors_total pricing_dual_requests_total pricing_breaker_state \
    pricing_chain_hits_total pricing_chain_misses_total pricing_chain_tier_errors_total pricing_chain_write_back_total \
    pricing_chain_stale_served_total; do
    curl -s "http://127.0.0.1:$list_metrics/metrics" | grep -E "^$name(\{| )" | tee -a "$summary" >&2 || true
done
say ""
say "## detail server /metrics after the drill"
for name in pricing_dual_failover_total pricing_dual_errors_total pricing_detail_reads_total pricing_detail_fallback_total \
    pricing_chain_tier_errors_total pricing_chain_write_back_total; do
    curl -s "http://127.0.0.1:$detail_metrics/metrics" | grep -E "^$name(\{| )" | tee -a "$summary" >&2 || true
done
say ""
say "keys at the end: redis-a (restarted empty at t+${restart_at}s) $(redis-cli -p "$redis_a_port" DBSIZE), redis-b $(redis-cli -p "$redis_b_port" DBSIZE)"
say "results: $out"
