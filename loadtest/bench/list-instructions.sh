#!/usr/bin/env bash
# Instructions per BatchGetPrices(20) call of a list server binary, every id
# in memory (tiers ["sql"] on the embedded demo database, 1 h ttl), under
# valgrind's callgrind: a count that does not move with the machine's load.
#
#   bash loadtest/bench/list-instructions.sh BINARY [CALLS] [OUT]
#   # e.g. target/bench-ab/base/pricing-list (built by ab.sh) 5000 calls
#
# 500 warm-up calls, counters zeroed, CALLS calls (h2load -n CALLS -c 4 -m 4),
# counters dumped: prints the dump's total and the instructions per call.
# Not part of the test command.
set -euo pipefail
bin=$1; n=${2:-5000}; out=${3:-$(mktemp -u /tmp/list-callgrind.XXXXXX)}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
# shellcheck source=common.sh
. "$here/common.sh"
port=$(free_port)
list_memory_config "$port" "$(free_port)" "$work/demo.db" >"$work/list.toml"
python3 "$here/grpc_body.py" 101 20 >"$work/batch.bin"
valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --config "$work/list.toml" >"$work/log" 2>&1 &
pid=$!
wait_port "$port" "$pid"
h2load -n 500 -c 4 -m 4 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -d "$work/batch.bin" "http://127.0.0.1:$port$LIST_PATH" >/dev/null
callgrind_control -z "$pid" >/dev/null 2>&1
h2load -n $n -c 4 -m 4 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -d "$work/batch.bin" "http://127.0.0.1:$port$LIST_PATH" | grep -E "requests:"
callgrind_control -d "$pid" >/dev/null 2>&1
kill $pid; wait $pid || true
rm -rf "$work"
total=$(awk '/^summary:/ {print $2}' "$out.1")
echo "instructions: $total for $n calls, $((total / n)) per call"
