#!/usr/bin/env bash
# Instructions per BatchGetPrices(20) call of a list server binary, every id
# in memory (tiers ["sql"] on the embedded demo database, 1 h ttl), under
# valgrind's callgrind: a count that does not move with the machine's load.
#
#   bash loadtest/bench/list-instructions.sh BINARY [CALLS] [OUT]
#   # e.g. target/bench-ab/base/pricing-list (built by ab.sh) 5000 calls
#
# 500 warm-up calls, counters zeroed, CALLS calls (h2load -n CALLS -c 4 -m 4),
# counters dumped (common.sh: callgrind_per_call): prints the dump's total
# and the instructions per call; the dump stays at OUT.1
# (callgrind_annotate OUT.1 for the profile). Not part of the test command.
set -euo pipefail
bin=$1; n=${2:-5000}; out=${3:-$(mktemp -u /tmp/list-callgrind.XXXXXX)}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
# shellcheck source=common.sh
. "$here/common.sh"
port=$(free_port)
list_memory_config "$port" "$(free_port)" "$work/demo.db" >"$work/list.toml"
python3 "$here/grpc_body.py" 101 20 >"$work/batch.bin"
read -r total per_call < <(callgrind_per_call "$out" "$port" "$LIST_PATH" "$work/batch.bin" "$n" "$bin" --config "$work/list.toml")
rm -rf "$work"
echo "instructions: $total for $n calls, $per_call per call (dump: $out.1)"
