"""The supervisor: `crmctl up` starts the stack, then keeps its services running.

It is the parent of the broker and the service processes (it reaps them). A service that
exits is started again after a backoff that doubles from 1 s up to 30 s (and starts over
once a service has run for a minute); each restart is said on the output, counted in the
state file and shown by `crmctl status`. Postgres and the broker are not restarted: the
broker keeps its topics in memory, so after it is gone only `down` and `up` make sense.

Other crmctl commands talk to it through request files in `<state_dir>/requests/`:

- `stand-down.json` (`crmctl down`): stop supervising, let `down` stop every process in
  order, exit once its children are gone (or supervise again if `down` went away first);
- `restart.<service>.json` (`crmctl restart`): stop the service gracefully (SIGTERM, a
  bounded wait, then SIGKILL) and start it again at once.

SIGINT or SIGTERM (Ctrl-C in the foreground) makes it stop the stack itself, draining
first; a second Ctrl-C stops without waiting for the consumers.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psutil

from crm_stack.processes import ProcessRef, terminate
from crm_stack.services import ServiceDef
from crm_stack.stack import STAND_DOWN, Progress, Stack, StackState

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # seconds of running after which an exit starts the backoff over
TICK = 0.2
RESTART_PREFIX = "restart."


def describe_exit(code: int) -> str:
    """`exit 1`, or `killed by SIGKILL` for a negative Popen return code."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


class Supervisor:
    """Starts the stack, restarts services that exit, answers `down` and `restart`."""

    def __init__(
        self, stack: Stack, *, mode: str, on_event: Progress, drain_timeout: float = 30.0
    ) -> None:
        self.stack = stack
        self.mode = mode
        self.on_event = on_event
        self.drain_timeout = drain_timeout
        self.services: dict[str, ServiceDef] = {}  # those started (CRM_STACK_SERVICES)
        self.state = StackState()
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._started: dict[str, float] = {}  # monotonic time each service was last started
        self._quick_exits: dict[str, int] = {}
        self._due: dict[str, float] = {}  # service -> monotonic time its restart is due
        self._awaiting_ready: set[str] = set()
        self._requester: int | None = None  # the `crmctl down` we stood down for
        self._broker_gone = False

    def start(self) -> None:
        """Start everything (raises StackError, having stopped what it started, if it fails)."""
        began = time.monotonic()
        started = self.stack.start(mode=self.mode, on_progress=self.on_event)
        self.state, self.children = started.state, started.children
        self.services = {s.name: s for s in started.services}
        now = time.monotonic()
        self._started = {name: now for name in self.state.services}
        self.on_event(f"all ready in {now - began:.1f}s")
        self._set_state("running")

    def run(self, on_tick: Callable[[], None] | None = None) -> int:
        """Supervise until `crmctl down` is done, or until a signal (then stop everything).

        SIGINT, SIGTERM and SIGHUP only set a flag that the loop looks at, so that no
        interruption falls between starting a process and writing it down; the stop then
        runs with the usual handlers again (a second Ctrl-C cuts the drain short).
        """
        stop = {"asked": False}

        def ask_stop(*_: Any) -> None:
            stop["asked"] = True

        stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, ask_stop) for sig in stopping}
        try:
            while not stop["asked"]:
                if self.tick():
                    self.on_event("stopped by `crmctl down`")
                    return 0
                if on_tick is not None:
                    on_tick()
                time.sleep(TICK)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.on_event("stopping (Ctrl-C again stops without waiting for the consumers)")
        report = self.stack.down(own=True, timeout=self.drain_timeout, on_progress=self.on_event)
        self.on_event(f"stopped {', '.join(report.stopped) or 'nothing'}")
        return 0

    def tick(self) -> bool:
        """One round: requests, exits, due restarts, readiness; True once stood down and done."""
        self._take_requests()
        if self._requester is not None:
            return self._standing_down()
        broker = self.children.get("broker")
        if broker is not None and broker.poll() is not None and not self._broker_gone:
            self._broker_gone = True
            self.on_event(
                f"{_now()} the broker exited ({describe_exit(broker.returncode)}): its topics "
                "were in memory and are gone; `crmctl down`, then `crmctl up`"
            )
        for name, child in list(self.children.items()):
            if name in self.services and name not in self._due and child.poll() is not None:
                self._exited(name, child.returncode)
        for name, due in list(self._due.items()):
            if time.monotonic() >= due:
                self._respawn(name)
        for name in list(self._awaiting_ready):
            if self.stack.is_ready(self.services[name]):
                self._awaiting_ready.discard(name)
                self.on_event(f"{_now()} {name} ready again")
        return False

    def _exited(self, name: str, code: int) -> None:
        ran = time.monotonic() - self._started.get(name, 0.0)
        quick = 0 if ran >= STABLE_AFTER else self._quick_exits.get(name, 0)
        delay = min(BACKOFF_FIRST * 2**quick, BACKOFF_MAX)
        self._quick_exits[name] = quick + 1
        self._due[name] = time.monotonic() + delay
        self._awaiting_ready.discard(name)
        info = self.state.services[name]
        info["last_exit"] = f"{describe_exit(code)} after {ran:.0f}s"
        info["restart_at"] = time.time() + delay
        self.stack.save_state(self.state)
        self.on_event(
            f"{_now()} {name} exited ({describe_exit(code)}); restarting it in {delay:.0f}s "
            f"(restart {int(info.get('restarts', 0)) + 1}; log: {self.stack.service_log(name)})"
        )

    def _respawn(self, name: str) -> None:
        self._due.pop(name, None)
        info = self.state.services[name]
        try:
            child, ref = self.stack.start_service(self.services[name])
        except OSError as exc:
            self.on_event(f"{_now()} could not start {name}: {exc}")
            self._exited(name, 1)
            return
        self.children[name] = child
        self._started[name] = time.monotonic()
        info.update(process=ref.to_json(), restarts=int(info.get("restarts", 0)) + 1)
        info["restart_at"] = None
        self.stack.save_state(self.state)
        self._awaiting_ready.add(name)
        self.on_event(f"{_now()} {name} started again (pid {ref.pid}, restart {info['restarts']})")

    def _take_requests(self) -> None:
        for path in sorted(self.stack.requests.glob("*.json")):
            try:
                payload: dict[str, Any] = json.loads(path.read_text())
            except (OSError, ValueError):
                payload = {}
            path.unlink(missing_ok=True)
            if path.stem == STAND_DOWN:
                self._stand_down(int(payload.get("requester", 0)))
            elif path.stem.startswith(RESTART_PREFIX) and self._requester is None:
                self._restart(path.stem.removeprefix(RESTART_PREFIX), payload)

    def _stand_down(self, requester: int) -> None:
        self._requester = requester
        self._due.clear()
        self._awaiting_ready.clear()
        self.on_event(f"{_now()} `crmctl down` (pid {requester}) is stopping the stack")
        self._set_state("standing-down")  # the last write: `down` removes the file when done

    def _standing_down(self) -> bool:
        if all(child.poll() is not None for child in self.children.values()):
            return True
        if self._requester and not psutil.pid_exists(self._requester):
            self.on_event(f"{_now()} `crmctl down` went away before it finished: supervising")
            self._requester = None
            self._set_state("running")
        return False

    def _restart(self, name: str, payload: dict[str, Any]) -> None:
        if name not in self.services or name not in self.state.services:
            self.on_event(f"{_now()} restart asked for {name}, which this stack does not run")
            return
        timeout = float(payload.get("timeout", 20.0))
        info = self.state.services[name]
        self.on_event(f"{_now()} restarting {name} (asked by `crmctl restart`)")
        if name not in self._due:
            terminate(ProcessRef.from_json(info["process"]), timeout=timeout)
            self.children[name].poll()
        info["last_exit"] = "stopped by `crmctl restart`"
        self._quick_exits[name] = 0
        self._respawn(name)

    def _set_state(self, value: str) -> None:
        self.state.supervisor["state"] = value
        self.stack.save_state(self.state)


def _now() -> str:
    return time.strftime("%H:%M:%S")
