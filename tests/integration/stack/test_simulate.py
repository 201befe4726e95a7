"""`crmctl simulate` against a running stack: its events arrive, by Kafka and HTTP, resolved."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from crm_contracts import topics
from crm_stack.ports import free_port
from crm_stack.simulate.journeys import Route, SimConfig, TrafficGenerator

pytestmark = pytest.mark.integration

CRMCTL = [sys.executable, "-m", "crm_stack"]
SEED = 11
EVENTS = 150
CONTACTS = 30


def _crmctl(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CRMCTL, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def stack() -> Iterator[dict[str, str]]:
    """A back end of its own (`crmctl up --detach`), stopped afterwards.

    ingest and contacts only: the events come in through them, and are looked for
    resolved on crm.interactions.v1 and in contacts.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "CRM_DATABASE_URL")
    }
    # Not under pytest's basetemp: another pytest session starting meanwhile prunes old
    # basetemp folders, and Postgres fails when its data folder goes (tests/conftest.py).
    workdir = tempfile.TemporaryDirectory(prefix="crm-test-simulate-")
    env["CRM_STACK_STATE_DIR"] = str(Path(workdir.name) / "state")
    env["CRM_STACK_TOPIC_PARTITIONS"] = "3"
    env["CRM_STACK_SERVICES"] = "ingest,contacts"
    for name in ("BROKER", "POSTGRES", "INGEST", "CONTACTS", "CASES", "CAMPAIGNS", "SCORING"):
        env[f"CRM_STACK_{name}_PORT"] = str(free_port())
    up = _crmctl(env, "up", "--detach", timeout=180)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield env
    finally:
        _crmctl(env, "down")
        workdir.cleanup()


def _resolved_correlation_ids(bootstrap: str, wanted: set[str], timeout: float) -> set[str]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "test-simulate", "enable.auto.commit": False}
    )
    seen: set[str] = set()
    try:
        meta = consumer.list_topics(topics.INTERACTIONS, timeout=30).topics[topics.INTERACTIONS]
        consumer.assign(
            [TopicPartition(topics.INTERACTIONS, p, OFFSET_BEGINNING) for p in meta.partitions]
        )
        deadline = time.monotonic() + timeout
        while not wanted <= seen and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is None:
                    headers = dict(message.headers() or [])
                    seen.add(headers.get("ce_correlationid", b"").decode())
    finally:
        consumer.close()
    return seen


def test_simulate_sends_journeys_that_the_back_end_resolves(stack: dict[str, str]) -> None:
    result = _crmctl(
        stack,
        "simulate",
        "--rate", "50", "--events", str(EVENTS), "--contacts", str(CONTACTS),
        "--seed", str(SEED), "--http-share", "0.2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"sent {EVENTS} in" in result.stderr
    assert "errors 0" in result.stderr

    expected = list(
        itertools.islice(TrafficGenerator(SimConfig(seed=SEED, contacts=CONTACTS)), EVENTS)
    )
    wanted = {e.id for e in expected}
    assert {e.route for e in expected} >= {Route.HTTP, Route.KAFKA_BINARY}
    status = {c["name"]: c for c in json.loads(_crmctl(stack, "status", "--json").stdout)}
    seen = _resolved_correlation_ids(status["broker"]["address"], wanted, timeout=90)
    assert wanted <= seen, f"{len(wanted - seen)} of {len(wanted)} events were not resolved"

    signup = next(e for e in expected if e.step == "signup")
    token = _crmctl(stack, "token", "--scope", "contacts:read").stdout.strip()
    found = httpx.get(
        f"{status['contacts']['address']}/v1/contacts",
        params={"email": signup.event["data"]["identity"]["email"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert found.status_code == 200
    assert len(found.json()["items"]) == 1


def test_simulate_says_what_to_do_when_ingest_is_not_there(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["CRM_STACK_STATE_DIR"] = str(tmp_path / "state")
    env["CRM_STACK_INGEST_PORT"] = str(free_port())
    result = _crmctl(env, "simulate", "--events", "5", "--http-share", "0.5", timeout=60)
    assert result.returncode == 2
    assert "--http-share 0" in result.stderr
    assert "Traceback" not in result.stderr
