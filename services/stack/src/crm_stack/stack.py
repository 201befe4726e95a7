"""Bring the whole back end up and down on one machine, and tell its status."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from crm_contracts import topic_specs
from crm_kit.db import ensure_database, with_database
from crm_kit.kafka import ensure_topics, wait_for_broker
from crm_stack.broker import EmbeddedBroker
from crm_stack.errors import StackError
from crm_stack.ports import port_is_free
from crm_stack.postgres import EmbeddedPostgres
from crm_stack.processes import ProcessRef, current_python, spawn, tail, terminate
from crm_stack.services import ServiceDef, installed_services
from crm_stack.settings import StackSettings


@dataclass
class Component:
    """One line of `crmctl status`."""

    name: str
    kind: str  # postgres | broker | service
    address: str
    state: str = "down"  # up | down | starting | external
    pid: int | None = None
    detail: str = ""


@dataclass
class StackState:
    """What crmctl started, persisted in `<state_dir>/stack.json`."""

    postgres: dict[str, Any] = field(default_factory=dict)
    broker: dict[str, Any] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: float = 0.0


class Stack:
    """The embedded stack described by `StackSettings`."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir.resolve()
        self.state_file = self.state_dir / "stack.json"
        self.logs = self.state_dir / "logs"
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

    # -- state file ------------------------------------------------------------------------
    def load_state(self) -> StackState | None:
        try:
            return StackState(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _save_state(self, state: StackState) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(state), indent=2))

    def running(self) -> bool:
        """True when a stack started from this state folder still has a live process."""
        state = self.load_state()
        if state is None:
            return False
        refs = [state.broker.get("process"), *(s.get("process") for s in state.services.values())]
        return any(r and ProcessRef.from_json(r).is_running() for r in refs) or (
            bool(state.postgres.get("embedded")) and self.postgres.is_running()
        )

    # -- up --------------------------------------------------------------------------------
    def up(self, *, on_progress: Any = print) -> StackState:
        """Start Postgres, the broker, the topics, the databases and every installed service."""
        if self.running():
            raise StackError(
                f"the stack in {self.state_dir} is already running: see `crmctl status`, "
                "stop it with `crmctl down`"
            )
        services = installed_services()
        self._check_ports(services)
        state = StackState(started_at=time.time())
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            if self.settings.database_url is None:
                on_progress(
                    f"starting PostgreSQL on {self.settings.host}:{self.settings.postgres_port}"
                )
                ref = self.postgres.start()
                state.postgres = {"embedded": True, "process": ref.to_json()}
            else:
                state.postgres = {"embedded": False}
            self._save_state(state)
            if self.settings.kafka_bootstrap_servers is None:
                on_progress(f"starting the broker on {self.broker.bootstrap_servers}")
                _, ref = self.broker.start()
                state.broker = {"embedded": True, "process": ref.to_json()}
            else:
                state.broker = {"embedded": False}
            self._save_state(state)
            asyncio.run(self._prepare(services, on_progress))
            for service in services:
                state.services[service.name] = {"process": self._start_service(service).to_json()}
                self._save_state(state)
            self._wait_ready(services, on_progress)
        except BaseException:
            self.down()
            raise
        return state

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
        taken = [
            f"{what}: {port}" for what, port in wanted if not port_is_free(self.settings.host, port)
        ]
        if taken:
            raise StackError(
                "these ports are already taken on "
                f"{self.settings.host}: {', '.join(taken)}. Stop what uses them (`crmctl down` if "
                "it is an earlier stack) or choose other ports with the settings named."
            )

    async def _prepare(self, services: list[ServiceDef], on_progress: Any) -> None:
        try:
            await wait_for_broker(self.bootstrap_servers, timeout=20)
        except TimeoutError as exc:
            raise StackError(f"{exc}; its log:\n{tail(self.broker.log_path)}") from exc
        created = await ensure_topics(
            self.bootstrap_servers, topic_specs(partitions=self.settings.topic_partitions)
        )
        on_progress(f"topics: {len(created)} created, partitions {self.settings.topic_partitions}")
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

    def _start_service(self, service: ServiceDef) -> ProcessRef:
        _, ref = spawn(
            [current_python(), "-m", service.package],
            log_path=self.logs / f"{service.name}.log",
            env=self.service_env(service),
        )
        return ref

    def _wait_ready(self, services: list[ServiceDef], on_progress: Any) -> None:
        deadline = time.monotonic() + self.settings.ready_timeout
        pending = {s.name: s for s in services}
        while pending and time.monotonic() < deadline:
            state = self.load_state()
            for name, service in list(pending.items()):
                proc = (state.services.get(name, {}) if state else {}).get("process")
                if proc and not ProcessRef.from_json(proc).is_running():
                    raise StackError(
                        f"service {name} exited at start; its log "
                        f"({self.logs / (name + '.log')}):\n{tail(self.logs / (name + '.log'))}"
                    )
                if _http_ok(self.service_url(service) + "/readyz"):
                    on_progress(f"{name} ready on {self.service_url(service)}")
                    del pending[name]
            time.sleep(0.1)
        if pending:
            raise StackError(
                f"not ready after {self.settings.ready_timeout:.0f}s: {', '.join(pending)}; "
                f"see the logs in {self.logs}"
            )

    # -- down ------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop services, then the broker, then Postgres; return what was stopped."""
        stopped: list[str] = []
        state = self.load_state() or StackState()
        for name, info in state.services.items():
            if info.get("process") and terminate(ProcessRef.from_json(info["process"])):
                stopped.append(name)
        if state.broker.get("process") and terminate(ProcessRef.from_json(state.broker["process"])):
            stopped.append("broker")
        if state.postgres.get("embedded") and self.postgres.is_running():
            self.postgres.stop()
            stopped.append("postgres")
        if self.state_file.exists():
            self.state_file.unlink()
        return stopped

    # -- status ----------------------------------------------------------------------------
    def status(self) -> list[Component]:
        """Each part of the stack: up, down or external, with address and PID."""
        state = self.load_state() or StackState()
        out: list[Component] = []
        pg = Component(
            "postgres", "postgres", f"{self.settings.host}:{self.settings.postgres_port}"
        )
        if self.settings.database_url and not state.postgres.get("embedded"):
            pg.state, pg.address = "external", _redact(self.settings.database_url)
        elif self.postgres.is_running():
            pg.state, pg.pid = "up", self.postgres.pid()
        out.append(pg)
        broker = Component("broker", "broker", self.broker.bootstrap_servers)
        if self.settings.kafka_bootstrap_servers and not state.broker.get("embedded"):
            broker.state, broker.address = "external", self.settings.kafka_bootstrap_servers
        elif state.broker.get("process"):
            ref = ProcessRef.from_json(state.broker["process"])
            if ref.is_running():
                broker.state, broker.pid = "up", ref.pid
        out.append(broker)
        for service in installed_services():
            comp = Component(service.name, "service", self.service_url(service))
            info = state.services.get(service.name, {})
            if info.get("process"):
                ref = ProcessRef.from_json(info["process"])
                if ref.is_running():
                    comp.pid = ref.pid
                    comp.state = "up" if _http_ok(comp.address + "/readyz") else "starting"
                else:
                    comp.detail = "exited: " + tail(self.logs / f"{service.name}.log", 1)[:80]
            out.append(comp)
        return out


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
