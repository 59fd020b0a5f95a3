# Shell helpers shared by the benchmark scripts that source it
# (ab.sh, list-instructions.sh). Not a script of its own.

# A port nothing listens on now (the kernel's pick).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until something listens on PORT; fails when PID exits first or after 120 s.
wait_port() { # port pid
    for _ in $(seq 1 1200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || { echo "bench: process $2 exited before listening on $1" >&2; exit 1; }
        sleep 0.1
    done
    echo "bench: nothing listens on port $1" >&2
    exit 1
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# The list server with every id of a batch in memory: tiers ["sql"] on the
# embedded demo database at DB (created and seeded on first start), 1 h ttl.
list_memory_config() { # port metrics-port db-path
    cat <<EOT
version = 1
[server]
listen = "127.0.0.1:$1"
metrics_listen = "127.0.0.1:$2"
log = "warn"
worker_threads = 2
[source]
embedded_path = "$3"
[cache]
ttl_ms = 3600000
[read]
tiers = ["sql"]
EOT
}

# The list server's batch method.
LIST_PATH=/pricing.v1.ListPricing/BatchGetPrices
