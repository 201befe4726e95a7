"""crmctl brings the embedded stack up and down, and says clearly what went wrong."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from crm_contracts import topic_specs
from crm_kit.auth import verify_token
from crm_kit.settings import ServiceSettings
from crm_stack.ports import free_port
from tests.support.servers import Servers

CRMCTL = [sys.executable, "-m", "crm_stack"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "CRM_DATABASE_URL")
    }
    env.update(
        CRM_STACK_STATE_DIR=str(tmp_path / "state"),
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


async def _partitions(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = await admin.list_topics()
        described = await admin.describe_topics(names)
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


def test_up_detach_creates_every_topic_then_status_and_down_stop_everything(tmp_path: Path) -> None:
    env = _env(tmp_path, CRM_STACK_TOPIC_PARTITIONS="6")
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


def test_postgres_keeps_its_data_across_a_restart(tmp_path: Path) -> None:
    import asyncpg

    env = _env(tmp_path)
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


def test_up_in_the_foreground_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    env = _env(tmp_path)
    proc = subprocess.Popen(
        [*CRMCTL, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "(Ctrl-C stops everything)" in line:
            break
    status = json.loads(_crmctl(env, "status", "--json").stdout)
    pids = [c["pid"] for c in status if c["pid"]]
    assert {c["state"] for c in status if c["kind"] != "service"} == {"up"}, lines
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0
    assert "stopped" in rest
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


def test_a_taken_port_is_named_with_the_setting_that_changes_it(tmp_path: Path) -> None:
    env = _env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["CRM_STACK_BROKER_PORT"])))
        taken.listen()
        result = _crmctl(env, "up", "--detach")
    assert result.returncode == 2
    assert env["CRM_STACK_BROKER_PORT"] in result.stderr
    assert "CRM_STACK_BROKER_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "stack.json").exists()


def test_a_missing_broker_binary_is_reported_with_what_to_do(tmp_path: Path) -> None:
    env = _env(tmp_path, CALF_TANSU_BIN=str(tmp_path / "no-such-tansu"), PATH="/usr/bin:/bin")
    result = _crmctl(env, "up", "--detach")
    assert result.returncode == 2
    assert "tansu" in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_with_external_servers_it_starts_none_and_creates_the_topics(
    tmp_path: Path, servers: Servers
) -> None:
    env = _env(
        tmp_path,
        KAFKA_BOOTSTRAP_SERVERS=servers.bootstrap,
        CRM_DATABASE_URL=servers.admin_dsn,
        CRM_STACK_TOPIC_PARTITIONS="2",
    )
    up = _crmctl(env, "up", "--detach")
    try:
        assert up.returncode == 0, up.stderr
        status = {c["name"]: c for c in json.loads(_crmctl(env, "status", "--json").stdout)}
        assert status["broker"]["state"] == "external"
        assert status["postgres"]["state"] == "external"
        assert status["broker"]["pid"] is None
        partitions = asyncio.run(_partitions(servers.bootstrap))
        assert partitions[topic_specs()[0].name] >= 1
    finally:
        _crmctl(env, "down")


def test_token_prints_a_jwt_the_services_accept_with_the_scopes_asked_for(tmp_path: Path) -> None:
    env = _env(tmp_path, CRM_JWT_SECRET="a-test-secret-that-is-long-enough-for-hs256")
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
def test_token_refuses_a_malformed_scope_without_a_traceback(tmp_path: Path, scope: str) -> None:
    result = _crmctl(_env(tmp_path), "token", "--scope", scope)
    assert result.returncode == 2
    assert "scope" in result.stderr
    assert "Traceback" not in result.stderr
