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
    """A port free now that this process has not handed out before (tests).

    `bind(0)` draws each port at random from the OS's ephemeral range, so eight calls
    give one port twice about once in five hundred, and a test that starts a server on
    each gets two on one port. Ports are remembered and drawn outside that range, clear
    of what `bind(0)` elsewhere and outgoing connections take from it.
    """
    low, high = _ephemeral_range()
    spans = [(lo, hi) for lo, hi in ((10_000, low - 1), (high + 1, 65_535)) if hi - lo > 1_000]
    for _ in range(500):
        if spans:
            lo, hi = random.choice(spans)
            port = random.randint(lo, hi)
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
        if port not in _handed_out and port_is_free(host, port):
            _handed_out.add(port)
            return port
    raise OSError(f"no free port found on {host}")


def _ephemeral_range() -> tuple[int, int]:
    """The range the OS takes ports for `bind(0)` and outgoing connections from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999  # Linux's default


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
