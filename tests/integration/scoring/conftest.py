"""Fixtures and helpers for the scoring service against the real broker and Postgres.

Each test gets its own topics, consumer group (faust app id) and database, so tests never
see each other's events.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka.structs import ConsumerRecord
from pydantic import SecretStr

from crm_contracts import CloudEvent, decode_record, encode_binary, new_event
from crm_contracts import cases as cs
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_contracts.base import Channel, Money
from crm_contracts.scores import ScoreChanged
from crm_kit.auth import issue_token
from crm_kit.kafka import delete_topics
from crm_scoring.app import create_app, topic_specs
from crm_scoring.settings import ScoringSettings
from tests.support.harness import QUICK_GROUPS
from tests.support.kafka import eventually, produce, read_until
from tests.support.servers import Servers
from tests.support.services import running_app

pytestmark = pytest.mark.integration

SECRET = "scoring-integration-test-secret-long-enough"


@pytest_asyncio.fixture
async def scoring_settings(
    servers: Servers, database: str, tmp_path: Path
) -> AsyncIterator[ScoringSettings]:
    """Settings with topics, consumer group and database of this test only."""
    suffix = uuid.uuid4().hex[:10]
    settings = ScoringSettings(
        environment="test",
        database_url=database,
        kafka_bootstrap_servers=servers.bootstrap,
        kafka_enable_idempotence=servers.idempotent_producers,
        faust_app_id=f"scoring-{suffix}",
        faust_data_dir=tmp_path / "faust",
        interactions_topic=f"interactions-{suffix}",
        cases_topic=f"cases-{suffix}",
        contacts_topic=f"contacts-{suffix}",
        privacy_topic=f"privacy-{suffix}",
        scores_topic=f"scores-{suffix}",
        scores_current_topic=f"scores-current-{suffix}",
        topic_partitions=3,
        reevaluate_interval_seconds=0,
        consumer_retry_backoff_ms=10,
        consumer_max_retries=2,
        jwt_secret=SecretStr(SECRET),
        **QUICK_GROUPS,
    )
    yield settings
    await delete_topics(servers.bootstrap, [spec.name for spec in topic_specs(settings)])


def token(settings: ScoringSettings, *scopes: str) -> str:
    """A bearer token with these scopes."""
    return issue_token(
        secret=SECRET,
        scopes=scopes or ("scores:read", "scores:write"),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


class Scoring:
    """A running scoring service in this process, and ways to talk to it."""

    def __init__(self, settings: ScoringSettings, base_url: str, app: Any) -> None:
        self.settings = settings
        self.app = app
        self.http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token(settings)}"}
        )

    async def ready(self) -> None:
        async def check() -> bool:
            return (await self.http.get("/readyz")).status_code == 200

        await eventually(check, timeout=30)

    async def scores(self, contact_id: str, **params: str) -> dict[str, Any] | None:
        response = await self.http.get(f"/v1/contacts/{contact_id}/scores", params=params)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())


@pytest_asyncio.fixture
async def start_scoring(
    scoring_settings: ScoringSettings,
) -> AsyncIterator[Callable[..., Any]]:
    """Factory: an async context manager running the service (ready on entry)."""
    import contextlib

    @contextlib.asynccontextmanager
    async def start(
        settings: ScoringSettings | None = None, **kwargs: Any
    ) -> AsyncIterator[Scoring]:
        settings = settings or scoring_settings
        app = create_app(settings, **kwargs)
        async with running_app(app) as base_url:
            service = Scoring(settings, base_url, app)
            try:
                await service.ready()
                yield service
            finally:
                await service.http.aclose()

    yield start


# -- events -------------------------------------------------------------------------------


def interaction(
    contact_id: str,
    kind: str = "page_view",
    *,
    channel: Channel = Channel.WEB,
    amount: str | None = None,
    time: datetime | None = None,
    event_id: str | None = None,
    interaction_id: str | None = None,
    **fields: Any,
) -> CloudEvent:
    """A resolved interaction, as the contacts service would publish it."""
    data = it.InteractionResolved(
        interaction_id=interaction_id or f"raw-{uuid.uuid4().hex}",
        interaction_source="urn:channel:test",
        contact_id=contact_id,
        channel=channel,
        kind=kind,
        value=Money(amount=Decimal(amount), currency="EUR") if amount else None,
        stage=ct.LifecycleStage.PROSPECT,
        previous_stage=ct.LifecycleStage.PROSPECT,
        stage_changed=False,
        **fields,
    )
    return new_event(
        it.INTERACTION_RESOLVED,
        data,
        source="urn:crm:contacts",
        id=event_id,
        time=time or datetime.now(UTC),
    )


def sla_breached(contact_id: str, case_id: str = "case-1") -> CloudEvent:
    """A case that missed its resolution SLA."""
    return new_event(
        cs.CASE_SLA_BREACHED,
        cs.CaseSlaBreached(
            case_id=case_id,
            contact_id=contact_id,
            sla_kind=cs.SlaKind.RESOLUTION,
            due_at=datetime.now(UTC),
            queue="billing",
            priority=cs.CasePriority.HIGH,
        ),
        source="urn:crm:cases",
    )


def merged(survivor_id: str, *merged_ids: str) -> CloudEvent:
    """Contacts proved to be one person."""
    return new_event(
        ct.CONTACT_MERGED,
        ct.ContactMerged(
            survivor_id=survivor_id, merged_ids=list(merged_ids), matched_on=ct.IdentityType.EMAIL
        ),
        source="urn:crm:contacts",
    )


def erased(contact_id: str) -> CloudEvent:
    """The contacts service erased a contact."""
    return new_event(
        ct.CONTACT_ERASED,
        ct.ContactErased(contact_id=contact_id, request_id=f"pr-{uuid.uuid4().hex[:8]}"),
        source="urn:crm:contacts",
    )


def topic_of(settings: ScoringSettings, event: CloudEvent) -> str:
    """The (test) topic an event goes to."""
    if event.type.startswith("crm.interaction."):
        return settings.interactions_topic
    if event.type.startswith("crm.case."):
        return settings.cases_topic
    if event.type.startswith("crm.privacy."):
        return settings.privacy_topic
    return settings.contacts_topic


async def publish(settings: ScoringSettings, *events: CloudEvent) -> None:
    """Publish events (binary mode, keyed by contact) to their topics, in order."""
    for event in events:
        key = event.subject
        await produce(
            settings.kafka_bootstrap_servers,
            topic_of(settings, event),
            [encode_binary(event, key=key)],
        )


def changes_of(records: Sequence[ConsumerRecord]) -> list[ScoreChanged]:
    """Decoded crm.score.changed events."""
    return [decode_record(r.value, list(r.headers or ())).data_as(ScoreChanged) for r in records]


async def read_changes(
    settings: ScoringSettings,
    done: Callable[[list[ScoreChanged]], bool],
    *,
    timeout: float = 20.0,
) -> list[ScoreChanged]:
    """Read the score changes topic from the start until `done(changes)`."""
    records = await read_until(
        settings.kafka_bootstrap_servers,
        settings.scores_topic,
        lambda rs: done(changes_of(rs)),
        timeout=timeout,
    )
    return changes_of(records)


def for_contact(changes: Sequence[ScoreChanged], contact_id: str) -> list[ScoreChanged]:
    """The changes of one contact, in the order published."""
    return [c for c in changes if c.contact_id == contact_id]
