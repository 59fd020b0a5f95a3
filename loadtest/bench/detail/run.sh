#!/usr/bin/env bash
# The detail server's benchmark: GetGoodsPrice served from Redis and a
# 10-line PreviewOrder, each at its peak (closed loop) and at half the peak
# (open loop), over a real MariaDB and two real redis-server processes.
#
#   bash loadtest/bench/detail/run.sh
#
# What it does, every step on 127.0.0.1 with free ports and temp dirs:
#   1. builds the release binaries (pricing-detail, pricing-load), the
#      helper detail-bench-prep (prep/, its own workspace, built with the
#      project's Cargo.lock) and ../shared/tools/grpc-ceiling (beside the
#      repository root), all into one target folder: $CARGO_TARGET_DIR
#      when set, else target/;
#   2. starts a throwaway mariadbd (as tests/run.sh does), creates the
#      database `pricing` and seeds the demo catalogue into it
#      (`detail-bench-prep seed`: migrations, then pricing_store_sql::demo::seed);
#   3. starts two redis-server (no persistence) and the detail server with
#      the Redis pair in front of MySQL, no control file;
#   4. warms Redis through the server (`detail-bench-prep warm`: one
#      GetGoodsPrice per live goods, then again until every reply says
#      TIER_REDIS);
#   5. GetGoodsPrice against the bare gRPC ceiling: h2load closed loop (the
#      flags of list-read-path.sh) against the detail server and against
#      grpc-ceiling answering exactly the detail reply's size, both servers
#      on SERVER_CPU, h2load on LOAD_CPU, alternating, twice each: the req/s
#      of each run and GetGoodsPrice / ceiling (CEILING=0 skips it);
#   6. per RPC (GetGoodsPrice, PreviewOrder with 10 lines): closed loop at
#      each concurrency in $CONCURRENCY, the best calls/s is the peak; then
#      open loop at half that peak, and at a quarter of it (where the tail
#      goes when the rate drops). Around each run it reads the detail
#      server's counters (reads by source, write-backs, MySQL fallbacks),
#      each Redis's command counts, MariaDB's SELECT count, the server's
#      own latency histogram, the CPU time of the server, the Redis pair and
#      MariaDB, and the driver's own;
#   7. stops everything it started and removes its temp dir.
#
# Environment: OUT (default target/bench-detail), DURATION seconds per run
# (default 15), CONCURRENCY (closed-loop workers to try, default "16 32 64"),
# GOODS (default 10000), SKIP_BUILD=1 to use the binaries already built,
# SERVER_CPU and LOAD_CPU to pin the detail server (and the ceiling) and the
# load generators (pricing-load, h2load) to those cores with taskset, and
# STORES_CPU for both redis-server and mariadbd (default: SERVER_CPU when
# that is set, so that the driver's core is its own; the pinned setup:
# `SERVER_CPU=0 LOAD_CPU=1 bash loadtest/bench/detail/run.sh`). The
# summary's "pinning:" line says what was asked and its "cpu affinity:" line
# what the kernel reports for each process. CEILING=0 skips step 5.
# H2LOAD=0 skips the h2load peak and paced runs of both RPCs (p99 at half
# the peak from h2load's per-request log; PACED_CLIENTS connections, default
# 64); PRICING_LOAD=0 stops after them. Every pricing-load
# open-loop run says whether the driver kept its schedule (pricing-load's
# lateness per second); a run where it fell behind by more than 2 ms in some
# second is marked UNFAIR, not to be quoted.
# Results: $OUT/summary.txt, and per run $OUT/<run>/ (report.json,
# summary.txt, SVG plots from pricing-load). Not part of the test command.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${OUT:-$root/target/bench-detail}
duration=${DURATION:-15}
concurrency=${CONCURRENCY:-16 32 64}
goods=${GOODS:-10000}
target_dir=${CARGO_TARGET_DIR:-$root/target}
bin=$target_dir/release
shared=$(cd "$root/.." && pwd)/shared

for tool in mariadbd redis-server redis-cli curl python3 h2load; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
        { echo "run.sh: '$tool' is missing (bash tests/run.sh installs the Debian packages)" >&2; exit 2; }
done

if [ -z "${SKIP_BUILD:-}" ]; then
    (cd "$root" && cargo build --release --locked -p pricing-detail -p pricing-loadtest)
    # Same dependency versions as the project: start from its lock file.
    cp "$root/Cargo.lock" "$here/prep/Cargo.lock"
    cargo build --release --manifest-path "$here/prep/Cargo.toml" --target-dir "$target_dir"
    # The bare gRPC ceiling (beside the repository: ../shared from its root),
    # into the same target folder as list-read-path.sh builds it.
    cargo build --release --manifest-path "$shared/tools/grpc-ceiling/Cargo.toml" --target-dir "$target_dir"
fi
prep=$bin/detail-bench-prep
load=$bin/pricing-load
# The stores (both redis-server and mariadbd) go where the server goes unless
# STORES_CPU says otherwise: the load generator's core stays its own.
stores_cpu=${STORES_CPU:-${SERVER_CPU:-}}
pin_server=()
pin_load=()
pin_stores=()
if [ -n "${SERVER_CPU:-}" ]; then pin_server=(taskset -c "$SERVER_CPU"); fi
if [ -n "${LOAD_CPU:-}" ]; then pin_load=(taskset -c "$LOAD_CPU"); fi
if [ -n "$stores_cpu" ]; then pin_stores=(taskset -c "$stores_cpu"); fi

# say, free_port, wait_port, stop_pid, cleanup (stops $pids, removes $work)
# shellcheck source=../common.sh
. "$here/../common.sh"

# Progress and figures go to stderr and the summary (stdout is kept for values).
bench_start detail

say "# detail server benchmark, $(date -u +%FT%TZ), $(nproc) cores, commit $(git -C "$root" rev-parse --short HEAD)"
say "pinning: detail server and grpc-ceiling on cpu ${SERVER_CPU:-any}, redis-server x2 and mariadbd on cpu ${stores_cpu:-any}, pricing-load and h2load on cpu ${LOAD_CPU:-any}"
say "load before: $(uptime)"

# ---- MariaDB, seeded with the demo catalogue ----------------------------------
start_mariadb
say "mariadb: $("$(command -v mariadbd || echo /usr/sbin/mariadbd)" --version | awk '{print $3}') on 127.0.0.1:$db_port"
say "seed: $("$prep" seed --database-url "$db_url" --goods "$goods")"

# ---- two Redis ----------------------------------------------------------------
redis_ports=()
redis_pids=()
for name in a b; do
    start_redis "$name"
    redis_pids+=("$redis_pid")
    redis_ports+=("$redis_port")
done
say "redis: $(redis-server --version | awk '{print $3}') a=127.0.0.1:${redis_ports[0]} b=127.0.0.1:${redis_ports[1]}"

# ---- the detail server --------------------------------------------------------
detail_port=$(free_port)
metrics_port=$(free_port)
cat >"$out/detail.toml" <<EOF
version = 1

[server]
listen = "127.0.0.1:$detail_port"
metrics_listen = "127.0.0.1:$metrics_port"
log = "warn"
${EVENT_INTERVAL:+event_interval = $EVENT_INTERVAL}

[source]
database_url = "$db_url"
max_connections = 32
acquire_timeout_ms = 100
statement_timeout_ms = 300

[redis]
a = { urls = ["redis://127.0.0.1:${redis_ports[0]}/"], response_timeout_ms = 30 }
b = { urls = ["redis://127.0.0.1:${redis_ports[1]}/"], response_timeout_ms = 30 }

[checkout]
quote_secret = "detail benchmark"
promotions_cache_ms = 2000
EOF
"${pin_server[@]}" "$bin/pricing-detail" --config "$out/detail.toml" >"$out/detail.log" 2>&1 &
detail_pid=$!
pids+=("$detail_pid")
wait_port "$detail_port" "$detail_pid"
say "detail server: $out/detail.toml (no control file: caller accounts and quotas not enforced)"

# ---- warm Redis through the server's write-back -------------------------------
"$prep" warm --detail "http://127.0.0.1:$detail_port" --goods "$goods" | tee "$out/warm.txt" >&2
say "warm: $(tail -n 1 "$out/warm.txt")"
say "redis keys: a=$(redis-cli -p "${redis_ports[0]}" DBSIZE) b=$(redis-cli -p "${redis_ports[1]}" DBSIZE)"
# What the kernel says each process may run on (taskset -p), to check the pinning.
affinity() { taskset -pc "$1" | sed 's/.*: //'; }
say "cpu affinity: detail server $(affinity "$detail_pid"), mariadbd $(affinity "$db_pid"), redis a $(affinity "${redis_pids[0]}"), redis b $(affinity "${redis_pids[1]}")"

metrics() { curl -s "http://127.0.0.1:$metrics_port/metrics"; }

# Counters of the detail path and of both Redis, as one line of name=value.
counters() {
    metrics | awk '
        /^pricing_detail_reads_total\{/ { match($0, /source="[^"]*"/); k = "reads_" substr($0, RSTART + 8, RLENGTH - 9); c[k] += $NF }
        /^pricing_chain_write_back_total\{.*tier="redis"/ { c["write_backs"] += $NF }
        /^pricing_detail_fallback_total/ { c["fallbacks"] += $NF }
        /^pricing_chain_tier_errors_total\{.*tier="redis"/ { c["fallbacks"] += $NF }
        /^pricing_store_errors_total\{.*kind="breaker_open".*store="mysql"|^pricing_store_errors_total\{.*store="mysql".*kind="breaker_open"/ { c["mysql_refused"] += $NF }
        /^pricing_grpc_request_duration_seconds_bucket\{.*service="DetailPricing"/ {
            if (match($0, /le="(0\.001|0\.0025|0\.005)"/)) c["server_le_" substr($0, RSTART + 4, RLENGTH - 5)] += $NF }
        /^pricing_grpc_request_duration_seconds_count\{.*service="DetailPricing"/ { c["server_count"] += $NF }
        END { for (k in c) printf "%s=%d\n", k, c[k] }'
    mariadb --no-defaults -uroot -h127.0.0.1 -P"$db_port" -N -e "SHOW GLOBAL STATUS LIKE 'Com_select'" |
        awk '{printf "mysql_selects=%d\n", $2}'
    # CPU time (ticks of 1/100 s: utime + stime) of each process we started.
    local name pid
    for name in detail:$detail_pid mariadbd:$db_pid redis_a:${redis_pids[0]} redis_b:${redis_pids[1]}; do
        pid=${name#*:}
        awk -v n="${name%%:*}" '{printf "cpu_ticks_%s=%d\n", n, $14 + $15}' "/proc/$pid/stat"
    done
    for i in 0 1; do
        redis-cli -p "${redis_ports[$i]}" INFO commandstats | tr -d '\r' | awk -F'[:=,]' -v r="$([ "$i" = 0 ] && echo a || echo b)" '
            /^cmdstat_/ { n = substr($1, 9); if (n != "info" && n != "dbsize") printf "redis_%s_%s=%d\n", r, n, $3 }'
    done
}

# What changed between two `counters` outputs (files), as "name +delta ...";
# CPU ticks as seconds and as a share of one core over the run.
delta() {
    python3 - "$1" "$2" "$duration" <<'PY'
import sys
def read(p):
    d = {}
    for line in open(p):
        k, _, v = line.strip().partition("=")
        if k:
            d[k] = int(v)
    return d
a, b = read(sys.argv[1]), read(sys.argv[2])
seconds = float(sys.argv[3])
parts = []
for k in sorted(b):
    d = b[k] - a.get(k, 0)
    if k.startswith("cpu_ticks_"):
        parts.append(f"cpu_{k[10:]} {d / 100:.2f}s ({d / seconds:.0f}% of a core)")
    elif d and not k.startswith("server_"):
        parts.append(f"{k} +{d}")
print(" ".join(parts) or "(none)")
PY
}

# CPU time per call (microseconds) of the server, the Redis pair and MariaDB:
# the figure least moved by what else the machine runs.
per_call() { # before after report.json
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys
def read(p):
    return {k: int(v) for k, _, v in (l.strip().partition("=") for l in open(p)) if k}
a, b = read(sys.argv[1]), read(sys.argv[2])
calls = json.load(open(sys.argv[3]))["count"]
us = lambda *keys: sum(b[k] - a[k] for k in keys) * 10_000 / max(calls, 1)
print(f"detail {us('cpu_ticks_detail'):.0f} us, redis a+b {us('cpu_ticks_redis_a', 'cpu_ticks_redis_b'):.0f} us, "
      f"mariadb {us('cpu_ticks_mariadbd'):.0f} us")
PY
}

# The server's own view of the same calls: its request-duration histogram
# (from the handler's start to its reply, no transport and no client), as
# shares of the calls under the bucket edges of 1, 2.5 and 5 ms.
server_time() { # before after
    python3 - "$1" "$2" <<'PY'
import sys
def read(p):
    return {k: int(v) for k, _, v in (l.strip().partition("=") for l in open(p)) if k}
a, b = read(sys.argv[1]), read(sys.argv[2])
d = lambda k: b.get(k, 0) - a.get(k, 0)
n = d("server_count")
print(", ".join(f"{100 * d('server_le_' + le) / max(n, 1):.2f}% under {ms} ms"
                for le, ms in (("0.001", 1), ("0.0025", 2.5), ("0.005", 5))) + f" ({n} calls)")
PY
}

# One pricing-load run: name, then its flags. Prints the command and a
# line of figures into the summary; the whole table stays in $out/<name>/.
run() {
    local name=$1
    shift
    local cmd=("${pin_load[@]}" "$load" --detail "127.0.0.1:$detail_port" --duration "${duration}s" --out "$out/$name" "$@")
    counters >"$out/$name.before"
    # The driver's own CPU time (it shares the 2 cores with everything else).
    /usr/bin/time -f "%U %S" -o "$out/$name.time" "${cmd[@]}" >"$out/$name.txt" 2>"$out/$name.log"
    counters >"$out/$name.after"
    say ""
    say "## $name"
    say "load: $(uptime | sed 's/.*load average/load average/')"
    say "\$ pricing-load ${*} --detail 127.0.0.1:PORT --duration ${duration}s"
    python3 - "$out/$name/report.json" <<'PY' | tee -a "$summary" >&2
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["percentiles"]["ok"]
ms = lambda ns: f"{ns / 1e6:.2f}"
codes = " ".join(f"{k}={v}" for k, v in sorted(r["statusCodeDistribution"].items()))
print(f"calls/s {r['rps']:.1f}; mean {ms(r['average'])} ms (all calls); OK calls: p50 {ms(ok['p50'])} "
      f"p90 {ms(ok['p90'])} p99 {ms(ok['p99'])} p99.9 {ms(ok['p999'])} max {ms(ok['max'])} ms; codes {codes}")
seconds = sorted(t["p99"] for t in r.get("timeline", []) if t["count"] > 0)
if seconds:
    print(f"p99 of each second: best {ms(seconds[0])}, median {ms(seconds[len(seconds) // 2])}, "
          f"worst {ms(seconds[-1])} ms ({len(seconds)} seconds)")
sent = r.get("latencyByCodeFromSend", {}).get("OK")
if sent and r.get("scheduled"):
    # Open loop: the same OK calls measured from their actual send (the driver's
    # timer sends each call up to 1 ms after its due time).
    print(f"from each call's actual send: mean {ms(sent['average'])} p50 {ms(sent['p50'])} p90 {ms(sent['p90'])} "
          f"p99 {ms(sent['p99'])} p99.9 {ms(sent['p999'])} max {ms(sent['max'])} ms")
if r.get("scheduled"):
    print(f"scheduled {r['scheduled']}, sent {r['sent']}, most behind schedule {ms(r['maxBehind'])} ms")
    behind = r.get("secondsBehind", 0)
    per_second = r.get("behindPerSecond", [])
    if behind:
        print(f"UNFAIR RUN: the driver was more than {ms(r['behindLimit'])} ms late in {behind} of {len(per_second)} "
              f"seconds: these figures measure the driver too; do not quote them")
    elif per_second:
        print(f"fair run: the driver sent every call within {ms(r['behindLimit'])} ms of its due time "
              f"(worst second {ms(max(per_second))} ms)")
PY
    say "counters: $(delta "$out/$name.before" "$out/$name.after")"
    say "server time: $(server_time "$out/$name.before" "$out/$name.after")"
    say "cpu per call: $(per_call "$out/$name.before" "$out/$name.after" "$out/$name/report.json")"
    say "driver cpu: $(awk -v d="$duration" '{printf "%.2f s user+sys (%.0f%% of one core)", $1 + $2, 100 * ($1 + $2) / d}' "$out/$name.time")"
}

# Closed loop at each concurrency; prints the best calls/s (integer).
peak() { # name-prefix, then the mix flags
    local prefix=$1 best=0 rps
    shift
    for c in $concurrency; do
        run "$prefix-closed-c$c" --mode closed -c "$c" "$@"
        rps=$(python3 -c "import json; print(int(json.load(open('$out/$prefix-closed-c$c/report.json'))['rps']))")
        [ "$rps" -gt "$best" ] && best=$rps
    done
    echo "$best"
}

# ---- GetGoodsPrice against the bare gRPC ceiling, both under h2load -------------
# The same closed loop as list-read-path.sh, from LOAD_CPU, against the detail
# server and against grpc-ceiling (on SERVER_CPU too, with as many workers as
# the detail server's runtime has: one per core it may run on), answering
# exactly the detail reply's size; alternating, twice each. CEILING=0 skips it.
detail_path=/pricing.v1.DetailPricing/GetGoodsPrice
ceiling_path=/ceiling.v1.Ceiling/Get
if [ "${CEILING:-1}" != 0 ]; then
    # GetGoodsPriceRequest { goods_id: 101, context: { pin: "bench", channel: APP } }.
    # Its field 1 (a uint64 varint) is one element of ceiling.v1.GetRequest's
    # `repeated uint64 ids = 1` (the unpacked encoding, which a parser must
    # accept for a packed field) and field 2 is unknown there and skipped: the
    # same bytes are a valid request to both servers.
    body=$out/get-goods-price.bin
    python3 "$here/../grpc_body.py" --one 101 >"$body"
    grpc_call "$detail_port" "$detail_path" "$body" "$out/detail-reply.bin"
    reply_bytes=$(($(stat -c %s "$out/detail-reply.bin") - 5))
    payload=$(ceiling_payload "$reply_bytes")
    ceiling_workers=$("${pin_server[@]}" nproc)
    ceiling_port=$(free_port)
    "${pin_server[@]}" "$bin/grpc-ceiling" "127.0.0.1:$ceiling_port" "$payload" "$ceiling_workers" \
        >"$out/ceiling.log" 2>&1 &
    ceiling_pid=$!
    pids+=("$ceiling_pid")
    wait_port "$ceiling_port" "$ceiling_pid"
    grpc_call "$ceiling_port" "$ceiling_path" "$body" "$out/ceiling-reply.bin"
    say ""
    say "## GetGoodsPrice against the bare gRPC ceiling (h2load, closed loop, alternating)"
    say "request: GetGoodsPriceRequest(goods 101, pin \"bench\", channel APP), $(stat -c %s "$body") bytes framed, the same bytes to both (ceiling.v1.GetRequest reads ids [101])"
    say "reply: detail $reply_bytes bytes of protobuf, ceiling $(($(stat -c %s "$out/ceiling-reply.bin") - 5)) bytes (payload $payload); ceiling workers: $ceiling_workers (cpu affinity $(affinity "$ceiling_pid"))"
    say "\$ ${pin_load[*]}${pin_load[*]:+ }h2load -D $duration --warm-up-time 2 -c 16 -m 16 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -d get-goods-price.bin http://127.0.0.1:PORT{$detail_path,$ceiling_path}"
    grpc_codes "$metrics_port" GetGoodsPrice >"$out/h2load-codes.before"
    h2load_pin=(${pin_load[@]+"${pin_load[@]}"})
    ceiling1=$(h2_peak "$out/h2load-ceiling-1.txt" "$duration" "$body" "http://127.0.0.1:$ceiling_port$ceiling_path")
    get1=$(h2_peak "$out/h2load-get-goods-price-1.txt" "$duration" "$body" "http://127.0.0.1:$detail_port$detail_path")
    ceiling2=$(h2_peak "$out/h2load-ceiling-2.txt" "$duration" "$body" "http://127.0.0.1:$ceiling_port$ceiling_path")
    get2=$(h2_peak "$out/h2load-get-goods-price-2.txt" "$duration" "$body" "http://127.0.0.1:$detail_port$detail_path")
    h2load_pin=()
    grpc_codes "$metrics_port" GetGoodsPrice >"$out/h2load-codes.after"
    stop_pid "$ceiling_pid"
    say "grpc-ceiling req/s: $ceiling1, $ceiling2"
    say "detail GetGoodsPrice req/s: $get1, $get2"
    say "GetGoodsPrice / ceiling: $(python3 -c "print(f'{($get1 + $get2) / ($ceiling1 + $ceiling2):.0%}')") (both runs together; run 1 $(python3 -c "print(f'{$get1 / $ceiling1:.0%}')"), run 2 $(python3 -c "print(f'{$get2 / $ceiling2:.0%}')"))"
    say "grpc codes of GetGoodsPrice at the detail server over the h2load runs (h2load counts HTTP status only; a timed run ends by resetting the streams still in flight, which the server counts as a non-OK code): $(codes_delta "$out/h2load-codes.before" "$out/h2load-codes.after")"
fi

# ---- h2load: each RPC's peak, then p99 at half of it (H2LOAD=0 skips) ----------
# common.sh's h2_half_peak from LOAD_CPU: PACED_CLIENTS connections (default
# 64) of one stream, the closed-loop peak of that shape, then paced at half
# of it with the connections started together (h2load's default: bursts of
# 64 requests, a burst of 64 previews is about 2.5 ms of one core) and 1 ms
# apart (arrivals as even as a random stream's: the figure to quote); the
# server's histogram, CPU and counters around each paced run. One fixed
# request per RPC (h2load sends one body): GetGoodsPrice of goods 101 (a
# Redis read per call: no memory cache; calls in flight together share one
# read), and a PreviewOrder of goods 101..110 (the same cart every call, so
# its promotions and coupons come from the preview cache: the best case;
# the pricing-load runs below send a random cart each call).
paced_counters() { # before|after stem (h2_half_peak's hook)
    counters >"$2.$1"
    if [ "$1" = after ]; then
        say "    server time: $(server_time "$2.before" "$2.after")"
        say "    counters: $(delta "$2.before" "$2.after")"
    fi
}
paced() { # name body path
    h2load_pin=(${pin_load[@]+"${pin_load[@]}"})
    paced_hook=(paced_counters)
    h2_half_peak "$1" "$out/$1" "http://127.0.0.1:$detail_port$3" "$2" "$duration"
    h2load_pin=()
    paced_hook=()
}
if [ "${H2LOAD:-1}" != 0 ]; then
    preview_path=/pricing.v1.DetailPricing/PreviewOrder
    python3 "$here/../grpc_body.py" --one 101 >"$out/get-goods-price.bin"
    python3 "$here/../grpc_body.py" --preview 101 10 >"$out/preview-order-10.bin"
    grpc_call "$detail_port" "$preview_path" "$out/preview-order-10.bin" "$out/preview-reply.bin"
    say ""
    say "## h2load from cpu ${LOAD_CPU:-any}: peak (closed loop), then paced at half the peak (--rps), ${PACED_CLIENTS:-64} connections of one stream"
    paced h2load-get-goods-price "$out/get-goods-price.bin" "$detail_path"
    paced h2load-preview-order-10 "$out/preview-order-10.bin" "$preview_path"
fi
if [ "${PRICING_LOAD:-1}" = 0 ]; then
    say ""
    say "load after: $(uptime)"
    exit 0
fi

detail_flags=(--mix detail=100)
preview_flags=(--mix preview=100 --cart-lines 10)

get_peak=$(peak get-goods-price "${detail_flags[@]}")
say "GetGoodsPrice peak: $get_peak calls/s"
run get-goods-price-open-half --mode open --rate $((get_peak / 2)) -c 256 "${detail_flags[@]}"
run get-goods-price-open-quarter --mode open --rate $((get_peak / 4)) -c 256 "${detail_flags[@]}"

preview_peak=$(peak preview-order-10 "${preview_flags[@]}")
say "PreviewOrder (10 lines) peak: $preview_peak calls/s"
run preview-order-10-open-half --mode open --rate $((preview_peak / 2)) -c 256 "${preview_flags[@]}"
run preview-order-10-open-quarter --mode open --rate $((preview_peak / 4)) -c 256 "${preview_flags[@]}"

say ""
say "redis keys after: a=$(redis-cli -p "${redis_ports[0]}" DBSIZE) b=$(redis-cli -p "${redis_ports[1]}" DBSIZE)"
say "load after: $(uptime)"
