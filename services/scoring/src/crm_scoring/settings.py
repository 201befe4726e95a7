"""Settings of the scoring service (env prefix CRM_SCORING_, plus the shared names)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import ClassVar

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from crm_contracts import topics
from crm_kit.settings import ServiceSettings


class ScoringSettings(ServiceSettings):
    """Settings of one scoring process (worker and read API)."""

    model_config = SettingsConfigDict(env_prefix="CRM_SCORING_", extra="ignore")
    service_name: ClassVar[str] = "scoring"

    http_port: int = Field(8004, ge=1, le=65535, description="Port of the read API.")
    model_path: Path | None = Field(
        None, description="Scoring model file (TOML); the packaged model when unset."
    )
    faust_app_id: str = Field(
        "scoring.events", description="faust app id, which is also the Kafka consumer group."
    )
    faust_data_dir: Path = Field(
        Path(tempfile.gettempdir()) / "crm-scoring-faust",
        description="Where faust creates its (empty: no tables) app folders; must be writable.",
    )
    inbox_consumer: str = Field(
        "scoring.events", description="Name under which applied events are kept in the inbox."
    )
    source: str = Field(
        "urn:crm:scoring",
        description="CloudEvents source of our events (CRM_SCORING_EVENT_SOURCE, its earlier "
        "name, is still read).",
        validation_alias=AliasChoices("CRM_SCORING_SOURCE", "CRM_SCORING_EVENT_SOURCE", "source"),
    )
    interactions_topic: str = Field(topics.INTERACTIONS, description="Resolved interactions.")
    cases_topic: str = Field(topics.CASES, description="Case events.")
    contacts_topic: str = Field(topics.CONTACTS, description="Contact events (merges, erasures).")
    privacy_topic: str = Field(topics.PRIVACY, description="Erasure requests and completions.")
    scores_topic: str = Field(topics.SCORES, description="Where score changes are published.")
    scores_current_topic: str = Field(
        topics.SCORES_CURRENT, description="Compacted latest scores per contact."
    )
    create_topics: bool = Field(
        True, description="Create the topics used at start (the broker would auto-create them)."
    )
    topic_partitions: int = Field(
        topics.DEFAULT_PARTITIONS, ge=1, description="Partitions of topics created at start."
    )
    batch_max_events: int = Field(500, ge=1, description="Events per batch (one transaction).")
    batch_within_ms: int = Field(
        10, ge=1, description="Longest wait for a batch to fill before it is handled."
    )
    reevaluate_interval_seconds: float = Field(
        300.0, ge=0, description="Period of the re-evaluation of stale scores; 0 turns it off."
    )
    reevaluate_min_age_seconds: float = Field(
        3600.0, ge=0, description="Scores older than this are re-evaluated (time passing)."
    )
    reevaluate_page_size: int = Field(500, ge=1, description="Contacts per re-evaluation step.")

    @property
    def input_topics(self) -> list[str]:
        """The topics the worker consumes."""
        return [self.interactions_topic, self.cases_topic, self.contacts_topic, self.privacy_topic]
