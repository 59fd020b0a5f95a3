#!/usr/bin/env bash
# Failover drill: kill one Redis while a load runs, bring it back later.
#
#   failover-drill.sh (--port PORT | --pid PID) [--kill-at S] [--restart-at S]
#                     [--signal KILL|TERM|STOP] [--restart-cmd 'CMD']
#                     [-- LOAD COMMAND ...]
#
# Offsets are seconds from the start of the drill (default: kill at 20,
# restart at 40). Before the kill the script asks the server (INFO, CONFIG
# GET) how it runs: its config file if it has one, else the settings that
# matter (port, bind, dir, persistence, cluster) written to a file, so the
# restart brings back the same node with its data; `--restart-cmd` overrides
# that. A password-protected Redis needs --restart-cmd and REDISCLI_AUTH.
# With `--signal STOP` the process is frozen instead of killed (a hung node
# rather than a dead one) and thawed with CONT at the restart offset.
#
# With a load command after `--`, the drill starts it at offset 0 and waits
# for it; for example, with the demo stack of loadtest/README.md:
#
#   loadtest/scripts/failover-drill.sh --port 6391 --kill-at 20 --restart-at 40 -- \
#     target/release/pricing-load --scenario loadtest/scenarios/failover-drill.toml --out target/loadtest/drill
#
# Safety: only a redis-server process listening on a loopback address is
# touched, and only the one named; nothing else is killed.
set -euo pipefail

port="" pid="" kill_at=20 restart_at=40 signal=KILL restart_cmd=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) port=$2; shift 2 ;;
    --pid) pid=$2; shift 2 ;;
    --kill-at) kill_at=$2; shift 2 ;;
    --restart-at) restart_at=$2; shift 2 ;;
    --signal) signal=$2; shift 2 ;;
    --restart-cmd) restart_cmd=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "failover-drill: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
load=("$@")

log() { printf '%s failover-drill: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

[[ -n "$port" || -n "$pid" ]] || die "name the Redis with --port or --pid"
[[ "$kill_at" =~ ^[0-9]+$ && "$restart_at" =~ ^[0-9]+$ ]] || die "offsets are whole seconds"
(( restart_at > kill_at )) || die "--restart-at ($restart_at) must come after --kill-at ($kill_at)"
case "$signal" in KILL|TERM|STOP) ;; *) die "--signal is KILL, TERM or STOP" ;; esac

if [[ -z "$pid" ]]; then
  # The process listening on the port, on loopback.
  pid=$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -oE 'pid=[0-9]+' | head -n1 | cut -d= -f2 || true)
  [[ -n "$pid" ]] || die "nothing listens on port $port"
fi
[[ -r /proc/$pid/cmdline ]] || die "no process $pid"
comm=$(cat "/proc/$pid/comm")
[[ "$comm" == redis-server* ]] || die "process $pid is $comm, not redis-server: refusing"
listening=$(ss -Hltnp 2>/dev/null | grep "pid=$pid," | awk '{print $4}')
[[ -n "$listening" ]] || die "process $pid listens on nothing"
while read -r addr; do
  case "$addr" in
    127.*|'[::1]':*|localhost:*) ;;
    *) die "process $pid listens on $addr, which is not loopback: refusing" ;;
  esac
done <<<"$listening"
[[ -z "$port" ]] && port=$(head -n1 <<<"$listening" | sed 's/.*://')

# Redis rewrites its process title, so /proc/PID/cmdline cannot be replayed:
# ask the server itself how it was started, before it goes.
rcli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
info=$(rcli INFO server | tr -d '\r') || die "redis on port $port does not answer INFO"
exe=$(sed -n 's/^executable://p' <<<"$info")
conf=$(sed -n 's/^config_file://p' <<<"$info")
[[ -x "$exe" ]] || exe=$(command -v redis-server)
if [[ -n "$restart_cmd" ]]; then
  restart=(bash -c "$restart_cmd")
elif [[ -n "$conf" ]]; then
  restart=("$exe" "$conf")
else
  # Started with arguments only: write the settings that matter to a file.
  conf_out="${TMPDIR:-/tmp}/failover-drill-redis-$port.conf"
  : >"$conf_out"
  for key in port bind dir dbfilename appendonly appendfilename save protected-mode \
             cluster-enabled cluster-config-file cluster-node-timeout maxmemory maxmemory-policy; do
    value=$(rcli CONFIG GET "$key" | tr -d '\r' | sed -n 2p)
    if [[ -z "$value" ]]; then echo "$key \"\"" >>"$conf_out"; else echo "$key $value" >>"$conf_out"; fi
  done
  echo "daemonize no" >>"$conf_out"
  restart=("$exe" "$conf_out")
fi
log "redis pid $pid on port $port; restart will run: ${restart[*]}"

start=$(date +%s)
load_pid=""
if [[ ${#load[@]} -gt 0 ]]; then
  "${load[@]}" &
  load_pid=$!
  log "load started (pid $load_pid): ${load[*]}"
fi

wait_until() {
  local at=$1 now
  now=$(( $(date +%s) - start ))
  (( at > now )) && sleep $(( at - now ))
  return 0
}

ping() { redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; }

wait_until "$kill_at"
if [[ "$signal" == STOP ]]; then
  kill -STOP "$pid" && log "t+${kill_at}s froze redis pid $pid (SIGSTOP)"
else
  kill "-$signal" "$pid" && log "t+${kill_at}s sent SIG$signal to redis pid $pid"
  # Wait for the port to close (a killed daemon may stay a zombie for a while).
  for _ in $(seq 50); do ss -Hltn "sport = :$port" | grep -q . || break; sleep 0.1; done
  ss -Hltn "sport = :$port" | grep -q . && die "port $port still listens after SIG$signal"
  log "redis on port $port is down"
fi

wait_until "$restart_at"
if [[ "$signal" == STOP ]]; then
  kill -CONT "$pid" && log "t+${restart_at}s thawed redis pid $pid (SIGCONT)"
else
  # The same binary, arguments and working directory; detached from this shell.
  (setsid "${restart[@]}" >>"${TMPDIR:-/tmp}/failover-drill-redis-$port.log" 2>&1 &)
  log "t+${restart_at}s restarted: ${restart[*]}"
fi
for _ in $(seq 100); do ping && break; sleep 0.1; done
ping && log "redis on port $port answers PING again" || log "redis on port $port does not answer yet"

if [[ -n "$load_pid" ]]; then
  status=0
  wait "$load_pid" || status=$?
  log "load finished with status $status"
  exit "$status"
fi
