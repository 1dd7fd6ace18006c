# bench/lib.sh - helpers the benchmark scripts share (sourced; needs $PY, a python3).
#   free_port            prints a free TCP port on 127.0.0.1
#   wait_port PORT SECS  waits until something listens on 127.0.0.1:PORT (exit 1: not in time)

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port seconds
    $PY - "$1" "$2" <<'PYEOF'
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + limit
while time.monotonic() < end:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PYEOF
}
