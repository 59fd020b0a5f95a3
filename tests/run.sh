#!/usr/bin/env bash
# The project's one test command: `bash tests/run.sh [cargo test args...]`.
#
# - installs the Debian packages the tests need when they are missing
#   (redis-server, redis-tools, mariadb-server, nghttp2-client) if it runs as root,
#   otherwise stops naming the package;
# - starts a throwaway mariadbd on a free port with its own data directory,
#   and exports its URL for the tests (PRICING_TEST_MYSQL_URL); tests that
#   need Redis start their own redis-server processes (PRICING_TEST_REDIS_SERVER);
# - installs Helm (PyPI helm-python-sdk) for the chart test, and stops when
#   it cannot: a run that cannot check the chart is not a green run;
# - without -p/--package: runs `cargo clippy --workspace --all-targets
#   --locked -- -D warnings` (the workspace lints, docs/LINTS.md) and stops
#   on a warning;
# - runs `cargo test --workspace` (one build for every test binary);
# - removes the database process and its data directory on every exit.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { # need BINARY DEBIAN-PACKAGE
  local bin=$1 pkg=$2
  if command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ]; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: '$bin' is missing; install the Debian package '$pkg' (apt-get install $pkg) and run again" >&2
    exit 2
  fi
  echo "tests/run.sh: installing $pkg" >&2
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >&2; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2
}
need redis-server redis-server
# redis-cli: the Redis Cluster tests reshard with `redis-cli --cluster reshard`.
need redis-cli redis-tools
need mariadbd mariadb-server
need h2load nghttp2-client
# --- helm (tests/helm_chart.rs): real Helm v4 as a library, from PyPI -----
# A run that cannot check the chart fails: here, and in the test itself.
if ! python3 -c 'import helm_python' >/dev/null 2>&1; then
  echo "tests/run.sh: installing helm-python-sdk (Helm v4 for the chart test)" >&2
  if ! python3 -m pip install -q helm-python-sdk==0.2.2 >&2 \
    || ! python3 -c 'import helm_python' >/dev/null 2>&1; then
    echo "tests/run.sh: helm-python-sdk could not be installed or loaded; the chart cannot be checked" >&2
    exit 2
  fi
fi
# --- end helm -----------------------------------------------------------
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)
INSTALL_DB=$(command -v mariadb-install-db || command -v mysql_install_db)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d /tmp/pricing-test.XXXXXX)
DB_PID=""
cleanup() {
  if [ -n "$DB_PID" ] && kill -0 "$DB_PID" 2>/dev/null; then
    kill "$DB_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$DB_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$DB_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

DB_PORT=$(free_port)
"$INSTALL_DB" --no-defaults --datadir="$WORK/mysql" --auth-root-authentication-method=normal \
  --skip-test-db --user="$(id -un)" >"$WORK/install.log" 2>&1 \
  || { cat "$WORK/install.log" >&2; echo "tests/run.sh: mariadb-install-db failed" >&2; exit 1; }
"$MARIADBD" --no-defaults --datadir="$WORK/mysql" --port="$DB_PORT" --bind-address=127.0.0.1 \
  --socket="$WORK/mysql.sock" --pid-file="$WORK/mysql.pid" --user="$(id -un)" \
  --skip-log-bin --innodb-buffer-pool-size=128M --innodb-log-file-size=48M \
  --max-connections=500 --log-error="$WORK/mysql.err" &
DB_PID=$!
deadline=$((SECONDS + 60))
until mariadb --no-defaults -uroot -h127.0.0.1 -P"$DB_PORT" -e 'select 1' >/dev/null 2>&1; do
  if ! kill -0 "$DB_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
    cat "$WORK/mysql.err" >&2; echo "tests/run.sh: mariadbd did not start" >&2; exit 1
  fi
  sleep 0.2
done
export PRICING_TEST_MYSQL_URL="mysql://root@127.0.0.1:$DB_PORT"
export PRICING_TEST_REDIS_SERVER=$(command -v redis-server)
export PRICING_TEST_TMP="$WORK"
echo "tests/run.sh: mariadbd on 127.0.0.1:$DB_PORT (pid $DB_PID)" >&2

# Disk: the test build takes about 2 GB, 3 GB with incremental data (line
# tables only, see [profile.dev] in Cargo.toml; full debug info once ran a
# CI machine out of space). CI builds a fresh clone once, where incremental
# data is never reused: leave it out there.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}; fi
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
free_kb=$(df -Pk "$target_dir" | awk 'NR == 2 {print $4}')
if [ "${free_kb:-0}" -lt $((4 * 1024 * 1024)) ]; then
  echo "tests/run.sh: warning: only $((free_kb / 1024)) MB free for $target_dir; the test build needs up to 3 GB" >&2
fi

# With -p/--package the caller picks the packages; otherwise the whole workspace.
scope=(--workspace)
for arg in "$@"; do
  case "$arg" in -p|--package|--package=*|-p*) scope=() ;; esac
done
# The full run first holds the workspace to its lints (docs/LINTS.md): clippy
# builds in check mode, and a warning fails the run before any test starts.
# With -p the caller is iterating on a few packages: that path stays fast.
if [ ${#scope[@]} -gt 0 ]; then
  if ! cargo clippy --version >/dev/null 2>&1; then
    echo "tests/run.sh: cargo clippy is missing; install it (rustup component add clippy) and run again" >&2
    exit 2
  fi
  echo "tests/run.sh: cargo clippy --workspace --all-targets --locked -- -D warnings" >&2
  if ! cargo clippy --workspace --all-targets --locked -- -D warnings; then
    echo "tests/run.sh: clippy found lint errors (above); fix them or allow the site with its reason (docs/LINTS.md)" >&2
    exit 1
  fi
fi
cargo test "${scope[@]}" --locked "$@"
