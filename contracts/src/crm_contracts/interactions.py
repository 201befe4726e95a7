"""Interaction events: raw ones from channels, and the same resolved to a contact.

`crm.interaction.recorded` is what channels send (straight to `crm.interactions.raw.v1` or over
HTTP to ingest). `crm.interaction.resolved` is published by the contacts service on
`crm.interactions.v1`, keyed by contact_id, without the personal identifiers it resolved.
"""

import json
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from crm_contracts.base import (
    Channel,
    Code,
    ContactId,
    EventId,
    EventModel,
    InputModel,
    Money,
    NullableScalar,
    OpaqueId,
    ShortScalar,
)
from crm_contracts.contacts import ConsentPurpose, LifecycleStage
from crm_contracts.storable import INT64_MAX, INT64_MIN, check_storable

INTERACTION_RECORDED = "crm.interaction.recorded"
INTERACTION_RESOLVED = "crm.interaction.resolved"


class InteractionKind(StrEnum):
    """Interaction kinds every service knows; the `kind` field also takes custom kinds."""

    PAGE_VIEW = "page_view"
    EMAIL_OPENED = "email_opened"
    EMAIL_CLICKED = "email_clicked"
    FORM_SUBMITTED = "form_submitted"
    SIGNUP = "signup"
    CALL = "call"
    CHAT = "chat"
    PURCHASE = "purchase"
    REFUND = "refund"
    COMPLAINT = "complaint"
    SUPPORT_REQUEST = "support_request"
    FEEDBACK = "feedback"
    MEMBERSHIP_JOINED = "membership_joined"
    REFERRAL = "referral"
    REVIEW = "review"
    UNSUBSCRIBE = "unsubscribe"
    CONSENT_GIVEN = "consent_given"
    CONSENT_WITHDRAWN = "consent_withdrawn"


KNOWN_KINDS: tuple[str, ...] = tuple(kind.value for kind in InteractionKind)
KINDS_NEEDING_VALUE = frozenset({InteractionKind.PURCHASE, InteractionKind.REFUND})
CONSENT_KINDS = frozenset({InteractionKind.CONSENT_GIVEN, InteractionKind.CONSENT_WITHDRAWN})

Kind = Annotated[
    Code,
    Field(
        description="What happened. The known kinds are listed in examples; any other "
        "lowercase snake_case kind is accepted as a custom kind and passed on unchanged, so a "
        "channel can send a new kind before every service knows it. Kinds added to the known "
        "list later never gain required fields (that would need a new topic version). "
        "Consumers treat a kind they do not know as a generic interaction.",
        examples=list(KNOWN_KINDS),
    ),
]

MAX_PROPERTIES = 50
MAX_PROPERTY_KEY_LENGTH = 64
MAX_PROPERTY_STRING_LENGTH = 1024  # the length NullableScalar allows
MAX_PROPERTIES_JSON_BYTES = 8 * 1024


# What json.dumps(separators=(",", ":"), ensure_ascii=False) builds each call, built once.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
# The longest JSON of a finite float (17 digits, sign, point, e-308) and of a 64-bit integer.
_FLOAT_JSON_BYTES = 24
_INT64_JSON_BYTES = 20


def _json_size_bound(properties: dict[str, Any]) -> int | None:
    """At least the size of the compact JSON of properties, or None when it is not cheap to say.

    A character takes at most 6 bytes in that JSON (`\\u001f`; others take 1 to 4), so most
    properties are proved small without encoding them.
    """
    bound = 2  # {}
    for key, value in properties.items():
        kind = type(value)
        if kind is str:
            size = 6 * len(value) + 2
        elif value is None or kind is bool or kind is float:
            size = _FLOAT_JSON_BYTES
        elif kind is int and INT64_MIN <= value <= INT64_MAX:
            size = _INT64_JSON_BYTES
        else:
            return None
        if type(key) is not str:
            return None
        bound += 6 * len(key) + 2 + 1 + size + 1  # "key":value,
    return bound


def _check_json_size(properties: dict[str, Any]) -> dict[str, Any]:
    bound = _json_size_bound(properties)
    if bound is not None and bound <= MAX_PROPERTIES_JSON_BYTES:
        return properties
    size = len(_COMPACT_JSON.encode(properties).encode())
    if size > MAX_PROPERTIES_JSON_BYTES:
        raise ValueError(
            f"properties take {size} bytes as JSON, more than {MAX_PROPERTIES_JSON_BYTES}"
        )
    return properties


Properties = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=MAX_PROPERTY_KEY_LENGTH)], NullableScalar],
    Field(
        max_length=MAX_PROPERTIES,
        description=f"Free-form details of the interaction (e.g. order_id): at most "
        f"{MAX_PROPERTIES} keys of up to {MAX_PROPERTY_KEY_LENGTH} characters, values are "
        f"strings (up to {MAX_PROPERTY_STRING_LENGTH} characters), numbers, booleans or null, "
        f"at most {MAX_PROPERTIES_JSON_BYTES} bytes as JSON.",
    ),
    # Text Postgres cannot store is named as such, before the JSON size is measured.
    AfterValidator(check_storable),
    AfterValidator(_check_json_size),
]
TraitText = Annotated[str, Field(max_length=256)]
SendingAgent = Annotated[
    OpaqueId,
    Field(
        description="Agent of ours who sent it (a reply on a case, say); absent: the customer did."
    ),
]
CampaignStepId = Annotated[
    OpaqueId,
    Field(
        description="Campaign step it responds to (with campaign_id), e.g. the email of step "
        "s2 that was clicked."
    ),
]
Csat = Annotated[int, Field(ge=1, le=5, description="Customer satisfaction, 1 (worst) to 5.")]
Nps = Annotated[int, Field(ge=0, le=10, description="Net promoter answer, 0 to 10.")]


class Identity(InputModel):
    """Identifiers the channel knows for the person; at least one is required."""

    contact_id: ContactId | None = Field(default=None, description="Set when already known.")
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    phone: Annotated[str, Field(max_length=32, pattern=r"^\+?[0-9][0-9 ()./\-]{2,31}$")] | None = (
        Field(default=None, description="Any common notation; contacts normalises to E.164.")
    )
    external_ids: dict[
        Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$")],
        Annotated[str, Field(min_length=1, max_length=256)],
    ] = Field(
        default_factory=dict,
        max_length=20,
        description='Ids in other systems: system name to id, e.g. {"webshop": "c-42"}.',
    )
    anonymous_id: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None, description="Cookie or device id."
    )

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        identifiers = (
            self.contact_id,
            self.email,
            self.phone,
            self.external_ids,
            self.anonymous_id,
        )
        if not any(identifiers):
            raise ValueError(
                "at least one of contact_id, email, phone, external_ids, anonymous_id is required"
            )
        return self


class MoneyInput(Money):
    """An amount of money in one currency."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Traits(InputModel):
    """Profile traits the channel learnt; custom ones go in `custom`."""

    first_name: TraitText | None = None
    last_name: TraitText | None = None
    company: TraitText | None = None
    job_title: TraitText | None = None
    locale: TraitText | None = Field(default=None, description="BCP 47 tag, e.g. en-GB.")
    country: TraitText | None = Field(default=None, description="ISO 3166-1 alpha-2 code.")
    city: TraitText | None = None
    timezone: TraitText | None = Field(default=None, description="IANA zone, e.g. Europe/Paris.")
    custom: dict[Annotated[str, Field(min_length=1, max_length=64)], ShortScalar] = Field(
        default_factory=dict, max_length=20, description="Up to 20 custom traits."
    )


class Consent(EventModel):
    """Consent the person gave or withdrew with this interaction."""

    purpose: ConsentPurpose
    channel: Channel | None = Field(default=None, description="Absent: every channel.")
    granted: bool | None = Field(
        default=None,
        description="Implied by kind consent_given / consent_withdrawn; required otherwise.",
    )


class ConsentInput(Consent):
    """Consent the person gave or withdrew with this interaction."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InteractionRecorded(InputModel):
    """A customer touchpoint as a channel recorded it, before identity resolution."""

    subject_field: ClassVar[str | None] = "identity.contact_id"

    channel: Channel
    kind: Kind
    identity: Identity
    value: MoneyInput | None = Field(
        default=None, validate_default=True, description="Required for purchase and refund."
    )
    csat: Csat | None = None
    nps: Nps | None = None
    consent: ConsentInput | None = Field(
        default=None,
        validate_default=True,
        description="Required for consent_given and consent_withdrawn.",
    )
    campaign_id: OpaqueId | None = Field(default=None, description="Campaign it responds to.")
    campaign_step_id: CampaignStepId | None = None
    case_id: OpaqueId | None = Field(default=None, description="Case it belongs to.")
    agent_id: SendingAgent | None = None
    traits: Traits | None = None
    properties: Properties = Field(default_factory=dict)

    @field_validator("value")
    @classmethod
    def _value_for_money_kinds(cls, value: MoneyInput | None, info: ValidationInfo) -> Any:
        if value is None and info.data.get("kind") in KINDS_NEEDING_VALUE:
            raise ValueError(f"required for kind {info.data['kind']}")
        return value

    @field_validator("consent")
    @classmethod
    def _consent_for_consent_kinds(cls, consent: ConsentInput | None, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if consent is None:
            if kind in CONSENT_KINDS:
                raise ValueError(f"required for kind {kind}")
            return consent
        if kind in CONSENT_KINDS:
            implied = kind == InteractionKind.CONSENT_GIVEN
            if consent.granted is not None and consent.granted != implied:
                raise ValueError(f"granted={consent.granted} contradicts kind {kind}")
        elif consent.granted is None and kind is not None:
            raise ValueError("granted is required unless the kind is a consent kind")
        return consent

    @model_validator(mode="after")
    def _feedback_has_a_score(self) -> Self:
        if self.kind == InteractionKind.FEEDBACK and self.csat is None and self.nps is None:
            raise ValueError("kind feedback needs csat or nps")
        return self

    @model_validator(mode="after")
    def _step_within_a_campaign(self) -> Self:
        if self.campaign_step_id is not None and self.campaign_id is None:
            raise ValueError("campaign_step_id needs campaign_id")
        return self


class InteractionResolved(EventModel):
    """An interaction resolved to a contact, with the lifecycle stage it left the contact in."""

    interaction_id: EventId = Field(description="CloudEvents id of the recorded interaction.")
    interaction_source: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="CloudEvents source of the recorded interaction (the channel)."
    )
    contact_id: ContactId
    channel: Channel
    kind: Kind
    value: Money | None = None
    csat: Csat | None = None
    nps: Nps | None = None
    consent: Consent | None = None
    campaign_id: OpaqueId | None = None
    campaign_step_id: CampaignStepId | None = None
    case_id: OpaqueId | None = None
    agent_id: SendingAgent | None = None
    properties: Properties = Field(default_factory=dict)
    stage: LifecycleStage = Field(description="The contact's stage after this interaction.")
    previous_stage: LifecycleStage | None = Field(
        default=None, description="The stage before; absent when the contact is new."
    )
    stage_changed: bool = Field(description="True when stage differs from previous_stage.")

    @model_validator(mode="after")
    def _stage_changed_agrees(self) -> Self:
        if self.stage_changed != (self.stage != self.previous_stage):
            raise ValueError("stage_changed must say whether stage differs from previous_stage")
        return self


EVENTS: dict[str, type[EventModel]] = {
    INTERACTION_RECORDED: InteractionRecorded,
    INTERACTION_RESOLVED: InteractionResolved,
}
