"""End to end: a raw interaction on Kafka shows up in the contact's 360 view.

The contacts service runs as its own process (`python -m crm_contacts`, as crmctl starts it)
against the session's broker and Postgres; the test talks to it through Kafka and HTTP only,
and records how long an interaction takes from the broker's acknowledgement to the 360.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crm_contracts import decode_json, encode_binary
from crm_kit.auth import issue_token
from crm_stack.ports import free_port
from tests.support.kafka import eventually, produce
from tests.support.servers import Servers

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-secret-not-a-placeholder-0123456789"
SAMPLES = 20


def interaction(email: str, kind: str = "page_view") -> Any:
    return decode_json(
        {
            "specversion": "1.0",
            "id": f"evt-{uuid.uuid4().hex}",
            "source": "urn:channel:webshop",
            "type": "crm.interaction.recorded",
            "time": "2026-11-22T10:00:00Z",
            "data": {"channel": "web", "kind": kind, "identity": {"email": email}},
        }
    )


@pytest_asyncio.fixture
async def contacts_process(
    servers: Servers, database: str, new_topic: Callable[..., Any]
) -> AsyncIterator[tuple[str, str]]:
    """The contacts service as a process of its own; yields (base URL, raw topic)."""
    topics = {
        name: await new_topic(name.removesuffix("_TOPIC").lower())
        for name in (
            "INTERACTIONS_RAW_TOPIC",
            "INTERACTIONS_TOPIC",
            "CONTACTS_TOPIC",
            "CASES_TOPIC",
            "CAMPAIGNS_TOPIC",
            "SCORES_TOPIC",
            "PRIVACY_TOPIC",
        )
    }
    port = free_port()
    env = {
        **os.environ,
        "CRM_CONTACTS_DATABASE_URL": database,
        "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap,
        "CRM_CONTACTS_HTTP_HOST": "127.0.0.1",
        "CRM_CONTACTS_HTTP_PORT": str(port),
        "CRM_JWT_SECRET": SECRET,
        "CRM_ENVIRONMENT": "test",
        "CRM_CONTACTS_CONSUMER_GROUP_SUFFIX": f"-{uuid.uuid4().hex[:8]}",
        **{f"CRM_CONTACTS_{name}": topic for name, topic in topics.items()},
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crm_contacts",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:

            async def ready() -> bool:
                if proc.returncode is not None:
                    raise AssertionError(f"contacts exited with {proc.returncode}")
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=60, interval=0.05)
        yield base_url, topics["INTERACTIONS_RAW_TOPIC"]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=20)


async def test_a_raw_interaction_on_kafka_appears_in_the_360_view(
    servers: Servers, contacts_process: tuple[str, str], record_property: Any, capsys: Any
) -> None:
    base_url, raw_topic = contacts_process
    token = issue_token(
        secret=SECRET, scopes=["contacts:read"], issuer="crm-backbone", audience="crm-api"
    )
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=5
    ) as http:

        async def shows_up_in_360(event: Any, contact_id: str | None) -> tuple[str, float]:
            await produce(servers.bootstrap, raw_topic, [encode_binary(event, key="ada")])
            acknowledged = time.perf_counter()

            async def in_360() -> str | None:
                cid = contact_id
                if cid is None:
                    found = await http.get("/v1/contacts", params={"email": "ada@example.com"})
                    items = found.json()["items"]
                    if not items:
                        return None
                    cid = items[0]["id"]
                view = (await http.get(f"/v1/contacts/{cid}/360")).json()
                if any(e["event_id"] == event.id for e in view["timeline"]):
                    return str(cid)
                return None

            found_id: str = await eventually(in_360, timeout=20, interval=0.002)
            return found_id, time.perf_counter() - acknowledged

        contact_id, first = await shows_up_in_360(interaction("Ada@Example.com", "signup"), None)
        latencies = [
            (await shows_up_in_360(interaction("ada@example.com"), contact_id))[1]
            for _ in range(SAMPLES)
        ]

    p50 = statistics.median(latencies)
    worst = max(latencies)
    record_property("raw_to_360_first_seconds", round(first, 4))
    record_property("raw_to_360_p50_seconds", round(p50, 4))
    record_property("raw_to_360_max_seconds", round(worst, 4))
    with capsys.disabled():
        print(
            f"\nraw event -> 360 view: first (new contact) {first * 1000:.1f} ms; "
            f"next {SAMPLES}: median {p50 * 1000:.1f} ms, max {worst * 1000:.1f} ms"
        )
    assert first < 5 and p50 < 1
