"""crmctl brings the embedded stack up and down, supervises it, and says clearly what went wrong."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from crm_contracts import CloudEvent, KafkaRecord, dead_letter_topic, encode_binary, topic_specs
from crm_kit.auth import verify_token
from crm_kit.settings import ServiceSettings
from crm_stack.ports import free_port, port_is_free
from tests.support.events import interaction
from tests.support.kafka import produce
from tests.support.servers import Servers

CRMCTL = [sys.executable, "-m", "crm_stack"]
T = TypeVar("T")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A folder for the stack's state, outside pytest's temporary folders.

    Postgres runs as its own user, which must reach its data folder; each pytest session
    that starts takes the other users' access to pytest's folders away (mode 0700), and
    `pg_ctl stop` then fails when another session starts meanwhile.
    """
    with tempfile.TemporaryDirectory(prefix="crm-test-crmctl-") as folder:
        yield Path(folder)


def _env(workdir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "CRM_DATABASE_URL")
    }
    env.update(
        CRM_STACK_STATE_DIR=str(workdir / "state"),
        CRM_STACK_BROKER_PORT=str(free_port()),
        CRM_STACK_POSTGRES_PORT=str(free_port()),
        CRM_STACK_INGEST_PORT=str(free_port()),
        CRM_STACK_CONTACTS_PORT=str(free_port()),
        CRM_STACK_CASES_PORT=str(free_port()),
        CRM_STACK_CAMPAIGNS_PORT=str(free_port()),
        CRM_STACK_SCORING_PORT=str(free_port()),
        **extra,
    )
    return env


def _crmctl(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CRMCTL, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _status(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in json.loads(_crmctl(env, "status", "--json").stdout)}


def _poll(check: Callable[[], T | None], *, timeout: float = 90.0) -> T:
    """Call `check` until it returns something, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s")


def _alive(pids: list[int]) -> list[int]:
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


class _Foreground:
    """`crmctl up` in the foreground, as `make run` runs it, its output collected."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [*CRMCTL, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self) -> None:
        _poll(lambda: True if "(Ctrl-C stops everything)" in self.output else None)

    def finish(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=120)
        self._reader.join(timeout=10)
        return code


async def _publish(bootstrap: str, events: list[CloudEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = []
        for n, event in enumerate(events):
            record = encode_binary(event, key=f"webshop:c-{n}")
            sent.append(
                await producer.send(
                    "crm.interactions.raw.v1",
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers),
                )
            )
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _on_timeline(dsn: str, event_ids: list[str]) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(DISTINCT event_id) FROM timeline WHERE event_id = ANY($1::text[])",
                event_ids,
            )
        )
    finally:
        await conn.close()


async def _partitions(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = await admin.list_topics()
        described = await admin.describe_topics(names)
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


def test_up_detach_creates_every_topic_then_status_and_down_stop_everything(workdir: Path) -> None:
    env = _env(workdir, CRM_STACK_TOPIC_PARTITIONS="6")
    up = _crmctl(env, "up", "--detach")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "all ready in" in up.stdout
        status = _crmctl(env, "status", "--json")
        assert status.returncode == 0, status.stdout
        components = {c["name"]: c for c in json.loads(status.stdout)}
        assert components["postgres"]["state"] == "up"
        assert components["broker"]["state"] == "up"
        assert all(c["pid"] for c in components.values() if c["state"] == "up")
        bootstrap = components["broker"]["address"]
        partitions = asyncio.run(_partitions(bootstrap))
        for spec in topic_specs(partitions=6):
            assert partitions.get(spec.name) == 6, spec.name
        pids = [c["pid"] for c in components.values() if c["pid"]]
    finally:
        down = _crmctl(env, "down")
    assert down.returncode == 0, down.stderr
    assert "broker" in down.stdout and "postgres" in down.stdout
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)
    after = _crmctl(env, "status", "--json")
    assert {c["state"] for c in json.loads(after.stdout)} == {"down"}


def test_up_with_services_starts_only_those_and_still_creates_every_topic(
    workdir: Path,
) -> None:
    env = _env(workdir)
    up = _crmctl(env, "up", "--detach", "--services", "scoring,contacts")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        status = _crmctl(env, "status", "--json")
        assert status.returncode == 0, status.stdout
        components = {c["name"]: c for c in json.loads(status.stdout)}
        assert list(components) == ["postgres", "broker", "contacts", "scoring", "supervisor"]
        assert {c["state"] for c in components.values()} == {"up"}
        for name in ("INGEST", "CASES", "CAMPAIGNS"):
            assert port_is_free("127.0.0.1", int(env[f"CRM_STACK_{name}_PORT"])), name
        topics_made = asyncio.run(_partitions(components["broker"]["address"]))
        assert {spec.name for spec in topic_specs()} <= set(topics_made)
        refused = _crmctl(env, "restart", "cases")
        assert refused.returncode == 2
        assert "does not run cases (it runs contacts, scoring)" in refused.stderr
        pids = [c["pid"] for c in components.values() if c["pid"]]
    finally:
        down = _crmctl(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "contacts" in down.stdout and "scoring" in down.stdout
    assert _alive(pids) == []


@pytest.mark.parametrize(
    ("args", "setting"),
    [(["--services", "contacts,scorer"], {}), ([], {"CRM_STACK_SERVICES": "contacts,scorer"})],
)
def test_an_unknown_service_is_refused_on_one_line_naming_the_known_ones(
    workdir: Path, args: list[str], setting: dict[str, str]
) -> None:
    result = _crmctl(_env(workdir, **setting), "up", "--detach", *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "'scorer'" in result.stderr
    assert "ingest, contacts, cases, campaigns, scoring" in result.stderr
    assert ("--services" if args else "CRM_STACK_SERVICES") in result.stderr
    assert not (workdir / "state").exists()


def test_postgres_keeps_its_data_across_a_restart(workdir: Path) -> None:
    import asyncpg

    env = _env(workdir, CRM_STACK_SERVICES="none")  # PostgreSQL is what is looked at
    dsn = f"postgresql://postgres@127.0.0.1:{env['CRM_STACK_POSTGRES_PORT']}/postgres"

    async def write() -> None:
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        await conn.close()

    async def read() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            return str(await conn.fetchval("SELECT v FROM kept"))
        finally:
            await conn.close()

    try:
        assert _crmctl(env, "up", "--detach").returncode == 0
        asyncio.run(write())
        assert _crmctl(env, "down").returncode == 0
        assert _crmctl(env, "up", "--detach").returncode == 0
        assert asyncio.run(read()) == "still here"
    finally:
        _crmctl(env, "down")


def test_up_in_the_foreground_stops_everything_on_ctrl_c(workdir: Path) -> None:
    env = _env(workdir)
    proc = subprocess.Popen(
        [*CRMCTL, "up", "--services", "ingest,contacts"],  # the edge and a consumer
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "(Ctrl-C stops everything)" in line:
            break
    status = json.loads(_crmctl(env, "status", "--json").stdout)
    pids = [c["pid"] for c in status if c["pid"]]
    assert {c["state"] for c in status if c["kind"] != "service"} == {"up"}, "".join(lines)
    assert [c["name"] for c in status if c["kind"] == "service"] == ["ingest", "contacts"]
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0
    assert "stopped" in rest
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


def test_a_taken_port_is_named_with_the_setting_that_changes_it(workdir: Path) -> None:
    env = _env(workdir)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["CRM_STACK_BROKER_PORT"])))
        taken.listen()
        result = _crmctl(env, "up", "--detach")
    assert result.returncode == 2
    assert env["CRM_STACK_BROKER_PORT"] in result.stderr
    assert "CRM_STACK_BROKER_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "state" / "stack.json").exists()


def test_two_parts_set_to_one_port_are_named_before_anything_starts(workdir: Path) -> None:
    env = _env(workdir)
    env["CRM_STACK_SCORING_PORT"] = env["CRM_STACK_CONTACTS_PORT"]
    result = _crmctl(env, "up", "--detach")
    assert result.returncode == 2
    assert "CRM_STACK_SCORING_PORT" in result.stderr
    assert "CRM_STACK_CONTACTS_PORT" in result.stderr
    assert env["CRM_STACK_CONTACTS_PORT"] in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "state" / "stack.json").exists()


def test_a_missing_broker_binary_is_reported_with_what_to_do(workdir: Path) -> None:
    env = _env(workdir, CALF_TANSU_BIN=str(workdir / "no-such-tansu"), PATH="/usr/bin:/bin")
    result = _crmctl(env, "up", "--detach")
    assert result.returncode == 2
    assert "tansu" in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert not (workdir / "state" / "postgres").exists()  # said before PostgreSQL started


def test_with_external_servers_it_starts_none_and_creates_the_topics(
    workdir: Path, servers: Servers
) -> None:
    env = _env(
        workdir,
        KAFKA_BOOTSTRAP_SERVERS=servers.bootstrap,
        CRM_DATABASE_URL=servers.admin_dsn,
        CRM_STACK_TOPIC_PARTITIONS="2",
        CRM_STACK_SERVICES="contacts",  # one service shows they are given those servers
    )
    up = _crmctl(env, "up", "--detach")
    try:
        assert up.returncode == 0, up.stderr
        status = {c["name"]: c for c in json.loads(_crmctl(env, "status", "--json").stdout)}
        assert status["broker"]["state"] == "external"
        assert status["postgres"]["state"] == "external"
        assert status["broker"]["pid"] is None
        assert status["contacts"]["state"] == "up"
        partitions = asyncio.run(_partitions(servers.bootstrap))
        assert partitions[topic_specs()[0].name] >= 1
    finally:
        _crmctl(env, "down")


def test_token_prints_a_jwt_the_services_accept_with_the_scopes_asked_for(workdir: Path) -> None:
    env = _env(workdir, CRM_JWT_SECRET="a-test-secret-that-is-long-enough-for-hs256")
    result = _crmctl(env, "token", "--scope", "contacts:read", "--scope", "cases:write")
    assert result.returncode == 0, result.stderr
    settings = ServiceSettings(jwt_secret="a-test-secret-that-is-long-enough-for-hs256")
    principal = verify_token(
        result.stdout.strip(),
        secret=settings.jwt_secret.get_secret_value(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    assert principal.scopes == frozenset({"contacts:read", "cases:write"})


@pytest.mark.parametrize("scope", ["contacts", "Contacts:READ"])
def test_token_refuses_a_malformed_scope_without_a_traceback(workdir: Path, scope: str) -> None:
    result = _crmctl(_env(workdir), "token", "--scope", scope)
    assert result.returncode == 2
    assert "scope" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(400)  # three starts of a service, on a loaded 2-core machine
def test_up_restarts_a_killed_service_and_down_from_another_terminal_stops_everything(
    workdir: Path,
) -> None:
    env = _env(workdir, CRM_STACK_SERVICES="contacts")
    up = _Foreground(env)
    try:
        up.wait_ready()
        before = _status(env)
        os.kill(before["contacts"]["pid"], signal.SIGKILL)

        def restarted(since: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]] | None:
            now = _status(env)
            back = now["contacts"]["state"] == "up"
            return now if back and now["contacts"]["pid"] != since["contacts"]["pid"] else None

        killed = _poll(lambda: restarted(before))
        assert killed["contacts"]["restarts"] == 1
        restart = _crmctl(env, "restart", "contacts")
        assert restart.returncode == 0, restart.stdout + restart.stderr
        after = restarted(killed)
        assert after is not None, after
        assert after["contacts"]["restarts"] == 2
        pids = [c["pid"] for c in after.values() if c["pid"]]
        assert up.proc.pid in pids  # the supervisor is the foreground `up`

        down = _crmctl(env, "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "postgres" in down.stdout and "broker" in down.stdout
    finally:
        code = up.finish()
    assert code == 0, up.output
    assert "contacts exited (killed by SIGKILL)" in up.output
    assert "stopped by `crmctl down`" in up.output
    assert _alive(pids) == []
    assert {c["state"] for c in _status(env).values()} == {"down"}


@pytest.mark.timeout(600)  # two starts of the stack and a drain
def test_down_drains_what_was_published_while_the_services_were_busy(workdir: Path) -> None:
    # Batches smaller than the backlog: stopping contacts at once would strand most of it.
    # contacts alone: the events go straight to the broker, and its timeline is looked at.
    env = _env(workdir, CRM_CONTACTS_KAFKA_MAX_POLL_RECORDS="20", CRM_STACK_SERVICES="contacts")
    contacts_db = f"postgresql://postgres@127.0.0.1:{env['CRM_STACK_POSTGRES_PORT']}/crm_contacts"
    events = [interaction(identity={"external_ids": {"webshop": f"c-{n}"}}) for n in range(200)]
    try:
        up = _crmctl(env, "up", "--detach")
        assert up.returncode == 0, up.stdout + up.stderr
        status = _status(env)
        contacts = psutil.Process(status["contacts"]["pid"])
        contacts.suspend()  # busy: every event is still on the broker when `down` starts
        try:
            asyncio.run(_publish(status["broker"]["address"], events))
        finally:
            contacts.resume()
        down = _crmctl(env, "down", "--timeout", "240", timeout=400)
        assert down.returncode == 0, down.stdout + down.stderr
        assert "drained in" in down.stdout, down.stdout
        # PostgreSQL alone again: what the timeline kept across the stop.
        assert _crmctl({**env, "CRM_STACK_SERVICES": "none"}, "up", "--detach").returncode == 0
        assert asyncio.run(_on_timeline(contacts_db, [e.id for e in events])) == len(events)
    finally:
        _crmctl(env, "down", "--now")


def _dead_letter(event: CloudEvent, reason: str) -> KafkaRecord:
    record = encode_binary(event, key="c")
    return KafkaRecord(
        record.key, record.value, [*record.headers, ("x-error-reason", reason.encode())]
    )


async def test_replay_dlt_lists_a_dry_run_by_reason_then_replays_and_ends(
    workdir: Path, servers: Servers, new_topic
) -> None:
    topic = await new_topic("cli-replay", partitions=2)
    failed, invalid = interaction(), interaction()
    await produce(
        servers.bootstrap,
        dead_letter_topic(topic),
        [_dead_letter(failed, "handler_failed"), _dead_letter(invalid, "invalid_data")],
    )
    env = _env(workdir, KAFKA_BOOTSTRAP_SERVERS=servers.bootstrap)

    dry = await asyncio.to_thread(_crmctl, env, "replay-dlt", topic, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "nothing published: would replay 2" in dry.stdout
    assert f"handler_failed: 1 ({failed.id})" in dry.stdout
    assert f"invalid_data: 1 ({invalid.id})" in dry.stdout
    replay = await asyncio.to_thread(_crmctl, env, "replay-dlt", topic)
    assert replay.returncode == 0, replay.stderr
    assert f"replayed 2 dead letters of {topic}.dlt to {topic}" in replay.stdout
    again = await asyncio.to_thread(_crmctl, env, "replay-dlt", topic)
    assert "replayed 0 dead letters" in again.stdout  # progress was kept
