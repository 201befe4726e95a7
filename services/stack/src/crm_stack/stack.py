"""Bring the whole back end up and down on one machine, and tell its status.

`crmctl up` runs a supervisor (in the foreground, or in the background with `--detach`)
that starts everything and owns the processes; the state file `<state_dir>/stack.json`
says what runs, and only the supervisor writes it while it runs. Other crmctl commands
talk to it through request files in `<state_dir>/requests/` (see `supervisor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crm_contracts import topic_specs
from crm_kit.db import ensure_database, with_database
from crm_kit.kafka import ensure_topics, wait_for_broker
from crm_stack.broker import EmbeddedBroker, broker_binary
from crm_stack.drain import DrainResult, describe_backlog, drain
from crm_stack.errors import StackError
from crm_stack.ports import port_is_free
from crm_stack.postgres import EmbeddedPostgres
from crm_stack.processes import (
    ProcessRef,
    current_python,
    send_signal,
    spawn,
    tail,
    terminate,
    terminate_all,
    wait_gone,
)
from crm_stack.services import KNOWN_SERVICES, ServiceDef, get_service, installed_services
from crm_stack.settings import StackSettings

Progress = Callable[[str], None]


class DrainMode(enum.Enum):
    """What `down` does about events still in flight."""

    WAIT = "wait"  # wait (bounded) until the consumers caught up
    REPORT = "report"  # do not wait; say what would be dropped
    SKIP = "skip"  # neither (a start that failed)


STAND_DOWN = "stand-down"  # request: stop supervising, `down` stops the processes itself
ACK_TIMEOUT = 30.0  # seconds a running supervisor has to answer a request (generous: load)


@dataclass
class Component:
    """One line of `crmctl status`."""

    name: str
    kind: str  # postgres | broker | service | supervisor
    address: str
    state: str = "down"  # up | down | starting | restarting | external
    pid: int | None = None
    detail: str = ""
    restarts: int = 0


@dataclass
class StackState:
    """What crmctl started, persisted in `<state_dir>/stack.json`."""

    postgres: dict[str, Any] = field(default_factory=dict)
    broker: dict[str, Any] = field(default_factory=dict)
    # The services this stack runs (CRM_STACK_SERVICES), in start order; the others are
    # neither started, nor shown, nor waited for.
    selection: list[str] = field(default_factory=list)
    # name -> {"process", "restarts", "last_exit", "restart_at" (epoch s or None)}
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    # {"process", "state": starting | running | standing-down, "mode": foreground | background}
    supervisor: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0


@dataclass
class Started:
    """The processes a start left running, as the supervisor holds them."""

    state: StackState
    services: list[ServiceDef]
    children: dict[str, subprocess.Popen[bytes]]  # "broker" and each service


@dataclass
class DownReport:
    """What `down` stopped and how its drain went (None when there was nothing to drain)."""

    stopped: list[str]
    drain: DrainResult | None = None


class Stack:
    """The embedded stack described by `StackSettings`."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir.resolve()
        self.state_file = self.state_dir / "stack.json"
        self.requests = self.state_dir / "requests"
        self.logs = self.state_dir / "logs"
        self.supervisor_log = self.logs / "crmctl.log"
        self.postgres = EmbeddedPostgres(
            self.state_dir / "postgres" / "data", port=settings.postgres_port, host=settings.host
        )
        self.broker = EmbeddedBroker(
            port=settings.broker_port, host=settings.host, log_path=self.logs / "broker.log"
        )

    # -- addresses -------------------------------------------------------------------------
    @property
    def admin_dsn(self) -> str:
        return self.settings.database_url or self.postgres.admin_dsn

    @property
    def bootstrap_servers(self) -> str:
        return self.settings.kafka_bootstrap_servers or self.broker.bootstrap_servers

    def service_url(self, service: ServiceDef) -> str:
        return f"http://{self.settings.host}:{self.settings.service_port(service.name)}"

    def service_log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    # -- state file and requests -----------------------------------------------------------
    def load_state(self) -> StackState | None:
        try:
            return StackState(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save_state(self, state: StackState) -> None:
        """Write the state file whole (readers never see half of it)."""
        _write_atomically(self.state_file, json.dumps(asdict(state), indent=2))

    def supervisor_ref(self, state: StackState | None = None) -> ProcessRef | None:
        """The running supervisor of this state folder, if any."""
        state = state or self.load_state()
        info = state.supervisor.get("process") if state else None
        ref = ProcessRef.from_json(info) if info else None
        return ref if ref is not None and ref.is_running() else None

    def send_request(self, name: str, **payload: Any) -> Path:
        """Leave a request for the supervisor (it looks every few tenths of a second)."""
        path = self.requests / f"{name}.json"
        _write_atomically(path, json.dumps({"requester": os.getpid(), **payload}))
        return path

    def running(self) -> bool:
        """True when a stack started from this state folder still has a live process."""
        state = self.load_state()
        if state is None:
            return False
        refs = [
            state.supervisor.get("process"),
            state.broker.get("process"),
            *(s.get("process") for s in state.services.values()),
        ]
        return any(r and ProcessRef.from_json(r).is_running() for r in refs) or (
            bool(state.postgres.get("embedded")) and self.postgres.is_running()
        )

    # -- up --------------------------------------------------------------------------------
    def check_can_start(self) -> list[ServiceDef]:
        """The services to start; StackError when a stack runs here or a port is taken."""
        if self.running():
            raise StackError(
                f"the stack in {self.state_dir} is already running: see `crmctl status`, "
                "stop it with `crmctl down`"
            )
        services = self.selected_services()
        self._check_ports(services)
        if self.settings.kafka_bootstrap_servers is None:
            broker_binary()  # a missing one is said before PostgreSQL is started for nothing
        return services

    def selected_services(self) -> list[ServiceDef]:
        """The services `up` starts: every installed one by default, else those named in
        CRM_STACK_SERVICES (StackError if one of those is not installed)."""
        installed = {s.name: s for s in installed_services()}
        if set(self.settings.services) == {s.name for s in KNOWN_SERVICES}:
            return list(installed.values())
        missing = [name for name in self.settings.services if name not in installed]
        if missing:
            raise StackError(
                f"{', '.join(missing)} not installed in this environment (installed: "
                f"{', '.join(installed) or 'none'}); `make install`, or leave "
                f"{' and '.join(missing)} out of CRM_STACK_SERVICES"
            )
        return [installed[name] for name in self.settings.services]

    def start(self, *, mode: str, on_progress: Progress = print) -> Started:
        """Start Postgres, the broker, every topic, and the services selected with their databases.

        Called by the supervisor, which then owns the returned processes.
        """
        services = self.check_can_start()
        state = StackState(started_at=time.time(), selection=[s.name for s in services])
        state.supervisor = {
            "process": ProcessRef.of(os.getpid()).to_json(),
            "state": "starting",
            "mode": mode,
        }
        self.logs.mkdir(parents=True, exist_ok=True)
        _clear(self.requests)
        children: dict[str, subprocess.Popen[bytes]] = {}
        try:
            self.save_state(state)
            if self.settings.database_url is None:
                on_progress(
                    f"starting PostgreSQL on {self.settings.host}:{self.settings.postgres_port}"
                )
                state.postgres = {"embedded": True, "process": self.postgres.start().to_json()}
            else:
                state.postgres = {"embedded": False}
            self.save_state(state)
            if self.settings.kafka_bootstrap_servers is None:
                on_progress(f"starting the broker on {self.broker.bootstrap_servers}")
                children["broker"], ref = self.broker.start()
                state.broker = {"embedded": True, "process": ref.to_json()}
            else:
                state.broker = {"embedded": False}
            self.save_state(state)
            asyncio.run(self._prepare(services, on_progress))
            on_progress(self._selection_line(services))
            for service in services:
                children[service.name], ref = self.start_service(service)
                state.services[service.name] = {"process": ref.to_json(), "restarts": 0}
                self.save_state(state)
            self._wait_ready(services, state, on_progress)
        except BaseException:
            self.down(own=True, drain=DrainMode.SKIP, on_progress=lambda _: None)
            raise
        return Started(state, services, children)

    def _selection_line(self, services: list[ServiceDef]) -> str:
        left_out = [s.name for s in installed_services() if s not in services]
        if not left_out:
            return f"starting {', '.join(s.name for s in services)}"
        if not services:
            return "starting no service (CRM_STACK_SERVICES=none): PostgreSQL and the broker only"
        return (
            f"starting {', '.join(s.name for s in services)} "
            f"(not {', '.join(left_out)}: CRM_STACK_SERVICES)"
        )

    def _check_ports(self, services: list[ServiceDef]) -> None:
        wanted: list[tuple[str, int]] = []
        if self.settings.kafka_bootstrap_servers is None:
            wanted.append(("broker (CRM_STACK_BROKER_PORT)", self.settings.broker_port))
        if self.settings.database_url is None:
            wanted.append(("PostgreSQL (CRM_STACK_POSTGRES_PORT)", self.settings.postgres_port))
        for s in services:
            wanted.append(
                (f"{s.name} (CRM_STACK_{s.name.upper()}_PORT)", self.settings.service_port(s.name))
            )
        sharing: dict[int, list[str]] = {}
        for what, port in wanted:
            sharing.setdefault(port, []).append(what)
        shared = [
            f"{port}: {' and '.join(whats)}" for port, whats in sharing.items() if len(whats) > 1
        ]
        if shared:
            raise StackError(
                f"two parts of the stack are set to one port ({'; '.join(shared)}); "
                "give each its own with the settings named."
            )
        taken = [
            f"{what}: {port}" for what, port in wanted if not port_is_free(self.settings.host, port)
        ]
        if taken:
            raise StackError(
                "these ports are already taken on "
                f"{self.settings.host}: {', '.join(taken)}. Stop what uses them (`crmctl down` if "
                "it is an earlier stack) or choose other ports with the settings named."
            )

    async def _prepare(self, services: list[ServiceDef], on_progress: Progress) -> None:
        try:
            await wait_for_broker(self.bootstrap_servers, timeout=20)
        except TimeoutError as exc:
            raise StackError(f"{exc}; its log:\n{tail(self.broker.log_path)}") from exc
        created = await ensure_topics(
            self.bootstrap_servers, topic_specs(partitions=self.settings.partitions)
        )
        on_progress(f"topics: {len(created)} created, partitions {self.settings.partitions}")
        for service in services:
            await ensure_database(self.admin_dsn, service.database)

    def service_env(self, service: ServiceDef) -> dict[str, str]:
        """The environment a service process gets from crmctl."""
        prefix = service.env_prefix
        env = dict(os.environ)
        env.update(
            {
                f"{prefix}DATABASE_URL": with_database(self.admin_dsn, service.database),
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                f"{prefix}HTTP_HOST": self.settings.host,
                f"{prefix}HTTP_PORT": str(self.settings.service_port(service.name)),
                "CRM_JWT_SECRET": self.settings.jwt_secret.get_secret_value(),
                "CRM_ENVIRONMENT": self.settings.environment,
            }
        )
        return env

    def start_service(self, service: ServiceDef) -> tuple[subprocess.Popen[bytes], ProcessRef]:
        """Start one service process (its output appended to its log)."""
        return spawn(
            [current_python(), "-m", service.package],
            log_path=self.service_log(service.name),
            env=self.service_env(service),
        )

    def is_ready(self, service: ServiceDef) -> bool:
        """The service answers 200 on /readyz."""
        return _http_ok(self.service_url(service) + "/readyz")

    def _wait_ready(
        self, services: list[ServiceDef], state: StackState, on_progress: Progress
    ) -> None:
        deadline = time.monotonic() + self.settings.ready_timeout
        pending = {s.name: s for s in services}
        while pending and time.monotonic() < deadline:
            for name, service in list(pending.items()):
                if not ProcessRef.from_json(state.services[name]["process"]).is_running():
                    raise StackError(
                        f"service {name} exited at start; its log "
                        f"({self.service_log(name)}):\n{tail(self.service_log(name))}"
                    )
                if self.is_ready(service):
                    on_progress(f"{name} ready on {self.service_url(service)}")
                    del pending[name]
            time.sleep(0.1)
        if pending:
            raise StackError(
                f"not ready after {self.settings.ready_timeout:.0f}s: {', '.join(pending)}; "
                f"see the logs in {self.logs}"
            )

    # -- down ------------------------------------------------------------------------------
    def down(
        self,
        *,
        timeout: float = 30.0,
        drain: DrainMode = DrainMode.WAIT,
        own: bool = False,
        on_progress: Progress = print,
    ) -> DownReport:
        """Stop the edge, drain, stop the other services, then the broker, then Postgres.

        `own` is set when the supervisor itself stops the stack; any other caller first
        asks a running supervisor to stand down, so that it restarts nothing meanwhile.
        """
        state = self.load_state() or StackState()
        supervisor = None if own else self.supervisor_ref(state)
        if supervisor is not None:
            state = self._release(supervisor, state, on_progress)
        known = {s.name: s for s in installed_services()}
        refs = {
            name: ProcessRef.from_json(info["process"])
            for name, info in state.services.items()
            if info.get("process")
        }
        edge = [n for n in refs if n in known and known[n].edge]
        report = DownReport(stopped=[])
        with _signals_deferred():
            report.stopped += [n for n in edge if terminate(refs[n], timeout=15.0)]
        if report.stopped:
            on_progress(f"stopped {', '.join(report.stopped)}: no new events accepted")
        if drain is not DrainMode.SKIP:
            report.drain = self._drain(
                state, refs, known, timeout, drain is DrainMode.WAIT, on_progress
            )
        with _signals_deferred():
            rest = [n for n in refs if n not in edge]
            stopped = {ref.pid for ref in terminate_all([refs[n] for n in rest], timeout=15.0)}
            report.stopped += [n for n in rest if refs[n].pid in stopped]
            broker = state.broker.get("process")
            if broker and terminate(ProcessRef.from_json(broker)):
                report.stopped.append("broker")
            if state.postgres.get("embedded") and self.postgres.is_running():
                self.postgres.stop()
                report.stopped.append("postgres")
            if supervisor is not None and not wait_gone([supervisor], 15.0):
                terminate(supervisor, timeout=15.0)
            self.state_file.unlink(missing_ok=True)
            _clear(self.requests)
        return report

    def _release(
        self, supervisor: ProcessRef, state: StackState, on_progress: Progress
    ) -> StackState:
        """Have the supervisor stop supervising; the state as it left it."""
        if state.supervisor.get("state") == "starting":
            on_progress(
                f"the stack is still starting: stopping its supervisor (pid {supervisor.pid})"
            )
            terminate(supervisor, timeout=60.0)
            return self.load_state() or StackState()
        self.send_request(STAND_DOWN)
        deadline = time.monotonic() + ACK_TIMEOUT
        while time.monotonic() < deadline and supervisor.is_running():
            current = self.load_state()
            if current is not None and current.supervisor.get("state") == "standing-down":
                return current
            time.sleep(0.05)
        if supervisor.is_running():
            on_progress(f"the supervisor (pid {supervisor.pid}) does not answer: killing it")
            send_signal(supervisor, signal.SIGKILL)
            wait_gone([supervisor], 5.0)
        return self.load_state() or state

    def _drain(
        self,
        state: StackState,
        refs: dict[str, ProcessRef],
        known: dict[str, ServiceDef],
        timeout: float,
        wait: bool,
        on_progress: Progress,
    ) -> DrainResult | None:
        consumers = [
            known[n]
            for n, ref in refs.items()
            if n in known and not known[n].edge and ref.is_running()
        ]
        broker = state.broker.get("process")
        if not consumers or (broker and not ProcessRef.from_json(broker).is_running()):
            return None
        if wait:
            on_progress(f"draining: waiting up to {timeout:.0f}s for the consumers to catch up")
        try:
            result = asyncio.run(
                drain(
                    bootstrap_servers=self.bootstrap_servers,
                    services=consumers,
                    dsns={s.name: with_database(self.admin_dsn, s.database) for s in consumers},
                    timeout=timeout,
                    wait=wait,
                    is_running=lambda name: refs[name].is_running(),
                    on_progress=on_progress,
                )
            )
        except KeyboardInterrupt:
            on_progress("interrupted: stopping without waiting for the consumers")
            return DrainResult(False, reason="interrupted")
        on_progress(self._drain_summary(result, embedded=bool(broker)))
        return result

    def _drain_summary(self, result: DrainResult, *, embedded: bool) -> str:
        if result.drained:
            return (
                f"drained in {result.seconds:.1f}s: every consumer caught up, no outbox row unsent"
            )
        where = (
            "still on the embedded broker, and lost when it stops"
            if embedded
            else "left on the broker; consumers continue from there at the next `up`"
        )
        lines = [f"not drained ({result.reason})"]
        if result.backlog:
            lines.append(f"{result.records} events {where}: {describe_backlog(result.backlog, {})}")
        unsent = {k: v for k, v in result.unsent.items() if v}
        if unsent:
            lines.append(
                f"outbox rows not yet published, kept in Postgres and published at the next "
                f"`up`: {describe_backlog([], unsent)}"
            )
        return "\n".join(lines)

    # -- restart ---------------------------------------------------------------------------
    def restart(self, name: str, *, timeout: float = 20.0, on_progress: Progress = print) -> int:
        """Have the supervisor restart one service; its new PID once it is ready again.

        The service gets SIGTERM and `timeout` seconds to finish the batch in hand (its
        consumers commit offsets only after the database, so a restart redelivers at
        worst, and the inbox skips what was applied), then SIGKILL.
        """
        try:
            service = get_service(name)
        except KeyError as exc:
            raise StackError(str(exc.args[0])) from exc
        state = self.load_state()
        if state is not None and name not in self.names_shown(state):
            raise StackError(
                f"this stack does not run {name} (it runs "
                f"{', '.join(self.names_shown(state)) or 'no service'}); to run it too: "
                "`crmctl down`, then `crmctl up` with CRM_STACK_SERVICES naming it"
            )
        if state is None or name not in state.services:
            raise StackError(f"{name} is not running from {self.state_dir}: `crmctl up` first")
        supervisor = self.supervisor_ref(state)
        if supervisor is None:
            raise StackError(
                "no crmctl supervisor runs for this stack (it exited): "
                "`crmctl down`, then `crmctl up`"
            )
        if state.supervisor.get("state") != "running":
            raise StackError(f"the stack is {state.supervisor.get('state')}: try again later")
        old = int(state.services[name]["process"]["pid"])
        request = self.send_request(f"restart.{name}", timeout=timeout)
        on_progress(f"restarting {name} (pid {old}): SIGTERM, up to {timeout:.0f}s, then SIGKILL")
        deadline = time.monotonic() + ACK_TIMEOUT + timeout + self.settings.ready_timeout
        while time.monotonic() < deadline:
            if not supervisor.is_running():
                raise StackError(f"the supervisor exited; see {self.supervisor_log}")
            current = self.load_state()
            proc = current.services.get(name, {}).get("process") if current else None
            if not request.exists() and proc and int(proc["pid"]) != old:
                ref = ProcessRef.from_json(proc)
                if ref.is_running() and self.is_ready(service):
                    return ref.pid
            time.sleep(0.1)
        raise StackError(f"{name} was not ready again in time; its log: {self.service_log(name)}")

    # -- status ----------------------------------------------------------------------------
    def status(self) -> list[Component]:
        """Each part of the stack: up, down or external, with address, PID and restarts."""
        state = self.load_state()
        names = self.names_shown(state)
        state = state or StackState()
        out = [self._postgres_status(state), self._broker_status(state)]
        for service in installed_services():
            if service.name in names:
                out.append(self._service_status(service, state.services.get(service.name, {})))
        out.append(self._supervisor_status(state))
        return out

    def names_shown(self, state: StackState | None) -> list[str]:
        """The services of the stack that runs (or last ran) here, else those `up` would start."""
        if state is None:
            return list(self.settings.services)
        return state.selection or list(state.services)

    def _postgres_status(self, state: StackState) -> Component:
        pg = Component(
            "postgres", "postgres", f"{self.settings.host}:{self.settings.postgres_port}"
        )
        if self.settings.database_url and not state.postgres.get("embedded"):
            pg.state, pg.address = "external", _redact(self.settings.database_url)
        elif self.postgres.is_running():
            pg.state, pg.pid = "up", self.postgres.pid()
        return pg

    def _broker_status(self, state: StackState) -> Component:
        broker = Component("broker", "broker", self.broker.bootstrap_servers)
        if self.settings.kafka_bootstrap_servers and not state.broker.get("embedded"):
            broker.state, broker.address = "external", self.settings.kafka_bootstrap_servers
        elif state.broker.get("process"):
            ref = ProcessRef.from_json(state.broker["process"])
            if ref.is_running():
                broker.state, broker.pid = "up", ref.pid
            else:
                broker.detail = "exited: its topics (in memory) are gone; `crmctl down`, `up`"
        return broker

    def _service_status(self, service: ServiceDef, info: dict[str, Any]) -> Component:
        comp = Component(service.name, "service", self.service_url(service))
        comp.restarts = int(info.get("restarts", 0))
        if not info.get("process"):
            return comp
        ref = ProcessRef.from_json(info["process"])
        last_exit = info.get("last_exit")
        if ref.is_running():
            comp.pid = ref.pid
            comp.state = "up" if self.is_ready(service) else "starting"
            if last_exit:
                comp.detail = f"restarted after: {last_exit}"
        elif info.get("restart_at"):
            comp.state = "restarting"
            due = max(0.0, float(info["restart_at"]) - time.time())
            comp.detail = f"{last_exit or 'exited'}; restart in {due:.0f}s"
        else:
            comp.detail = "exited: " + tail(self.service_log(service.name), 1)[:80]
        return comp

    def _supervisor_status(self, state: StackState) -> Component:
        mode = state.supervisor.get("mode", "")
        sup = Component(
            "supervisor",
            "supervisor",
            str(self.supervisor_log) if mode == "background" else mode or "-",
        )
        ref = self.supervisor_ref(state)
        if ref is not None:
            sup.state, sup.pid = "up", ref.pid
            sup.detail = str(state.supervisor.get("state", ""))
            if sup.detail == "running":
                sup.detail = "restarts services that exit"
        elif state.services:
            sup.detail = "not running: nothing restarts a service that exits"
        return sup


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while processes are being stopped: an interruption
    there would leave some of them running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _clear(folder: Path) -> None:
    for path in folder.glob("*.json"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port or ''}{parts.path}"
