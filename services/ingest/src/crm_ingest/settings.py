"""Settings of the ingest service (environment variables `CRM_INGEST_*`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crm_contracts.topics import INTERACTIONS_RAW
from crm_kit.settings import ServiceSettings

MIB = 1024 * 1024


class IngestSettings(ServiceSettings):
    """Settings of one ingest process."""

    model_config = SettingsConfigDict(env_prefix="CRM_INGEST_", extra="ignore")
    service_name: ClassVar[str] = "ingest"

    http_port: int = Field(8000, ge=1, le=65535, description="Port of the HTTP API.")
    max_batch_events: int = Field(
        1000, ge=1, description="Events one `POST /v1/events` may carry at most."
    )
    max_body_bytes: int = Field(
        MIB, ge=1024, description="Bytes a request body may have at most (413 beyond)."
    )
    raw_topic: str = Field(
        INTERACTIONS_RAW, min_length=1, description="Topic accepted events are published to."
    )
    ack_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="How long a request waits for the broker to acknowledge its events "
        "before answering 503.",
    )
