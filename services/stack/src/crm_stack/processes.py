"""Starting and stopping the stack's processes by PID."""

from __future__ import annotations

import contextlib
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
    return bool(terminate_all([ref], timeout=timeout))


def terminate_all(refs: Sequence[ProcessRef], *, timeout: float = 10.0) -> list[ProcessRef]:
    """SIGTERM every process, wait until they are gone, SIGKILL what is left; those that ran.

    Waits by polling, never by `wait()`: the processes may be another crmctl's children
    (a foreground `crmctl up` owns them), and a child its parent has not reaped yet is a
    zombie that `wait()` from here would wait on for ever.
    """
    running = [ref for ref in refs if ref.is_running()]
    for ref in running:
        send_signal(ref, signal.SIGTERM)
    if not wait_gone(running, timeout):
        for ref in running:
            send_signal(ref, signal.SIGKILL)
        wait_gone(running, 5.0)
    return running


def send_signal(ref: ProcessRef, signum: int) -> bool:
    """Signal a process we started, unless it is gone (or its PID is someone else's now)."""
    if not ref.is_running():
        return False
    try:
        os.kill(ref.pid, signum)
    except ProcessLookupError:
        return False
    return True


def wait_gone(refs: Sequence[ProcessRef], timeout: float) -> bool:
    """Poll until none of the processes runs (exited or a zombie); False at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        for ref in refs:
            _reap(ref.pid)
        if not any(ref.is_running() for ref in refs):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collect the exit status of our own exited child (no-op for anyone else's)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


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
