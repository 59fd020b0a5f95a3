#!/usr/bin/env bash
# Same-run A/B of the list and the detail server: a base commit against the
# checkout, each server at its peak under the same h2load command,
# alternating base, head, base, head (ROUNDS pairs).
#
#   bash loadtest/bench/ab.sh BASE_REV        # for example: ab.sh HEAD~5
#
# 1. Builds the release pricing-list and pricing-detail at BASE_REV (in a
#    temporary git worktree) and at the checkout, into one target folder so
#    the dependencies are built once; copies the binaries to $OUT/base and
#    $OUT/head.
# 2. List: tiers ["sql"] on the embedded demo database, cache ttl 1 h,
#    warmed: every id of the batch is in memory. BatchGetPrices(20 ids).
# 3. Detail: the same embedded demo database behind two redis-server
#    processes, warmed through the write-back: every read is a Redis hit.
#    GetGoodsPrice(one id).
# One server runs at a time; h2load shares the 2 cores with it (as in
# list-read-path.sh), the same for both builds.
#
# Environment: OUT (default target/bench-ab), DURATION seconds per run
# (default 10), ROUNDS (default 2), SKIP_BUILD=1 to reuse $OUT/{base,head}.
# Builds into $CARGO_TARGET_DIR when set, else target/. Results:
# $OUT/summary.txt. Not part of the test command.
set -euo pipefail

base_rev=${1:?usage: ab.sh BASE_REV}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT:-$root/target/bench-ab}
target_dir=${CARGO_TARGET_DIR:-$root/target} # both builds go here, so shared dependencies build once
duration=${DURATION:-10}
rounds=${ROUNDS:-2}
mkdir -p "$out/base" "$out/head"
# say, free_port, wait_port, stop_pid, cleanup
# shellcheck source=common.sh
. "$here/common.sh"

bench_start ab
# Before common.sh's cleanup stops the pids and removes $work.
cleanup_first() { git -C "$root" worktree remove --force "$work/base-src" 2>/dev/null || true; }

base_commit=$(git -C "$root" rev-parse --short "$base_rev")
head_commit=$(git -C "$root" rev-parse --short HEAD)
dirty=$(git -C "$root" status --porcelain --untracked-files=no | wc -l)
say "# A/B, $(date -u +%FT%TZ), $(nproc) cores: base $base_commit, head $head_commit$([ "$dirty" -gt 0 ] && echo " + $dirty changed files")"
say "load before: $(uptime)"

if [ -z "${SKIP_BUILD:-}" ]; then
    git -C "$root" worktree add --detach "$work/base-src" "$base_rev" >&2
    CARGO_TARGET_DIR=$target_dir cargo build --release --locked \
        --manifest-path "$work/base-src/Cargo.toml" -p pricing-list -p pricing-detail
    cp "$target_dir/release/pricing-list" "$target_dir/release/pricing-detail" "$out/base/"
    (cd "$root" && cargo build --release --locked -p pricing-list -p pricing-detail)
    cp "$target_dir/release/pricing-list" "$target_dir/release/pricing-detail" "$out/head/"
fi

python3 "$here/grpc_body.py" 101 20 >"$work/batch.bin"
python3 "$here/grpc_body.py" --one 101 >"$work/one.bin"

grpc_ok() { grpc_call "$1" "$2" "$3" "$work/reply"; } # port path body

ab_peak() { # name port path body -> req/s (common.sh: h2_peak)
    h2_peak "$out/$1.txt" "$duration" "$4" "http://127.0.0.1:$2$3"
}

# ---- the list server: every id in memory ----------------------------------------
list_run() { # build round
    local port metrics_port pid
    port=$(free_port)
    metrics_port=$(free_port)
    list_memory_config "$port" "$metrics_port" "$work/demo.db" >"$work/list.toml"
    "$out/$1/pricing-list" --config "$work/list.toml" >"$out/list-$1-$2.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_port "$port" "$pid"
    grpc_ok "$port" "$LIST_PATH" "$work/batch.bin"
    grpc_ok "$port" "$LIST_PATH" "$work/batch.bin"
    last=$(ab_peak "list-$1-$2" "$port" "$LIST_PATH" "$work/batch.bin")
    stop_pid "$pid"
}

# ---- the detail server: every read a Redis hit ---------------------------------
redis_ports=()
for name in a b; do
    start_redis "$name"
    redis_ports+=("$redis_port")
done

detail_run() { # build round
    local port metrics_port pid
    port=$(free_port)
    metrics_port=$(free_port)
    cat >"$work/detail.toml" <<EOF
version = 1
[server]
listen = "127.0.0.1:$port"
metrics_listen = "127.0.0.1:$metrics_port"
log = "warn"
[source]
embedded_path = "$work/demo.db"
[redis]
a = { urls = ["redis://127.0.0.1:${redis_ports[0]}/"], response_timeout_ms = 30 }
b = { urls = ["redis://127.0.0.1:${redis_ports[1]}/"], response_timeout_ms = 30 }
[checkout]
quote_secret = "a/b benchmark"
EOF
    "$out/$1/pricing-detail" --config "$work/detail.toml" >"$out/detail-$1-$2.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_port "$port" "$pid"
    # The first read goes to the database and is written back to both Redis.
    local deadline=$((SECONDS + 30))
    until [ "$(redis-cli -p "${redis_ports[0]}" DBSIZE)" -ge 1 ] && [ "$(redis-cli -p "${redis_ports[1]}" DBSIZE)" -ge 1 ]; do
        [ $SECONDS -lt $deadline ] || { echo "ab.sh: the detail server never wrote back to Redis" >&2; exit 1; }
        grpc_ok "$port" /pricing.v1.DetailPricing/GetGoodsPrice "$work/one.bin"
        sleep 0.1
    done
    last=$(ab_peak "detail-$1-$2" "$port" /pricing.v1.DetailPricing/GetGoodsPrice "$work/one.bin")
    stop_pid "$pid"
}

h2="h2load -D $duration --warm-up-time 2 -c 16 -m 16 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -d BODY"
say "peak command: $h2 http://127.0.0.1:PORT/PATH"
declare -A results
last=""
for kind in list detail; do
    for round in $(seq 1 "$rounds"); do
        for build in base head; do
            "${kind}_run" "$build" "$round"
            results[$kind-$build]+="$last "
        done
    done
    say "$kind req/s: base ${results[$kind-base]}| head ${results[$kind-head]}"
    say "$kind head / base: $(python3 -c "
b = [int(x) for x in '${results[$kind-base]}'.split()]
h = [int(x) for x in '${results[$kind-head]}'.split()]
print(f'{sum(h) / sum(b):.1%}')")"
done
say "load after: $(uptime)"
