"""Start (or find) the broker and Postgres the tests talk to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Pinned images for CRM_TEST_BACKEND=containers (testcontainers' KafkaContainer drives
# Confluent's cp-kafka image).
KAFKA_IMAGE = "confluentinc/cp-kafka:7.7.1"
POSTGRES_IMAGE = "postgres:16.4"


@dataclass(frozen=True)
class Servers:
    """Where the session's broker and Postgres are."""

    bootstrap: str
    admin_dsn: str
    idempotent_producers: bool = False  # Apache Kafka has them; the embedded broker has not


@contextlib.contextmanager
def embedded_servers(
    workdir: Path, *, bootstrap: str | None = None, admin_dsn: str | None = None
) -> Iterator[Servers]:
    """Start the embedded broker and Postgres unless given servers of one's own."""
    from crm_stack.ephemeral import ephemeral_servers

    with ephemeral_servers(workdir, bootstrap=bootstrap, admin_dsn=admin_dsn) as (kafka, pg):
        yield Servers(bootstrap=kafka, admin_dsn=pg)


@contextlib.contextmanager
def containers_servers() -> Iterator[Servers]:
    """Apache Kafka (cp-kafka) and Postgres in Docker, for machines with a Docker engine."""
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer

    with (
        KafkaContainer(KAFKA_IMAGE) as kafka,
        PostgresContainer(
            POSTGRES_IMAGE, username="postgres", password="postgres", dbname="postgres", driver=None
        ) as postgres,
    ):
        yield Servers(
            bootstrap=kafka.get_bootstrap_server(),
            admin_dsn=postgres.get_connection_url(),
            idempotent_producers=True,
        )
