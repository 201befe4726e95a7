"""Settings of the campaigns service (env prefix `CRM_CAMPAIGNS_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crm_contracts import topics
from crm_kit.settings import ServiceSettings


class CampaignsSettings(ServiceSettings):
    """Settings of one campaigns process."""

    model_config = SettingsConfigDict(env_prefix="CRM_CAMPAIGNS_", extra="ignore")
    service_name: ClassVar[str] = "campaigns"

    http_port: int = Field(8003, ge=1, le=65535, description="Port of the HTTP API.")
    source: str = Field("urn:crm:campaigns", description="CloudEvents source of our events.")
    consumer_group_suffix: str = Field(
        "", description="Appended to consumer group names (tests, blue/green deploys)."
    )
    load_examples: bool = Field(
        True,
        description="Create the example campaigns and segments (retention, cross-sell, "
        "win-back, welcome, VIP) at start when they do not exist yet; they are launched.",
    )
    consent_defaults: dict[str, bool] = Field(
        default_factory=lambda: {"transactional": True},
        description="Whether a contact with no word on a purpose may be sent to for it "
        "(JSON object: purpose to bool); a purpose not listed needs an explicit consent.",
    )
    step_tick_ms: int = Field(
        250,
        ge=10,
        le=5000,
        description="How often due steps and time-bound segment answers are looked for; a "
        "step goes out within this of its due moment.",
    )
    backfill_tick_ms: int = Field(
        1000,
        ge=10,
        le=60000,
        description="How often a new or changed segment is looked for, to evaluate it over "
        "every known contact (a page per round; rounds follow at once while there is more).",
    )
    due_batch: int = Field(
        500, ge=1, le=10000, description="Due steps handled per transaction by the timer."
    )
    interactions_topic: str = Field(topics.INTERACTIONS, description="Resolved interactions.")
    scores_topic: str = Field(topics.SCORES, description="Score changes.")
    contacts_topic: str = Field(topics.CONTACTS, description="Contact events.")
    cases_topic: str = Field(topics.CASES, description="Case events: open complaints.")
    privacy_topic: str = Field(topics.PRIVACY, description="Erasure requests and completions.")
    campaigns_topic: str = Field(topics.CAMPAIGNS, description="Campaign events we publish.")
