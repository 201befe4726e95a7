"""Starting and stopping the stack's processes by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class ProcessRef:
    """A process we started: its PID and start time (guards against PID reuse)."""

    pid: int
    create_time: float

    def is_running(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return bool(
                abs(proc.create_time() - self.create_time) < 1.0
                and proc.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False

    def to_json(self) -> dict[str, float | int]:
        return {"pid": self.pid, "create_time": self.create_time}

    @classmethod
    def from_json(cls, data: Mapping[str, float | int]) -> ProcessRef:
        return cls(int(data["pid"]), float(data["create_time"]))

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        return cls(pid, psutil.Process(pid).create_time())


def spawn(
    argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], ProcessRef]:
    """Start a process in its own session (Ctrl-C reaches crmctl, which stops it in order)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    return proc, ProcessRef.of(proc.pid)


def terminate(ref: ProcessRef, *, timeout: float = 10.0) -> bool:
    """SIGTERM, wait, then SIGKILL; True when it was running."""
    if not ref.is_running():
        return False
    try:
        proc = psutil.Process(ref.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    except psutil.NoSuchProcess:
        pass
    return True


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_until(predicate: object, timeout: float, interval: float = 0.05) -> bool:
    """Poll a callable until it returns true or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


def current_python() -> str:
    """The interpreter running crmctl (services run in the same environment)."""
    import sys

    return os.environ.get("CRM_PYTHON", sys.executable)
