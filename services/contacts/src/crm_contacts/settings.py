"""Settings of the contacts service (env prefix `CRM_CONTACTS_`)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from crm_contracts import topics
from crm_kit.settings import PLACEHOLDER_SECRETS, ServiceSettings

DEVELOPMENT_ERASURE_KEY = "development-only-erasure-key-do-not-deploy"
DEFAULT_LIFECYCLE_RULES = Path(__file__).parent / "lifecycle_rules.toml"
IDENTIFIER_KINDS = ("external_id", "email", "phone", "anonymous_id")


class ContactsSettings(ServiceSettings):
    """Settings of one contacts process."""

    model_config = SettingsConfigDict(env_prefix="CRM_CONTACTS_", extra="ignore")
    service_name: ClassVar[str] = "contacts"

    http_port: int = Field(8001, ge=1, le=65535, description="Port of the HTTP API.")
    default_phone_region: str = Field(
        "GB",
        min_length=2,
        max_length=2,
        description="ISO 3166 region assumed for phone numbers written without a country code.",
    )
    auto_merge: dict[str, bool] = Field(
        default_factory=lambda: {
            "external_id": True,
            "email": True,
            "phone": True,
            "anonymous_id": False,
        },
        description="Identifier kinds whose match may merge two contacts (JSON object); a kind "
        'left out may not. E.g. {"email": false} for shared family addresses.',
    )
    lifecycle_rules_path: Path = Field(
        DEFAULT_LIFECYCLE_RULES, description="TOML file of the lifecycle stage rules."
    )
    erasure_hmac_key: SecretStr = Field(
        SecretStr(DEVELOPMENT_ERASURE_KEY),
        description="Key of the HMAC kept of each identifier of an erased contact.",
    )
    source: str = Field("urn:crm:contacts", description="CloudEvents source of our events.")
    timeline_in_360: int = Field(20, ge=0, le=200, description="Timeline entries in the 360.")
    consumer_group_suffix: str = Field(
        "", description="Appended to consumer group names (tests, blue/green deploys)."
    )
    interactions_raw_topic: str = Field(topics.INTERACTIONS_RAW, description="Consumed.")
    interactions_topic: str = Field(topics.INTERACTIONS, description="Resolved interactions.")
    contacts_topic: str = Field(topics.CONTACTS, description="Contact events we publish.")
    cases_topic: str = Field(topics.CASES, description="Consumed for the timeline and 360.")
    campaigns_topic: str = Field(topics.CAMPAIGNS, description="Consumed for the timeline, 360.")
    scores_topic: str = Field(topics.SCORES, description="Consumed for the timeline and 360.")
    privacy_topic: str = Field(topics.PRIVACY, description="Erasure requests and completions.")

    @field_validator("default_phone_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        return value.upper()

    @field_validator("auto_merge")
    @classmethod
    def _known_kinds(cls, value: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(value) - set(IDENTIFIER_KINDS))
        if unknown:
            raise ValueError(f"unknown identifier kinds {unknown}; use {list(IDENTIFIER_KINDS)}")
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_erasure_key(self) -> ContactsSettings:
        if self.environment not in ("development", "test") and (
            self.erasure_hmac_key.get_secret_value()
            in PLACEHOLDER_SECRETS | {DEVELOPMENT_ERASURE_KEY}
        ):
            raise ValueError(
                "erasure_hmac_key is missing or a placeholder; set CRM_CONTACTS_ERASURE_HMAC_KEY "
                f"to a secret of your own (environment={self.environment})"
            )
        return self
