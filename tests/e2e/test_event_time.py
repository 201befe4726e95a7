"""End to end in event time: raw interactions -> contacts -> scoring, both services real.

Both apps run in this process (uvicorn, their consumers, outbox relays and the faust
worker) against the session's broker and Postgres, each with its own database, sharing
topics of this test only. Nothing is published by hand but the raw interactions, so the
time scoring sees is the time contacts passed on. Scoring's clock is fixed (NOW), so its
scores are a function of the events alone and can be compared exactly.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crm_contacts.app import create_app as create_contacts_app
from crm_contacts.settings import ContactsSettings
from crm_contracts import CloudEvent, TopicSpec, dead_letter_topic, decode_json, encode_binary
from crm_contracts import interactions as it
from crm_contracts.scores import SCORE_CHANGED, ScoreChanged
from crm_kit.auth import issue_token
from crm_kit.db import connect, drop_database, ensure_database, with_database
from crm_kit.kafka import delete_topics, ensure_topics
from crm_scoring.app import create_app as create_scoring_app
from crm_scoring.domain import Fact, interaction_fact_id, score
from crm_scoring.model import load_model
from crm_scoring.settings import ScoringSettings
from tests.conftest import unique
from tests.support.harness import QUICK_GROUPS
from tests.support.kafka import eventually, produce, read_until
from tests.support.servers import Servers
from tests.support.services import running_apps, wait_ready

pytestmark = pytest.mark.integration

SECRET = "e2e-event-time-secret-long-enough-for-hs256"
NOW = datetime.now(UTC).replace(microsecond=0)
SOURCE = "urn:channel:webshop"
TOPICS = ("raw", "interactions", "contacts", "cases", "campaigns", "scores", "current", "privacy")


@dataclass
class Pipeline:
    """Contacts and scoring running on shared topics; how a test talks to them."""

    bootstrap: str
    topics: dict[str, str]
    scoring_db: str
    scoring: httpx.AsyncClient
    contacts: httpx.AsyncClient

    async def publish(self, events: Sequence[CloudEvent], *, key: str) -> None:
        await produce(
            self.bootstrap, self.topics["raw"], [encode_binary(e, key=key) for e in events]
        )

    async def read(self, topic: str, count: int) -> list[CloudEvent]:
        """The first `count` events on one of the pipeline's topics."""
        from crm_contracts import decode_record

        records = await read_until(
            self.bootstrap, self.topics[topic], lambda rs: len(rs) >= count, timeout=60
        )
        return [decode_record(r.value, list(r.headers or ())) for r in records]

    async def scored(self, event_ids: Sequence[str]) -> None:
        """Wait until scoring applied these (resolved) events."""

        async def applied() -> bool:
            conn = await connect(self.scoring_db)
            try:
                n = await conn.fetchval(
                    "SELECT count(*) FROM kit_inbox WHERE event_id = ANY($1::text[])",
                    list(event_ids),
                )
            finally:
                await conn.close()
            return bool(n == len(event_ids))

        await eventually(applied, timeout=60, interval=0.05)

    async def scores(self, contact_id: str) -> dict[str, Any]:
        response = await self.scoring.get(f"/v1/contacts/{contact_id}/scores")
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest_asyncio.fixture
async def pipeline(servers: Servers, database: str, tmp_path: Path) -> AsyncIterator[Pipeline]:
    """Contacts (on `database`) and scoring (on a second database), ready."""
    topics = {name: unique(f"time-{name}") for name in TOPICS}
    specs = [
        TopicSpec(n, "test", 3, "delete", (), "test topic")
        for name in topics.values()
        for n in (name, dead_letter_topic(name))
    ]
    await ensure_topics(servers.bootstrap, specs)
    scoring_name = "t_" + uuid.uuid4().hex[:12]
    await ensure_database(servers.admin_dsn, scoring_name)
    scoring_db = with_database(servers.admin_dsn, scoring_name)
    common: dict[str, Any] = {
        "environment": "test",
        "kafka_bootstrap_servers": servers.bootstrap,
        "kafka_enable_idempotence": servers.idempotent_producers,
        "consumer_retry_backoff_ms": 10,
        "jwt_secret": SECRET,
        **QUICK_GROUPS,
    }
    contacts_settings = ContactsSettings(
        **common,
        database_url=database,
        consumer_group_suffix=f"-{uuid.uuid4().hex[:8]}",
        interactions_raw_topic=topics["raw"],
        interactions_topic=topics["interactions"],
        contacts_topic=topics["contacts"],
        cases_topic=topics["cases"],
        campaigns_topic=topics["campaigns"],
        scores_topic=topics["scores"],
        privacy_topic=topics["privacy"],
    )
    scoring_settings = ScoringSettings(
        **common,
        database_url=scoring_db,
        faust_app_id=unique("time-scoring"),
        faust_data_dir=tmp_path / "faust",
        interactions_topic=topics["interactions"],
        cases_topic=topics["cases"],
        contacts_topic=topics["contacts"],
        privacy_topic=topics["privacy"],
        scores_topic=topics["scores"],
        scores_current_topic=topics["current"],
        create_topics=False,
        reevaluate_interval_seconds=0,
    )
    scopes = ["contacts:read", "scores:read"]
    auth = {
        "Authorization": "Bearer "
        + issue_token(secret=SECRET, scopes=scopes, issuer="crm-backbone", audience="crm-api")
    }
    try:
        async with contextlib.AsyncExitStack() as stack:
            contacts_url, scoring_url = await stack.enter_async_context(
                running_apps(
                    create_contacts_app(contacts_settings),
                    create_scoring_app(scoring_settings, clock=lambda: NOW),
                )
            )
            contacts = await stack.enter_async_context(
                httpx.AsyncClient(base_url=contacts_url, headers=auth, timeout=10)
            )
            scoring = await stack.enter_async_context(
                httpx.AsyncClient(base_url=scoring_url, headers=auth, timeout=10)
            )
            await wait_ready(contacts)
            await wait_ready(scoring)
            yield Pipeline(servers.bootstrap, topics, scoring_db, scoring, contacts)
    finally:
        await drop_database(servers.admin_dsn, scoring_name)
        await delete_topics(servers.bootstrap, [s.name for s in specs])


def raw(
    kind: str, email: str, at: datetime, *, amount: str | None = None, channel: str = "web"
) -> CloudEvent:
    """A raw interaction as a channel sends it."""
    data: dict[str, Any] = {"channel": channel, "kind": kind, "identity": {"email": email}}
    if amount is not None:
        data["value"] = {"amount": amount, "currency": "EUR"}
    return decode_json(
        {
            "specversion": "1.0",
            "id": f"evt-{uuid.uuid4().hex}",
            "source": SOURCE,
            "type": "crm.interaction.recorded",
            "time": at.isoformat(),
            "data": data,
        }
    )


def resolved_of(events: Sequence[CloudEvent], raw_events: Sequence[CloudEvent]) -> list[Any]:
    """The resolved interactions of these raw events, in the order of `raw_events`."""
    by_cause = {e.causationid: e for e in events if e.type == it.INTERACTION_RESOLVED}
    return [by_cause[r.id] for r in raw_events]


def expected_scores(raw_events: Sequence[CloudEvent]) -> dict[str, Any]:
    """What the scoring model gives for these interactions at their own times, as of NOW."""
    facts = []
    for event in raw_events:
        data = event.data_as(it.InteractionRecorded)
        facts.append(
            Fact(
                fact_id=interaction_fact_id(event.source, event.id),
                kind=data.kind,
                occurred_at=event.time,
                channel=data.channel.value,
                amount=None if data.value is None else data.value.amount,
                currency=None if data.value is None else data.value.currency,
            )
        )
    card = score(facts, NOW, load_model(None))
    return {
        "engagement": card.engagement,
        "recency": card.recency,
        "frequency": card.frequency,
        "monetary": card.monetary,
        "churn_risk": card.churn_risk,
        "clv": Decimal(card.clv),
    }


def comparable(scores: dict[str, Any]) -> dict[str, Any]:
    return {
        "engagement": scores["engagement"],
        "recency": scores["recency"],
        "frequency": scores["frequency"],
        "monetary": scores["monetary"],
        "churn_risk": scores["churn_risk"],
        "clv": Decimal(scores["clv"]["amount"]),
    }


async def test_a_purchase_from_700_days_ago_is_scored_as_a_lapsed_customer(
    pipeline: Pipeline,
) -> None:
    email = f"lapsed-{uuid.uuid4().hex[:8]}@example.com"
    old = raw("purchase", email, NOW - timedelta(days=700), amount="120.00")
    await pipeline.publish([old], key="lapsed")

    [resolved] = resolved_of(await pipeline.read("interactions", 1), [old])
    [change_event] = [e for e in await pipeline.read("scores", 1) if e.type == SCORE_CHANGED]
    change = change_event.data_as(ScoreChanged)

    assert resolved.time == old.time  # the interaction keeps its time through contacts
    assert change.cause_event_id == resolved.id
    assert change_event.time == NOW  # a decision: the moment the scores are for
    assert change.new.recency == 1  # no purchase in the last 365 days
    assert change.new.frequency == 1
    assert change.new.engagement == 0  # 700 days of a 30-day half-life
    assert change.new.churn_band.value == "medium" and change.new.churn_risk >= 0.5
    assert comparable(change.new.model_dump(mode="json")) == expected_scores([old])


async def test_the_same_history_in_reverse_order_gives_the_same_scores(
    pipeline: Pipeline,
) -> None:
    def history(email: str) -> list[CloudEvent]:
        return [
            raw("page_view", email, NOW - timedelta(days=40, hours=3)),
            raw("purchase", email, NOW - timedelta(days=30, hours=5), amount="200.00"),
            raw("email_clicked", email, NOW - timedelta(days=20, hours=2), channel="email"),
            raw("purchase", email, NOW - timedelta(days=9, hours=7), amount="80.00"),
            raw("complaint", email, NOW - timedelta(days=3, hours=1), channel="phone"),
        ]

    tag = uuid.uuid4().hex[:8]
    ordered = history(f"ordered-{tag}@example.com")
    reversed_ = list(reversed(history(f"reversed-{tag}@example.com")))
    await pipeline.publish(ordered, key=f"ordered-{tag}")
    await pipeline.publish(reversed_, key=f"reversed-{tag}")

    events = await pipeline.read("interactions", len(ordered) + len(reversed_))
    a, b = resolved_of(events, ordered), resolved_of(events, reversed_)
    await pipeline.scored([e.id for e in a + b])
    first, second = a[0].data_as(it.InteractionResolved), b[0].data_as(it.InteractionResolved)
    ordered_scores = await pipeline.scores(first.contact_id)
    reversed_scores = await pipeline.scores(second.contact_id)

    assert [e.time for e in a] == [e.time for e in ordered]
    assert [e.time for e in b] == [e.time for e in reversed_]
    assert ordered_scores["scores"] == reversed_scores["scores"]
    assert comparable(ordered_scores["scores"]) == expected_scores(ordered)
    assert ordered_scores["scores"]["frequency"] == 2
