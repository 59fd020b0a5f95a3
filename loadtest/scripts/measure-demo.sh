#!/usr/bin/env bash
# The figures of loadtest/README.md, in one run: the bare gRPC ceiling and
# the demo's list server under h2load (BatchGetPrices, 20 ids), then the
# three scenarios with pricing-load against the demo binary.
#
#   cargo build --release -p pricing-demo -p pricing-loadtest
#   (cd ../shared/tools/grpc-ceiling && cargo build --release)   # from the repo root
#   bash loadtest/scripts/measure-demo.sh
#
# Environment: BIN (default target/release), CEILING (the grpc-ceiling
# binary; default: its release build in the shared tools, ../shared from the
# repo root), OUT (default target/loadtest/measure), DURATION (h2load seconds,
# default 10), SCENARIO_SECONDS (default 15). Starts the demo on its default
# ports (50051/50052, metrics 9464/9465) and the ceiling on 50099; stops only
# the processes it started. Not part of the test command.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BIN:-$root/target/release}
shared=$(cd "$root/.." && pwd)/shared
ceiling=${CEILING:-$shared/tools/grpc-ceiling/target/release/grpc-ceiling}
out=${OUT:-$root/target/loadtest/measure}
duration=${DURATION:-10}
seconds=${SCENARIO_SECONDS:-15}
mkdir -p "$out"
summary=$out/summary.txt
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 200); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.1; done
  echo "nothing listens on $1" >&2; return 1
}

for port in 50051 50052 50099 9464 9465; do
  if ss -Hltn "sport = :$port" | grep -q .; then echo "port $port is taken: stop what runs there" >&2; exit 1; fi
done

note "# $(date -u +%FT%TZ) on $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/pricing-demo" --data "$out/demo.db" --log warn >"$out/demo.log" 2>&1 &
pids+=($!)
wait_port 50051; wait_port 50052

# h2load: one BatchGetPrices request with 20 ids drawn like the normal day.
"$bin/pricing-load" --scenario "$root/loadtest/scenarios/normal-day.toml" --write-h2load-body "$out/request.bin"
h2() { h2load -D "$duration" -c 16 -m 16 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -d "$out/request.bin" "$1"; }
# Warm the list server's cache, then measure.
h2load -n 2000 -c 4 -m 4 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -d "$out/request.bin" \
  http://127.0.0.1:50051/pricing.v1.ListPricing/BatchGetPrices >/dev/null
h2 http://127.0.0.1:50051/pricing.v1.ListPricing/BatchGetPrices >"$out/h2load-list.txt"
# The ceiling answers with the list server's body size (bytes of DATA per request, less the 5-byte prefix and 3 of framing).
requests=$(sed -n 's/^requests: \([0-9]*\) total.*/\1/p' "$out/h2load-list.txt")
data=$(grep -E '^traffic:' "$out/h2load-list.txt" | grep -oE '\([0-9]+\) data' | grep -oE '[0-9]+')
payload=$(( data / requests - 8 ))
"$ceiling" 127.0.0.1:50099 "$payload" 2 >"$out/ceiling.log" 2>&1 &
pids+=($!)
wait_port 50099
h2 http://127.0.0.1:50099/ceiling.v1.Ceiling/Get >"$out/h2load-ceiling.txt"
note "h2load list BatchGetPrices(20): $(grep -E '^finished in' "$out/h2load-list.txt")"
note "h2load list status: $(grep -E '^status codes' "$out/h2load-list.txt")"
note "h2load ceiling (payload $payload bytes): $(grep -E '^finished in' "$out/h2load-ceiling.txt")"
grep -E '^time for request' -A0 "$out/h2load-list.txt" | sed 's/^/h2load list latency: /' | tee -a "$summary"
grep -E '^time for request' -A0 "$out/h2load-ceiling.txt" | sed 's/^/h2load ceiling latency: /' | tee -a "$summary"

for scenario in normal-day sale-day-spike failover-drill; do
  "$bin/pricing-load" --scenario "$root/loadtest/scenarios/$scenario.toml" --duration "${seconds}s" \
    --out "$out/$scenario" --log warn >/dev/null
  cat "$out/$scenario/summary.txt" >>"$summary"
done
"$bin/pricing-load" --scenario "$root/loadtest/scenarios/normal-day.toml" --mode closed -c 64 --duration 10s \
  --out "$out/closed-64" --log warn >/dev/null
cat "$out/closed-64/summary.txt" >>"$summary"
note "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "results in $out"
