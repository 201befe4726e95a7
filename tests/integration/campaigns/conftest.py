"""The campaigns service running for real (HTTP, consumer, outbox relay, timers) on unique
topics, with a clock the test controls.

Every test gets its own database, its own topics and its own consumer group. Events from
the other services (resolved interactions, score changes, contact, case and privacy events)
are published as those services publish them; campaign events are read back from the
campaigns topic.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from crm_campaigns.app import create_app
from crm_campaigns.settings import CampaignsSettings
from crm_contracts import CloudEvent, new_event
from crm_contracts import campaigns as cp
from crm_contracts import cases as cs
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_contracts import privacy as pv
from crm_contracts import scores as sc
from tests.support.harness import (
    T0,
    Replicas,
    ServiceClient,
    TestClock,
    settings_factory,
    unique_topics,
)
from tests.support.kafka import eventually
from tests.support.servers import Servers

pytestmark = pytest.mark.integration

TOPIC_FIELDS = (
    "interactions_topic",
    "scores_topic",
    "contacts_topic",
    "cases_topic",
    "privacy_topic",
    "campaigns_topic",
)
SCOPES = ("campaigns:read", "campaigns:write")


def contact() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


def resolved(
    kind: str,
    contact_id: str,
    *,
    time: datetime = T0,
    channel: str = "web",
    value: str | None = None,
    campaign_id: str | None = None,
    step_id: str | None = None,
    stage: str = "repeat_customer",
    consent: dict[str, Any] | None = None,
) -> CloudEvent:
    """A resolved interaction, as contacts publishes it."""
    data = it.InteractionResolved(
        interaction_id=f"evt-{uuid.uuid4().hex}",
        interaction_source="urn:channel:web",
        contact_id=contact_id,
        channel=channel,
        kind=kind,
        value={"amount": value, "currency": "EUR"} if value is not None else None,
        campaign_id=campaign_id,
        campaign_step_id=step_id,
        consent=consent,
        stage=stage,
        previous_stage=stage,
        stage_changed=False,
    )
    return new_event(it.INTERACTION_RESOLVED, data, source="urn:crm:contacts", time=time)


SCORES = {
    "engagement": 50,
    "recency": 3,
    "frequency": 3,
    "monetary": 3,
    "clv": {"amount": "100.00", "currency": "EUR"},
}


def score_changed(
    contact_id: str, *, band: str = "low", tier: str = "silver", time: datetime = T0
) -> CloudEvent:
    """A score change as scoring publishes it."""
    risk = {"low": 0.1, "medium": 0.4, "high": 0.8}[band]
    new = sc.Scores(**SCORES, churn_risk=risk, value_tier=tier, churn_band=band)
    data = sc.ScoreChanged.from_scores(
        contact_id=contact_id,
        model_version="2026.1",
        old=None,
        new=new,
        reasons=[],
        cause_event_id=f"evt-{uuid.uuid4().hex}",
    )
    return new_event(sc.SCORE_CHANGED, data, source="urn:crm:scoring", time=time)


def consent(
    contact_id: str,
    *,
    granted: bool,
    channel: str | None = "email",
    purpose: str = "marketing",
    time: datetime = T0,
) -> CloudEvent:
    data = ct.ContactConsentChanged(
        contact_id=contact_id,
        channel=channel,
        purpose=purpose,
        granted=granted,
        source="urn:channel:web",
    )
    return new_event(ct.CONTACT_CONSENT_CHANGED, data, source="urn:crm:contacts", time=time)


def created(contact_id: str, *, timezone: str | None = None, time: datetime = T0) -> CloudEvent:
    data = ct.ContactCreated(
        contact_id=contact_id, stage="prospect", profile=ct.Profile(timezone=timezone)
    )
    return new_event(ct.CONTACT_CREATED, data, source="urn:crm:contacts", time=time)


def case_opened(
    contact_id: str, *, category: str = "complaint", time: datetime = T0
) -> tuple[str, CloudEvent]:
    case_id = f"case-{uuid.uuid4().hex[:12]}"
    data = cs.CaseOpened(
        case_id=case_id,
        contact_id=contact_id,
        title="Complaint",
        queue="support",
        category=category,
    )
    return case_id, new_event(cs.CASE_OPENED, data, source="urn:crm:cases", time=time)


def case_resolved(contact_id: str, case_id: str, *, time: datetime = T0) -> CloudEvent:
    data = cs.CaseResolved(case_id=case_id, contact_id=contact_id, resolution="refund_issued")
    return new_event(cs.CASE_RESOLVED, data, source="urn:crm:cases", time=time)


def merged(survivor: str, *merged_ids: str, time: datetime = T0) -> CloudEvent:
    return new_event(
        ct.CONTACT_MERGED,
        ct.ContactMerged(survivor_id=survivor, merged_ids=list(merged_ids)),
        source="urn:crm:contacts",
        time=time,
    )


def erasure_requested(contact_id: str, *, time: datetime = T0) -> CloudEvent:
    return new_event(
        pv.PRIVACY_ERASURE_REQUESTED,
        pv.ErasureRequested(
            request_id=f"req-{uuid.uuid4().hex[:8]}", contact_id=contact_id, requested_by="dpo"
        ),
        source="urn:crm:contacts",
        time=time,
    )


def campaign_body(segment_id: str, **overrides: Any) -> dict[str, Any]:
    """A one-step email campaign on a segment; `overrides` change any field."""
    body: dict[str, Any] = {
        "name": "Test campaign",
        "segment_id": segment_id,
        "steps": [{"id": "s1", "channel": "email", "template_ref": "t-1"}],
    }
    body.update(overrides)
    return body


@dataclass
class Campaigns(ServiceClient[CampaignsSettings]):
    """The running campaigns service."""

    scopes: tuple[str, ...] = SCOPES

    async def publish(self, *events: CloudEvent) -> None:
        """Publish other services' events on their topics, in order, and wait until the
        service has applied them."""
        topic_of = {
            "interaction": self.settings.interactions_topic,
            "score": self.settings.scores_topic,
            "contact": self.settings.contacts_topic,
            "case": self.settings.cases_topic,
            "privacy": self.settings.privacy_topic,
        }
        by_topic: dict[str, list[CloudEvent]] = {}
        for event in events:
            by_topic.setdefault(topic_of[event.type.split(".")[1]], []).append(event)
        for topic, batch in by_topic.items():
            await self.publish_on(topic, batch)
        await self.wait_applied(*(e.id for e in events))

    async def put(self, path: str, body: Any, status: int = 201) -> Any:
        response = await self.send("PUT", path, body)
        assert response.status_code == status, response.text
        return response.json()

    async def segment(self, rule: dict[str, Any], *, id: str | None = None) -> str:
        """A segment, evaluated over every known contact (backfill done) before it returns."""
        segment_id = id or f"seg-{uuid.uuid4().hex[:8]}"
        await self.put(f"/v1/segments/{segment_id}", {"name": "Test segment", "rule": rule})

        async def evaluated() -> bool:
            return not (await self.ok(f"/v1/segments/{segment_id}"))["backfilling"]

        await eventually(evaluated, timeout=30)
        return segment_id

    async def launch(self, segment_id: str, **overrides: Any) -> str:
        """A campaign on the segment, launched; its id."""
        campaign_id = f"cmp-{uuid.uuid4().hex[:8]}"
        await self.put(f"/v1/campaigns/{campaign_id}", campaign_body(segment_id, **overrides))
        response = await self.send("POST", f"/v1/campaigns/{campaign_id}/launch")
        assert response.status_code == 200, response.text
        return campaign_id

    async def enrolments(self, contact_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.ok(f"/v1/contacts/{contact_id}/enrolments")
        return found

    async def wait_enrolments(
        self, contact_id: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 30
    ) -> list[dict[str, Any]]:
        async def check() -> list[dict[str, Any]] | None:
            found = await self.enrolments(contact_id)
            return found if done(found) else None

        result: list[dict[str, Any]] = await eventually(check, timeout=timeout)
        return result

    async def campaign_events(
        self, done: Callable[[list[CloudEvent]], bool], *, timeout: float = 30.0
    ) -> list[CloudEvent]:
        return await self.read_events(self.settings.campaigns_topic, done, timeout=timeout)

    async def steps_due(self, contact_id: str) -> list[CloudEvent]:
        """Every step_due so far for the contact, once the step timer is idle (no enrolment
        of the contact is due by the service's clock)."""

        async def idle() -> bool:
            rows = await self.fetch(
                "SELECT count(*) AS n FROM enrolments WHERE contact_id = $1 AND status = 'active' "
                "AND NOT held AND due_at <= $2",
                contact_id,
                self.clock(),
            )
            return bool(rows[0]["n"] == 0)

        await eventually(idle, timeout=30)
        sent = await self.fetch(
            "SELECT event_id FROM sends WHERE contact_id = $1 AND outcome = 'sent'", contact_id
        )
        ids = {r["event_id"] for r in sent}
        events = await self.campaign_events(
            lambda es: ids <= {e.id for e in es if e.type == cp.CAMPAIGN_STEP_DUE}
        )
        return [
            e
            for e in events
            if e.type == cp.CAMPAIGN_STEP_DUE
            and e.data_as(cp.CampaignStepDue).contact_id == contact_id
        ]


def money(amount: str) -> Decimal:
    return Decimal(amount)


@pytest_asyncio.fixture
async def topic_names(servers: Servers) -> AsyncIterator[dict[str, str]]:
    """Unique topics (and their dead-letter topics), created in one request."""
    async with unique_topics(servers, TOPIC_FIELDS, partitions=2) as names:
        yield names


@pytest.fixture
def make_settings(
    servers: Servers, database: str, topic_names: dict[str, str]
) -> Callable[..., CampaignsSettings]:
    """Settings of a campaigns process on this test's database and topics."""
    return settings_factory(
        CampaignsSettings,
        servers,
        database,
        topic_names,
        step_tick_ms=50,
        backfill_tick_ms=50,
        load_examples=False,
    )


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest_asyncio.fixture
async def replicas(
    make_settings: Callable[..., CampaignsSettings], clock: TestClock
) -> AsyncIterator[Replicas[CampaignsSettings, Campaigns]]:
    started = Replicas(make_settings, clock, create_app, Campaigns)
    yield started
    await started.stop_all()


@pytest_asyncio.fixture
async def service(replicas: Replicas[CampaignsSettings, Campaigns]) -> Campaigns:
    """One campaigns process with default settings."""
    return await replicas.start()


async def published(service: Campaigns, *, timeout: float = 30.0) -> list[CloudEvent]:
    """Every campaign event the service has written so far, read back once the relay has
    put each of them on the topic (to check that something was not announced)."""

    async def drained() -> list[int] | None:
        rows = await service.fetch(
            "SELECT count(*) FILTER (WHERE sent_at IS NULL) AS unsent, "
            "count(*) FILTER (WHERE topic = $1) AS written FROM kit_outbox",
            service.settings.campaigns_topic,
        )
        return [int(rows[0]["written"])] if rows[0]["unsent"] == 0 else None

    [written] = await eventually(drained, timeout=timeout)
    return await service.campaign_events(lambda es: len(es) >= written, timeout=timeout)


async def stats(service: Campaigns, campaign_id: str) -> dict[str, Any]:
    """GET /v1/campaigns/{id}/stats."""
    found: dict[str, Any] = await service.ok(f"/v1/campaigns/{campaign_id}/stats")
    return found
