#!/usr/bin/env bash
# Freshness under a read load: how long a committed price change takes to
# reach a list answer and a detail answer, over the full stack, with every
# answer checked against the engine on the record of its version.
#
#   bash loadtest/bench/freshness.sh
#
# What it does, every step on 127.0.0.1 with free ports and a temp dir:
#   1. builds the release binaries (pricing-list, pricing-detail,
#      pricing-projector, pricing-load, pricing-freshness and the HBase
#      Thrift test server);
#   2. starts a throwaway mariadbd, creates the database `pricing` and seeds
#      the demo catalogue (`pricing-freshness --seed-demo`);
#   3. starts two redis-server and two hbase-thrift-test-server processes;
#   4. runs the projector's full sync into all four, then its incremental
#      loop (poll every $POLL_MS, push invalidation on);
#   5. starts the list server (memory cache 30 s, tiers redis then hbase)
#      and the detail server (Redis pair then MySQL, memory cache 30 s),
#      both subscribed to the projector's announcements;
#   6. checks one BatchGetPrices(20 ids from $LOAD_FIRST_ID) and one
#      GetGoodsPrice($LOAD_FIRST_ID) with curl (grpc-status 0), then measures
#      the list server's own peak in this stack: h2load closed loop, the
#      flags of list-read-path.sh, $LIST_PEAK_SECONDS s after 2 s warm-up;
#   7. runs the read load, open loop, for the probe's duration plus 10 s
#      (from 5 s before the first change): h2load --rps against the list
#      server at half that peak ($LIST_RATE instead when set) and a second
#      h2load against the detail server's GetGoodsPrice at $DETAIL_RATE
#      (READ_LOAD=pricing-load instead: pricing-load at $READ_RATE calls/s,
#      80% BatchGetPrices of 20 zipf ids, 20% GetGoodsPrice, as before);
#      while it runs, pricing-freshness ($CHANGE_RATE price changes/s for
#      $DURATION s), every answer checked as always;
#   8. prints the probe's table (p50/p99/max commit-to-answer per path,
#      wrong prices), the projector's pass time, the invalidation counters,
#      the list peak, the rate asked and achieved of each h2load with its
#      request and HTTP status counts (h2load counts HTTP status only), and
#      the gRPC codes both servers counted over the load (the probe's polls
#      included); stops everything it started.
#
# Environment: OUT (default target/bench-freshness), DURATION seconds of
# price changes (default 60), CHANGE_RATE (default 5), POLL_MS (projector
# poll, default 100), GOODS (default 10000), READ_LOAD (h2load, the default,
# or pricing-load), LIST_PEAK_SECONDS (default 10; 0 skips the peak and then
# needs LIST_RATE), LIST_RATE (list calls/s, default half the peak),
# DETAIL_RATE (GetGoodsPrice calls/s, default 2000, 0 for none),
# LIST_CLIENTS and DETAIL_CLIENTS (h2load connections, default 16 and 4:
# the per-client --rps is the rate divided by them, rounded up),
# LOAD_FIRST_ID (first id of the h2load batch, default 101), READ_RATE
# (pricing-load's calls/s, default 8000), SKIP_BUILD=1 to use the binaries
# already built (CARGO_TARGET_DIR or target/), PROFILE=debug to use debug
# builds (only to try the script: the figures are then the debug build's).
# Not part of the test command.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT:-$root/target/bench-freshness}
duration=${DURATION:-60}
change_rate=${CHANGE_RATE:-5}
read_load=${READ_LOAD:-h2load}
read_rate=${READ_RATE:-8000}
list_peak_seconds=${LIST_PEAK_SECONDS:-10}
list_rate=${LIST_RATE:-}
detail_rate=${DETAIL_RATE:-2000}
list_clients=${LIST_CLIENTS:-16}
detail_clients=${DETAIL_CLIENTS:-4}
load_first_id=${LOAD_FIRST_ID:-101}
poll_ms=${POLL_MS:-100}
goods=${GOODS:-10000}
target_dir=${CARGO_TARGET_DIR:-$root/target}
profile=${PROFILE:-release}
bin=$target_dir/$profile

case $read_load in
    h2load | pricing-load) ;;
    *) echo "freshness.sh: READ_LOAD is h2load or pricing-load, not '$read_load'" >&2; exit 2 ;;
esac
if [ "$read_load" = h2load ] && [ -z "$list_rate" ] && [ "$list_peak_seconds" = 0 ]; then
    echo "freshness.sh: LIST_PEAK_SECONDS=0 needs LIST_RATE (the h2load read load runs at half the peak)" >&2
    exit 2
fi
for tool in mariadbd redis-server redis-cli curl python3 h2load; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
        { echo "freshness.sh: '$tool' is missing (bash tests/run.sh installs the Debian packages)" >&2; exit 2; }
done

if [ -z "${SKIP_BUILD:-}" ]; then
    (cd "$root" && cargo build --release --locked -p pricing-list -p pricing-detail -p pricing-projector -p pricing-loadtest)
    (cd "$root" && cargo build --release --locked -p pricing-store-hbase --features testsuite --bin hbase-thrift-test-server)
fi

# say, free_port, wait_port, stop_pid, cleanup (stops $pids, removes $work)
# shellcheck source=common.sh
. "$here/common.sh"

bench_start freshness

say "# freshness under a read load, $(date -u +%FT%TZ), $(nproc) cores, $profile build, commit $(git -C "$root" rev-parse --short HEAD)"
say "load before: $(uptime)"

# ---- MariaDB, seeded with the demo catalogue ----------------------------------
start_mariadb
say "mariadb on 127.0.0.1:$db_port; $("$bin/pricing-freshness" --database-url "$db_url" --seed-demo "$goods")"

# ---- two Redis, two HBase test servers ----------------------------------------
redis_ports=()
for name in a b; do
    start_redis "$name"
    redis_ports+=("$redis_port")
done
hbase_ports=()
for name in a b; do
    port=$(free_port)
    RUST_LOG=warn "$bin/hbase-thrift-test-server" --listen "127.0.0.1:$port" >"$work/hbase-$name.log" 2>&1 &
    pids+=("$!")
    wait_port "$port" "$!"
    hbase_ports+=("$port")
done
say "redis a=${redis_ports[0]} b=${redis_ports[1]}; hbase a=${hbase_ports[0]} b=${hbase_ports[1]}"

redis_pair="a = { urls = [\"redis://127.0.0.1:${redis_ports[0]}/\"] }
b = { urls = [\"redis://127.0.0.1:${redis_ports[1]}/\"] }"
hbase_pair="a = { addresses = [\"127.0.0.1:${hbase_ports[0]}\"] }
b = { addresses = [\"127.0.0.1:${hbase_ports[1]}\"] }"

# ---- the projector: full sync, then the incremental loop ----------------------
projector_metrics=$(free_port)
cat >"$out/projector.toml" <<EOF
version = 1
[source]
database_url = "$db_url"
[redis]
$redis_pair
[hbase]
$hbase_pair
[sync]
poll_interval_ms = $poll_ms
[telemetry]
log = "warn"
metrics_listen = "127.0.0.1:$projector_metrics"
EOF
started=$SECONDS
"$bin/pricing-projector" --config "$out/projector.toml" full >"$out/projector-full.log" 2>&1
say "full sync: $((SECONDS - started)) s"
"$bin/pricing-projector" --config "$out/projector.toml" incremental >"$out/projector.log" 2>&1 &
projector_pid=$!
pids+=("$projector_pid")
wait_port "$projector_metrics" "$projector_pid"

# ---- the servers ----------------------------------------------------------------
list_port=$(free_port); list_metrics=$(free_port)
cat >"$out/list.toml" <<EOF
version = 1
[server]
listen = "127.0.0.1:$list_port"
metrics_listen = "127.0.0.1:$list_metrics"
log = "warn"
[cache]
ttl_ms = 30000
[read]
tiers = ["redis", "hbase"]
[redis]
$redis_pair
[hbase]
$hbase_pair
EOF
"$bin/pricing-list" --config "$out/list.toml" >"$out/list.log" 2>&1 &
list_pid=$!
pids+=("$list_pid")
detail_port=$(free_port); detail_metrics=$(free_port)
cat >"$out/detail.toml" <<EOF
version = 1
[server]
listen = "127.0.0.1:$detail_port"
metrics_listen = "127.0.0.1:$detail_metrics"
log = "warn"
[source]
database_url = "$db_url"
max_connections = 32
[cache]
ttl_ms = 30000
[redis]
$redis_pair
[checkout]
quote_secret = "freshness benchmark"
EOF
"$bin/pricing-detail" --config "$out/detail.toml" >"$out/detail.log" 2>&1 &
detail_pid=$!
pids+=("$detail_pid")
wait_port "$list_port" "$list_pid"
wait_port "$detail_port" "$detail_pid"

metric() { # port, metric name: the sum of its series
    curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%g", s }'
}
for _ in $(seq 1 300); do
    subscribed=$(( $(metric "$list_metrics" pricing_invalidation_subscribed | cut -d. -f1) + \
        $(metric "$detail_metrics" pricing_invalidation_subscribed | cut -d. -f1) ))
    [ "$subscribed" -ge 4 ] && break
    sleep 0.1
done
say "servers: list :$list_port, detail :$detail_port; subscriptions up: $subscribed of 4"

# ---- the list server's own peak in this stack ------------------------------------
# h2load closed loop (common.sh: h2_peak, the flags of list-read-path.sh),
# BatchGetPrices of 20 ids from LOAD_FIRST_ID (inside the seeded catalogue),
# after one checked call (grpc-status 0) has put them in the list cache.
list_path=/pricing.v1.ListPricing/BatchGetPrices
detail_path=/pricing.v1.DetailPricing/GetGoodsPrice
python3 "$here/grpc_body.py" "$load_first_id" 20 >"$out/batch.bin"
python3 "$here/grpc_body.py" --one "$load_first_id" >"$out/one.bin"
grpc_call "$list_port" "$list_path" "$out/batch.bin" "$out/list-reply.bin"
grpc_call "$detail_port" "$detail_path" "$out/one.bin" "$out/detail-reply.bin"
list_peak=
if [ "$list_peak_seconds" != 0 ]; then
    list_peak=$(h2_peak "$out/list-peak.txt" "$list_peak_seconds" "$out/batch.bin" "http://127.0.0.1:$list_port$list_path")
    say "list server's peak in this stack: $list_peak req/s (h2load -D $list_peak_seconds --warm-up-time 2 -c 16 -m 16 -t 1, BatchGetPrices of 20 ids from $load_first_id; projector and both servers up, no other load)"
fi

# ---- the read load and, while it runs, the probe --------------------------------
load_seconds=$((duration + 10))
load_pids=()
grpc_codes "$list_metrics" BatchGetPrices >"$out/list-codes.before"
grpc_codes "$detail_metrics" GetGoodsPrice >"$out/detail-codes.before"
if [ "$read_load" = h2load ]; then
    # Open loop: h2load's --rps is per client (each client sends on its own
    # schedule, up to 4 streams in flight, so a slow answer does not hold the
    # next one back); the rate asked is clients x per-client rate, rounded up.
    list_ask=${list_rate:-$((list_peak / 2))}
    list_per_client=$(((list_ask + list_clients - 1) / list_clients))
    h2_rate=(-H 'content-type: application/grpc' -H 'te: trailers' -t 1 -m 4 --warm-up-time 2 -D "$((load_seconds - 2))")
    h2load "${h2_rate[@]}" -c "$list_clients" --rps "$list_per_client" -d "$out/batch.bin" \
        "http://127.0.0.1:$list_port$list_path" >"$out/read-load-list.txt" 2>&1 &
    load_pids+=("$!")
    pids+=("$!")
    if [ "$detail_rate" != 0 ]; then
        detail_per_client=$(((detail_rate + detail_clients - 1) / detail_clients))
        h2load "${h2_rate[@]}" -c "$detail_clients" --rps "$detail_per_client" -d "$out/one.bin" \
            "http://127.0.0.1:$detail_port$detail_path" >"$out/read-load-detail.txt" 2>&1 &
        load_pids+=("$!")
        pids+=("$!")
    fi
else
    cat >"$out/read-load.toml" <<EOF
version = 1
name = "freshness-read-load"
description = "the read load the freshness probe runs under"
[target]
list = "127.0.0.1:$list_port"
detail = "127.0.0.1:$detail_port"
connections = 4
timeout_ms = 1000
[load]
mode = "open"
rate = $read_rate
concurrency = 256
duration_s = $load_seconds
[keys]
goods = $goods
zipf_exponent = 0.8
seed = 1
[mix]
batch_get_prices = 80
get_goods_price = 20
preview_order = 0
price_order = 0
[shape]
batch_size = 20
cart_lines = 3
max_quantity = 3
EOF
    "$bin/pricing-load" --scenario "$out/read-load.toml" --out "$out/read-load" >"$out/read-load.txt" 2>"$out/read-load.err" &
    load_pids+=("$!")
    pids+=("$!")
fi
sleep 5 # the load reaches its rate (and the caches fill) before the first change
passes_before=$(metric "$projector_metrics" pricing_projector_pass_seconds_count)
pass_sum_before=$(metric "$projector_metrics" pricing_projector_pass_seconds_sum)
"$bin/pricing-freshness" --database-url "$db_url" --list "127.0.0.1:$list_port" --detail "127.0.0.1:$detail_port" \
    --rate "$change_rate" --duration "${duration}s" --goods 50 --first-id 1 --out "$out/freshness.json" \
    | tee "$out/freshness.txt" >&2 || probe_failed=1
passes=$(python3 -c "print(int($(metric "$projector_metrics" pricing_projector_pass_seconds_count) - $passes_before))")
pass_ms=$(python3 -c "n=$passes; print('%.1f' % (1000 * ($(metric "$projector_metrics" pricing_projector_pass_seconds_sum) - $pass_sum_before) / n) if n else 'n/a')")
load_running=yes
for pid in "${load_pids[@]}"; do kill -0 "$pid" 2>/dev/null || load_running=no; done
load_failed=
for pid in "${load_pids[@]}"; do wait "$pid" || load_failed=1; done
grpc_codes "$list_metrics" BatchGetPrices >"$out/list-codes.after"
grpc_codes "$detail_metrics" GetGoodsPrice >"$out/detail-codes.after"

cat "$out/freshness.txt" >>"$summary"
say "projector: poll_interval_ms=$poll_ms, $passes incremental passes during the probe, mean pass ${pass_ms} ms"
say "invalidation: projector announced $(metric "$projector_metrics" pricing_invalidation_published_total) ids;" \
    "list received $(metric "$list_metrics" pricing_invalidation_received_total)," \
    "detail received $(metric "$detail_metrics" pricing_invalidation_received_total);" \
    "subscriptions lost: list $(metric "$list_metrics" pricing_invalidation_subscription_lost_total)," \
    "detail $(metric "$detail_metrics" pricing_invalidation_subscription_lost_total)"
# One h2load rate run's figures: asked, achieved, HTTP status counts.
h2_rate_line() { # txt asked clients per-client
    awk -v ask="$2" -v c="$3" -v r="$4" '
        /^finished in/ { gsub(",", "", $4); got = $4 }
        /^requests:/ { req = $0; sub(/^requests: */, "", req) }
        /^status codes:/ { st = $0; sub(/^status codes: */, "", st) }
        END { printf "asked %d/s (%d clients x --rps %d = %d/s), achieved %.1f/s; requests: %s; HTTP status: %s", ask, c, r, c * r, got, req, st }' "$1"
}
if [ "$read_load" = h2load ]; then
    say "read load (h2load, open loop, ${load_seconds} s from 5 s before the first change; h2load counts HTTP status only, gRPC codes travel in the trailers: the servers' own counts follow):"
    say "  list BatchGetPrices(20 ids from $load_first_id), ${list_rate:+LIST_RATE=$list_rate, not }half the measured peak (${list_peak:-not measured}): $(h2_rate_line "$out/read-load-list.txt" "$list_ask" "$list_clients" "$list_per_client")"
    if [ "$detail_rate" != 0 ]; then
        say "  detail GetGoodsPrice(goods $load_first_id): DETAIL_RATE=$detail_rate: $(h2_rate_line "$out/read-load-detail.txt" "$detail_rate" "$detail_clients" "$detail_per_client")"
    fi
else
    say "read load (pricing-load, open loop $read_rate/s, 80% BatchGetPrices(20) / 20% GetGoodsPrice):"
    tee -a "$summary" <"$out/read-load.txt" >&2
fi
say "read load still running when the probe ended: $load_running${load_failed:+; a load generator exited non-zero (see $out)}"
say "grpc codes over the read load and the probe (the probe's own polls included): list BatchGetPrices $(codes_delta "$out/list-codes.before" "$out/list-codes.after"); detail GetGoodsPrice $(codes_delta "$out/detail-codes.before" "$out/detail-codes.after")"
say "load after: $(uptime)"
if [ -n "${probe_failed:-}" ]; then
    echo "freshness.sh: the probe failed (see above)" >&2
    exit 1
fi
