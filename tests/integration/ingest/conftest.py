"""An ingest app served for real (uvicorn, its own database, a fresh raw topic) per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from aiokafka.structs import ConsumerRecord
from pydantic import SecretStr

from crm_contracts import KafkaRecord
from crm_ingest.app import create_app
from crm_ingest.settings import IngestSettings
from crm_kit.auth import issue_token
from tests.support.kafka import header, produce, read_until
from tests.support.servers import Servers
from tests.support.services import running_app

SOURCE = "urn:channel:webshop"
JWT_SECRET = "ingest-tests-" + "x" * 32
MARKER_HEADER = "x-test-marker"


def ingest_settings(servers: Servers, database: str, topic: str, **changes: Any) -> IngestSettings:
    """Settings of an ingest app on this test's database, broker and raw topic."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database,
        "kafka_bootstrap_servers": servers.bootstrap,
        "kafka_enable_idempotence": servers.idempotent_producers,
        "raw_topic": topic,
        "jwt_secret": SecretStr(JWT_SECRET),
        **changes,
    }
    return IngestSettings(**values)


@dataclass
class Ingest:
    """A running ingest app and what tests need to talk to it."""

    http: httpx.AsyncClient
    settings: IngestSettings

    @property
    def topic(self) -> str:
        return self.settings.raw_topic

    def token(self, *scopes: str) -> str:
        """A bearer token granting `scopes`, signed with the app's secret."""
        return issue_token(
            secret=self.settings.jwt_secret.get_secret_value(),
            scopes=scopes,
            subject="ops-test",
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
        )

    def bearer(self, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*scopes)}"}

    async def create_key(self, source: str = SOURCE, description: str = "tests") -> dict[str, Any]:
        """A new API key through the management API (its JSON, `key` included)."""
        response = await self.http.post(
            "/v1/api-keys",
            json={"source": source, "description": description},
            headers=self.bearer("apikeys:write"),
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def post_events(self, body: Any, key: str) -> httpx.Response:
        """POST /v1/events with the key in X-API-Key."""
        return await self.http.post("/v1/events", json=body, headers={"X-API-Key": key})


async def published(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record of a one-partition topic so far: a marker produced now closes the read."""
    marker = uuid.uuid4().hex.encode()
    await produce(
        bootstrap, topic, [KafkaRecord(key=None, value=marker, headers=[(MARKER_HEADER, b"1")])]
    )
    records = await read_until(bootstrap, topic, lambda rs: any(r.value == marker for r in rs))
    return [r for r in records if header(r, MARKER_HEADER) is None]


@pytest_asyncio.fixture
async def raw_topic(new_topic: Callable[..., Awaitable[str]]) -> str:
    """A fresh raw topic with one partition, so that `published` sees everything in order."""
    return await new_topic("raw", partitions=1)


@pytest_asyncio.fixture
async def ingest(servers: Servers, database: str, raw_topic: str) -> AsyncIterator[Ingest]:
    """The ingest app, served on a free port for this test."""
    settings = ingest_settings(servers, database, raw_topic)
    async with (
        running_app(create_app(settings)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
    ):
        yield Ingest(http=http, settings=settings)


@pytest_asyncio.fixture
async def api_key(ingest: Ingest) -> str:
    """An active API key of SOURCE."""
    created = await ingest.create_key()
    key: str = created["key"]
    return key
