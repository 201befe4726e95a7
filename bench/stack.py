"""The bench's own back end: `crmctl up` in a temporary state folder, on free ports.

Never the user's `.state/`. With KAFKA_BOOTSTRAP_SERVERS / CRM_DATABASE_URL set, crmctl uses
those servers and starts neither (give the bench servers of its own: it creates the services'
databases and loads contacts there). Everything started is stopped when the block ends, on
an error and on Ctrl-C or SIGTERM too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from crm_kit.auth import issue_token
from crm_kit.settings import ServiceSettings
from crm_stack.ports import free_port
from crm_stack.services import KNOWN_SERVICES

CRMCTL = [sys.executable, "-m", "crm_stack"]


@dataclass
class Component:
    """One line of `crmctl status --json`."""

    name: str
    kind: str
    address: str
    pid: int | None


@dataclass
class BenchStack:
    """A running back end started by the bench."""

    env: dict[str, str]
    state_dir: Path
    startup_seconds: float = 0.0
    reported_ready_seconds: float | None = None
    components: list[Component] = field(default_factory=list)
    _last_consumed: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def services(self) -> list[Component]:
        return [c for c in self.components if c.kind == "service"]

    @property
    def bootstrap(self) -> str:
        return next(c.address for c in self.components if c.kind == "broker")

    @property
    def admin_dsn(self) -> str:
        given = self.env.get("CRM_DATABASE_URL")
        if given:
            return given
        return f"postgresql://postgres@127.0.0.1:{self.env['CRM_STACK_POSTGRES_PORT']}/postgres"

    def database(self, service: str) -> str:
        from crm_kit.db import with_database

        return with_database(self.admin_dsn, f"crm_{service}")

    def url(self, service: str) -> str:
        return next(c.address for c in self.services if c.name == service)

    def token(self, *scopes: str) -> str:
        """A bearer token the services accept."""
        defaults = ServiceSettings(environment="development")
        return issue_token(
            secret=defaults.jwt_secret.get_secret_value(),
            scopes=list(scopes),
            subject="bench",
            issuer=defaults.jwt_issuer,
            audience=defaults.jwt_audience,
            ttl_seconds=7200,
        )

    def crmctl(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CRMCTL, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def refresh(self) -> None:
        """Read the components from `crmctl status --json`."""
        status = json.loads(self.crmctl("status", "--json").stdout)
        self.components = [Component(c["name"], c["kind"], c["address"], c["pid"]) for c in status]

    def memory(self) -> dict[str, float | None]:
        """RSS in MB of each service and of the broker; Postgres as the sum of its processes."""
        out: dict[str, float | None] = {}
        for c in self.components:
            if c.pid is None:
                out[c.name] = None
                continue
            try:
                proc = psutil.Process(c.pid)
                rss = proc.memory_info().rss
                if c.kind == "postgres":
                    rss += sum(p.memory_info().rss for p in proc.children(recursive=True))
            except psutil.Error:
                out[c.name] = None
                continue
            out[c.name] = round(rss / 2**20, 1)
        return out

    def consumed(self) -> dict[str, dict[str, float]]:
        """Per service, events consumed per topic so far (every outcome but `retried`).

        A service too busy to answer in time keeps its last reading (counters only grow).
        """
        out: dict[str, dict[str, float]] = {}
        for c in self.services:
            out[c.name] = self._last_consumed.get(c.name, {})
            try:
                with urllib.request.urlopen(c.address + "/metrics", timeout=10) as response:
                    text = response.read().decode()
            except OSError:
                continue
            out[c.name] = {}
            for family in text_string_to_metric_families(text):
                if family.name != "crm_events_consumed":
                    continue
                for sample in family.samples:
                    if sample.name.endswith("_total") and sample.labels["outcome"] != "retried":
                        topic = sample.labels["topic"]
                        out[c.name][topic] = out[c.name].get(topic, 0.0) + sample.value
            self._last_consumed[c.name] = out[c.name]
        return out


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU time of a process (and of its living children: Postgres's backends)."""
    process = psutil.Process(pid)
    times = process.cpu_times()
    total = float(times.user + times.system)
    if children:
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):  # it just ended
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
    return total


def _stack_env(state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CRM_STACK_STATE_DIR"] = str(state_dir)
    env["CRM_ENVIRONMENT"] = "development"
    env["CRM_STACK_BROKER_PORT"] = str(free_port())
    env["CRM_STACK_POSTGRES_PORT"] = str(free_port())
    for service in KNOWN_SERVICES:
        env[f"CRM_STACK_{service.name.upper()}_PORT"] = str(free_port())
    return env


@contextlib.contextmanager
def bench_stack() -> Iterator[BenchStack]:
    """Start the whole back end for the bench; stop it afterwards, whatever happens."""
    state_dir = Path(tempfile.mkdtemp(prefix="crm-bench-stack-"))
    stack = BenchStack(env=_stack_env(state_dir), state_dir=state_dir)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        started = time.monotonic()
        up = stack.crmctl("up", "--detach")
        stack.startup_seconds = round(time.monotonic() - started, 2)
        if up.returncode != 0:
            raise RuntimeError(f"crmctl up failed:\n{up.stdout}\n{up.stderr}")
        found = re.search(r"all ready in ([0-9.]+)s", up.stdout)
        stack.reported_ready_seconds = float(found.group(1)) if found else None
        stack.refresh()
        yield stack
    finally:
        down = stack.crmctl("down", "--now", timeout=120)  # its results are in: no drain
        if down.returncode != 0:
            print(f"bench: crmctl down: {down.stderr}", file=sys.stderr)
        signal.signal(signal.SIGTERM, previous)
        _remove(state_dir)


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
