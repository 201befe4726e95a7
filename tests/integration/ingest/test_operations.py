"""Probes, metrics, logs without PII, and what a channel is told when the broker is away."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from crm_contracts import TopicSpec, to_json_dict
from crm_ingest.app import create_app
from crm_kit.kafka import ensure_topics, wait_for_broker
from crm_stack.broker import EmbeddedBroker
from crm_stack.ports import free_port
from tests.integration.ingest.conftest import SOURCE, Ingest, ingest_settings
from tests.support.events import RAW_INTERACTION, interaction
from tests.support.kafka import eventually
from tests.support.servers import Servers
from tests.support.services import running_app


def _events_total(outcome: str) -> float:
    value = REGISTRY.get_sample_value("crm_ingest_events_total", {"outcome": outcome})
    return value or 0.0


async def test_readyz_checks_the_database_and_the_broker(ingest: Ingest) -> None:
    assert (await ingest.http.get("/livez")).status_code == 200
    response = await ingest.http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": True, "broker": True}


async def test_accepted_and_rejected_events_are_counted(ingest: Ingest, api_key: str) -> None:
    accepted, rejected = _events_total("accepted"), _events_total("rejected")
    bad = to_json_dict(interaction())
    bad["source"] = "urn:channel:elsewhere"
    response = await ingest.post_events([to_json_dict(interaction()), bad], api_key)
    assert response.status_code == 207
    assert _events_total("accepted") == accepted + 1
    assert _events_total("rejected") == rejected + 1
    text = (await ingest.http.get("/metrics")).text
    assert 'crm_ingest_events_total{outcome="accepted"}' in text


async def test_logs_carry_the_event_id_and_never_the_email_or_phone(
    ingest: Ingest, api_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    invalid = to_json_dict(interaction())
    invalid["data"]["identity"]["email"] = "grace hopper@example.com"
    response = await ingest.post_events([RAW_INTERACTION, invalid], api_key)
    assert response.status_code == 207
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    ours = [line for line in lines if line.get("logger", "").startswith("crm_ingest")]
    by_message = {line["message"]: line for line in ours}
    assert by_message["event accepted"]["event_id"] == RAW_INTERACTION["id"]
    assert by_message["event rejected"]["event_id"] == invalid["id"]
    assert by_message["event rejected"]["paths"] == ["data.identity.email"]
    output = json.dumps(lines)
    # Whole identifiers only: a short digit run can turn up in a random event id.
    for pii in ("ada@example.com", "20 7946 0000", "2079460000", "Lovelace", "hopper"):
        assert pii not in output


class OwnBroker:
    """A broker of one test alone, so that it can crash and come back."""

    def __init__(self, log_path: Path) -> None:
        self.broker = EmbeddedBroker(port=free_port(), log_path=log_path)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    async def start(self, topic: str) -> None:
        self.process, _ = self.broker.start()
        await wait_for_broker(self.bootstrap)
        # It keeps topics in memory: a restarted broker is empty.
        await ensure_topics(self.bootstrap, [TopicSpec(topic, "k", 1, "delete", (), "")])

    def crash(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    broker = OwnBroker(tmp_path / "broker.log")
    yield broker
    broker.crash()


async def test_a_broker_outage_is_a_503_that_promises_nothing_and_a_retry_then_succeeds(
    servers: Servers, database: str, own_broker: OwnBroker
) -> None:
    topic = "crm.interactions.raw.v1"
    await own_broker.start(topic)
    settings = ingest_settings(
        servers,
        database,
        topic,
        kafka_bootstrap_servers=own_broker.bootstrap,
        kafka_enable_idempotence=False,
        ack_timeout_seconds=1.0,
    )
    async with (
        running_app(create_app(settings)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
    ):
        ingest = Ingest(http=http, settings=settings)
        key = (await ingest.create_key(SOURCE))["key"]
        assert (await ingest.post_events(to_json_dict(interaction()), key)).status_code == 202
        failed = _events_total("failed")

        own_broker.crash()

        async def not_ready() -> bool:
            response = await http.get("/readyz")
            return response.status_code == 503 and response.json()["failing"] == ["broker"]

        await eventually(not_ready, timeout=30)
        response = await ingest.post_events(to_json_dict(interaction()), key)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        assert "none of them is guaranteed" in response.json()["detail"]
        assert _events_total("failed") == failed + 1

        await own_broker.start(topic)
        event = to_json_dict(interaction())

        async def accepted_on_retry() -> bool:  # what a channel does: retry, with backoff
            response = await ingest.post_events(event, key)
            return response.status_code == 202

        await eventually(accepted_on_retry, timeout=30, interval=0.2)

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await eventually(ready, timeout=30)
