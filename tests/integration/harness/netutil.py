"""Free loopback ports and waiting for listeners.

A port found by binding to 0 could in theory be taken by someone else before our server binds
it; the servers then fail to start and say so, which is good enough for a test run.
"""

import socket
import time

_handed_out = set()


def free_port(host="127.0.0.1"):
    """Return a TCP port on host that is free right now and not handed out before in this run."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def port_is_listening(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port, host="127.0.0.1", timeout_s=15.0, alive=None):
    """Wait until something accepts TCP connections on host:port.

    alive: optional callable; if it returns False (the server process died) stop waiting.
    Raises TimeoutError with what was waited for.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_is_listening(port, host):
            return
        if alive is not None and not alive():
            raise RuntimeError("server died before listening on %s:%d" % (host, port))
        time.sleep(0.05)
    raise TimeoutError("nothing listening on %s:%d after %.0fs" % (host, port, timeout_s))
