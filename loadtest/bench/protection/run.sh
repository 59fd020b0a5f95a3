#!/usr/bin/env bash
# Protection under overload (issue 7 item 9): does a global limit keep the
# admitted calls' latency, and are the refused calls refused fast?
#
#   bash loadtest/bench/protection/run.sh
#
# What it does, every step on 127.0.0.1 with free ports and a temp dir:
#   1. starts the release list server on the embedded demo database (tiers
#      ["sql"], moka in front) under control.toml of this folder: one caller
#      account (`bench`, far above the global figures) and a GLOBAL rate of
#      $LIMIT calls/s with a small burst ($BURST), so that the limit sits
#      well below what this machine can serve;
#   2. warms it (a short run at the baseline rate, not reported);
#   3. baseline: open loop at $BASE calls/s (half the limit), BatchGetPrices
#      only (20 ids, zipf 0.8): the unloaded p99 of admitted calls;
#   4. overload: open loop at 2 x $LIMIT calls/s: the p99 of the OK calls and
#      the latency of the RESOURCE_EXHAUSTED ones (pricing-load reports
#      latency per status code);
#   5. repeats 3 and 4 ($ROUNDS rounds, alternating) so that a disturbance by
#      other work on the machine shows as a difference between rounds;
#   6. reads pricing_shed_total from the server's /metrics after each run
#      (the refusals must be the global rate's, reason="rate") and `uptime`
#      around every run.
#
# Environment: OUT (default target/bench-protection), LIMIT (global calls/s,
# default 1000), BURST (default 20), DURATION seconds per run (default 20),
# ROUNDS (default 3), SKIP_BUILD=1 to use the binaries already built (in
# $CARGO_TARGET_DIR when set, else target/; the build honours it too).
# Results: $OUT/summary.txt, and per run $OUT/<run>/ (report.json with
# latencyByCode, summary.txt, SVG plots). Not part of the test command.
# Stops only the processes it started.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${OUT:-$root/target/bench-protection}
limit=${LIMIT:-1000}
burst=${BURST:-20}
base=${BASE:-$((limit / 2))}
over=$((limit * 2))
duration=${DURATION:-20}
rounds=${ROUNDS:-3}
target_dir=${CARGO_TARGET_DIR:-$root/target}
bin=$target_dir/release

for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: '$tool' is missing" >&2; exit 2; }
done
if [ -z "${SKIP_BUILD:-}" ]; then
    (cd "$root" && cargo build --release --locked -p pricing-list -p pricing-loadtest)
fi

# say, free_port, wait_port, stop_pid, cleanup (stops $pids, removes $work)
# shellcheck source=../common.sh
. "$here/../common.sh"

bench_start protection

metric() { # name and label filter (a grep pattern), summed
    curl -s "http://127.0.0.1:$metrics_port/metrics" | awk -v name="$1" -v want="${2:-.}" '
        ($1 ~ "^" name "([{]|$)") && ($0 ~ want) {s += $NF} END {printf "%d", s}'
}

say "# protection under overload, $(date -u +%FT%TZ), $(nproc) cores, commit $(git -C "$root" rev-parse --short HEAD)"
say "global limit: rate_per_second = $limit, burst = $burst; baseline $base/s; overload $over/s; $duration s per run"

# ---- the list server -----------------------------------------------------------
list_port=$(free_port)
metrics_port=$(free_port)
token=$(sed -n 's/^token = "\(.*\)"/\1/p' "$here/control.toml")
sed -e "s/^rate_per_second = LIMIT/rate_per_second = $limit/" -e "s/^burst = BURST/burst = $burst/" \
    "$here/control.toml" >"$work/control.toml"
cat >"$work/list.toml" <<EOF
version = 1

[server]
listen = "127.0.0.1:$list_port"
metrics_listen = "127.0.0.1:$metrics_port"
drain_grace_ms = 0
log = "warn"
control_file = "$work/control.toml"

[source]
embedded_path = "$work/pricing.db"

[read]
tiers = ["sql"]
EOF
"$bin/pricing-list" --config "$work/list.toml" >"$work/list.log" 2>&1 &
list_pid=$!
pids+=("$list_pid")
wait_port "$list_port" "$list_pid"
wait_port "$metrics_port" "$list_pid" # /config below; the metrics listener may come up after the gRPC one
curl -s "http://127.0.0.1:$metrics_port/config" | python3 -c '
import json, sys
limits = json.load(sys.stdin)["config"]["limits"]
sys.exit(0 if (limits["rate_per_second"], limits["burst"]) == (int(sys.argv[1]), int(sys.argv[2])) else 1)' "$limit" "$burst" ||
    { echo "run.sh: /config does not show the global limit" >&2; exit 1; }
say "list server pid $list_pid on 127.0.0.1:$list_port (metrics $metrics_port), control file with [limits] rate_per_second = $limit"

# ---- runs ------------------------------------------------------------------------
export PRICING_CALLER=bench PRICING_CALLER_TOKEN=$token
load() { # name rate duration
    local name=$1 rate=$2 secs=$3 shed_before shed_after
    shed_before=$(metric pricing_shed_total 'reason="rate"')
    say ""
    say "## $name: $rate/s for $secs s"
    say "load before: $(uptime)"
    local cmd=("$bin/pricing-load" --scenario "$root/loadtest/scenarios/normal-day.toml"
        --list "127.0.0.1:$list_port" --mix list=100 --rate "$rate" --duration "${secs}s"
        --out "$out/$name" --log warn)
    say "command: PRICING_CALLER=bench PRICING_CALLER_TOKEN=... ${cmd[*]#"$root/"}"
    "${cmd[@]}" >"$work/$name.out" 2>"$work/$name.err" || { cat "$work/$name.err" >&2; exit 1; }
    tee -a "$summary" <"$work/$name.out" >&2
    say "load after: $(uptime)"
    shed_after=$(metric pricing_shed_total 'reason="rate"')
    say "server: pricing_shed_total{reason=\"rate\"} +$((shed_after - shed_before)), pricing_shed_total{reason=\"saturated\"} $(metric pricing_shed_total 'reason="saturated"') (cumulative), pricing_quota_refused_total $(metric pricing_quota_refused_total) (cumulative)"
}

load warmup "$base" 5
for round in $(seq 1 "$rounds"); do
    load "baseline-$round" "$base" "$duration"
    load "overload-$round" "$over" "$duration"
done

# ---- the figures in one table ------------------------------------------------------
say ""
say "## summary (ms; admitted = OK, refused = RESOURCE_EXHAUSTED; open loop: from each call's due time, and from its actual send)"
python3 - "$out" "$rounds" <<'PY' | tee -a "$summary" >&2
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
ms = lambda ns: f"{ns / 1e6:.2f}"
keys = ("p50", "p99", "p999", "max")
def quad(entry):
    return [ms(entry[k]) for k in keys] if entry else ["-"] * 4
print(f"{'':<12} {'':>8} {'':>7} {'':>7} {'':>5} | {'admitted, from due':^31} | {'refused, from due':^31} | {'refused, from send':^31}")
print(f"{'run':<12} {'calls/s':>8} {'OK':>7} {'refused':>7} {'other':>5} | " + " | ".join(["    p50     p99   p99.9     max"] * 3))
for r in range(1, rounds + 1):
    for kind in ("baseline", "overload"):
        rep = json.load(open(f"{out}/{kind}-{r}/report.json"))
        codes = rep["statusCodeDistribution"]
        ok, ref = codes.get("OK", 0), codes.get("ResourceExhausted", 0)
        cols = [quad(rep["latencyByCode"].get("OK")), quad(rep["latencyByCode"].get("ResourceExhausted")),
                quad(rep["latencyByCodeFromSend"].get("ResourceExhausted"))]
        print(f"{kind + '-' + str(r):<12} {rep['rps']:>8.1f} {ok:>7} {ref:>7} {rep['count'] - ok - ref:>5} | "
              + " | ".join(" ".join(f"{v:>7}" for v in c) for c in cols))
PY
say "results: $out"
