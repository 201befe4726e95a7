"""Port checks, so that a taken port is reported before anything starts."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now that no outgoing connection will take before it is bound (tests).

    A port the OS picks with `bind(0)` comes from the ephemeral range, the same range it
    draws local ports of outgoing connections from: between handing such a port out and
    a server binding it seconds later, a service's connection to Postgres or the broker
    can take it, and the server fails to start. So the port is drawn outside that range,
    and never twice in one process.
    """
    low, high = _ephemeral_range()
    spans = [(lo, hi) for lo, hi in ((10_000, low - 1), (high + 1, 65_535)) if hi - lo > 1_000]
    for _ in range(500 if spans else 0):
        lo, hi = random.choice(spans)
        port = random.randint(lo, hi)
        if port not in _handed_out and _bindable(host, port):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ephemeral_range() -> tuple[int, int]:
    """The range the OS takes local ports of outgoing connections from (Linux's default)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999


def _bindable(host: str, port: int) -> bool:
    """Nothing is bound to host:port, listening or connected (no SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_port_open(host: str, port: int, timeout: float) -> bool:
    """Poll until something accepts connections on host:port, or the deadline passes."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
