"""Settings of the cases service (env prefix `CRM_CASES_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crm_contracts import topics
from crm_kit.settings import ServiceSettings


class CasesSettings(ServiceSettings):
    """Settings of one cases process."""

    model_config = SettingsConfigDict(env_prefix="CRM_CASES_", extra="ignore")
    service_name: ClassVar[str] = "cases"

    http_port: int = Field(8002, ge=1, le=65535, description="Port of the HTTP API.")
    source: str = Field("urn:crm:cases", description="CloudEvents source of our events.")
    consumer_group_suffix: str = Field(
        "", description="Appended to consumer group names (tests, blue/green deploys)."
    )
    default_queue: str = Field(
        "support", min_length=1, description="Queue of a case opened without one."
    )
    reopen_window_days: float = Field(
        7.0,
        ge=0,
        description="A customer reply this long after resolution reopens the case; later, it "
        "opens a new case that links the old one.",
    )
    priority_by_tier: dict[str, str] = Field(
        default_factory=lambda: {
            "platinum": "urgent",
            "gold": "high",
            "silver": "normal",
            "bronze": "normal",
        },
        description="Default priority of a case by its contact's value tier (JSON object).",
    )
    priority_by_band: dict[str, str] = Field(
        default_factory=lambda: {"high": "high", "medium": "normal", "low": "normal"},
        description="Lowest priority of a case by its contact's churn band (JSON object); the "
        "higher of the two wins.",
    )
    sla_tick_ms: int = Field(
        250,
        ge=10,
        le=1000,
        description="How often the SLA timer looks for due clocks; a breach is emitted "
        "within this of its deadline.",
    )
    assign_sweep_seconds: float = Field(
        5.0,
        ge=0.05,
        le=300,
        description="How often queues are checked for waiting cases that agents have room "
        "for although no change assigned them (a safety net; assignment is immediate).",
    )
    interactions_topic: str = Field(topics.INTERACTIONS, description="Resolved interactions.")
    scores_topic: str = Field(topics.SCORES, description="Score changes: priority from value.")
    contacts_topic: str = Field(topics.CONTACTS, description="Merges and erasures.")
    privacy_topic: str = Field(topics.PRIVACY, description="Erasure requests and completions.")
    cases_topic: str = Field(topics.CASES, description="Case events we publish.")
