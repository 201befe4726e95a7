"""crmctl settings: ports, state folder, and external servers that replace the embedded ones."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from crm_contracts.topics import DEFAULT_PARTITIONS
from crm_kit.settings import DEVELOPMENT_JWT_SECRET
from crm_stack.services import KNOWN_SERVICES, parse_service_names, service_names

EMBEDDED_PARTITIONS = 3


class StackSettings(BaseSettings):
    """Settings of `crmctl` (env prefix CRM_STACK_, plus the shared unprefixed names)."""

    model_config = SettingsConfigDict(
        env_prefix="CRM_STACK_", extra="ignore", populate_by_name=True
    )

    state_dir: Path = Field(
        Path(".state"), description="Postgres data, logs and the stack state file."
    )
    services: Annotated[tuple[str, ...], NoDecode] = Field(
        tuple(s.name for s in KNOWN_SERVICES),
        description="The services `up` starts, comma-separated (e.g. `contacts,scoring`); "
        "`all` (the default) or `none` (PostgreSQL and the broker only). Every topic is "
        "created whichever run; `status`, `restart`, `down` deal with those started.",
    )
    host: str = Field("127.0.0.1", description="Address every embedded server listens on.")
    broker_port: int = Field(9092, description="Port of the embedded Kafka-compatible broker.")
    postgres_port: int = Field(
        55432, description="Port of the embedded Postgres (not 5432: a system server may have it)."
    )
    ingest_port: int = Field(8000, description="HTTP port of the ingest service.")
    contacts_port: int = Field(8001, description="HTTP port of the contacts service.")
    cases_port: int = Field(8002, description="HTTP port of the cases service.")
    campaigns_port: int = Field(8003, description="HTTP port of the campaigns service.")
    scoring_port: int = Field(8004, description="HTTP port of the scoring service.")
    topic_partitions: int | None = Field(
        None,
        ge=1,
        description="Partitions of every topic crmctl creates (default: the registry's 12 on a "
        "Kafka cluster of your own, 3 on the embedded broker).",
    )
    ready_timeout: float = Field(90.0, description="Seconds to wait for everything to be ready.")
    drain_timeout: float = Field(
        30.0, ge=0, description="Seconds `down` waits for the consumers to catch up."
    )
    kafka_bootstrap_servers: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "CRM_STACK_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Use this Kafka cluster and start no broker.",
    )
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("CRM_DATABASE_URL", "CRM_STACK_DATABASE_URL"),
        description="Use this Postgres server (a URL to its maintenance database) and start none.",
    )
    jwt_secret: SecretStr = Field(
        SecretStr(DEVELOPMENT_JWT_SECRET),
        validation_alias=AliasChoices("CRM_JWT_SECRET", "CRM_STACK_JWT_SECRET"),
        description="Secret the services verify tokens with and `crmctl token` signs with.",
    )
    environment: str = Field(
        "development", validation_alias=AliasChoices("CRM_ENVIRONMENT", "CRM_STACK_ENVIRONMENT")
    )

    @field_validator("services", mode="before")
    @classmethod
    def _known_services(cls, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            return parse_service_names(value)
        if isinstance(value, Iterable):  # given in code: an empty one is no service
            names = [str(name) for name in value]
            return service_names(names) if names else ()
        raise ValueError("a comma-separated list of service names")

    @property
    def partitions(self) -> int:
        """Partitions of the topics crmctl creates.

        On one machine each service runs one consumer, so partitions buy no parallelism, and
        the embedded broker's work per fetch grows with the partitions asked for: with 12,
        idle consumers alone cost it about a quarter of a core, and a 20,000-event drain
        took twice the broker CPU per event that it takes with 2 or 3. A cluster keeps the
        registry's count, the unit of scaling out.
        """
        if self.topic_partitions is not None:
            return self.topic_partitions
        return DEFAULT_PARTITIONS if self.kafka_bootstrap_servers else EMBEDDED_PARTITIONS

    def service_port(self, name: str) -> int:
        return int(getattr(self, f"{name}_port"))
