"""Events published by the contacts service on `crm.contacts.v1`, keyed by contact_id."""

from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from crm_contracts.base import Channel, Code, ContactId, EventId, EventModel, OpaqueId, ShortScalar

CONTACT_CREATED = "crm.contact.created"
CONTACT_UPDATED = "crm.contact.updated"
CONTACT_IDENTITY_LINKED = "crm.contact.identity_linked"
CONTACT_IDENTITY_UNLINKED = "crm.contact.identity_unlinked"
CONTACT_MERGED = "crm.contact.merged"
CONTACT_UNMERGED = "crm.contact.unmerged"
CONTACT_LIFECYCLE_CHANGED = "crm.contact.lifecycle_changed"
CONTACT_CONSENT_CHANGED = "crm.contact.consent_changed"
CONTACT_ERASED = "crm.contact.erased"
CONTACT_DELETED = "crm.contact.deleted"


class LifecycleStage(StrEnum):
    """Where a contact stands in its relationship with the organisation, first to last."""

    SUSPECT = "suspect"
    PROSPECT = "prospect"
    FIRST_TIME_CUSTOMER = "first_time_customer"
    REPEAT_CUSTOMER = "repeat_customer"
    CLIENT = "client"
    MEMBER = "member"
    ADVOCATE = "advocate"
    PARTNER = "partner"


class IdentityType(StrEnum):
    """Kind of identifier that can point at a contact."""

    EMAIL = "email"
    PHONE = "phone"
    EXTERNAL_ID = "external_id"
    ANONYMOUS_ID = "anonymous_id"


ConsentPurpose = Annotated[
    Code,
    Field(
        description="What the consent is for; known purposes are listed in examples, "
        "other snake_case purposes are allowed.",
        examples=["marketing", "profiling", "analytics", "personalisation", "third_party_sharing"],
    ),
]
TraitText = Annotated[str, Field(max_length=256)]


class Profile(EventModel):
    """Profile traits of a contact, as the contacts service holds them."""

    first_name: TraitText | None = None
    last_name: TraitText | None = None
    company: TraitText | None = None
    job_title: TraitText | None = None
    locale: TraitText | None = Field(default=None, description="BCP 47 tag, e.g. en-GB.")
    country: TraitText | None = Field(default=None, description="ISO 3166-1 alpha-2 code.")
    city: TraitText | None = None
    timezone: TraitText | None = Field(default=None, description="IANA zone, e.g. Europe/Paris.")
    custom: dict[Annotated[str, Field(max_length=64)], ShortScalar] = Field(
        default_factory=dict, max_length=20, description="Custom traits the channels sent."
    )


class ContactCreated(EventModel):
    """A new contact exists, created from an interaction or by an agent."""

    contact_id: ContactId
    stage: LifecycleStage
    profile: Profile = Field(default_factory=Profile)
    cause_event_id: EventId | None = Field(
        default=None, description="The interaction that created the contact, if any."
    )


class ContactUpdated(EventModel):
    """A contact's profile changed; `profile` is the whole profile after the change."""

    contact_id: ContactId
    profile: Profile
    changed_fields: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=64, description="Names of the profile fields that changed."
    )


class _IdentifierEvent(EventModel):
    """Which identifier of a contact an event is about; emails and phones by kind only."""

    contact_id: ContactId
    identity_type: IdentityType
    system: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="System that issued an external id, e.g. webshop."
    )
    identifier: Annotated[str, Field(max_length=256)] | None = Field(
        default=None,
        description="Value of an external or anonymous id; never set for email and phone.",
    )

    @model_validator(mode="after")
    def _no_pii(self) -> Self:
        if self.identifier is not None and self.identity_type in (
            IdentityType.EMAIL,
            IdentityType.PHONE,
        ):
            raise ValueError("identifier must not carry an email or a phone number")
        return self


class ContactIdentityLinked(_IdentifierEvent):
    """A new identifier now points at the contact (identity resolution)."""

    cause_event_id: EventId | None = None


class ContactIdentityUnlinked(_IdentifierEvent):
    """An agent took an identifier off the contact: it no longer points at it."""

    reason: Annotated[str, Field(max_length=500)] | None = None


class ContactMerged(EventModel):
    """Contacts proved to be one person were folded into the survivor."""

    subject_field: ClassVar[str | None] = "survivor_id"

    survivor_id: ContactId
    merged_ids: list[ContactId] = Field(min_length=1, max_length=100)
    matched_on: IdentityType | None = Field(
        default=None, description="Identifier the contacts shared; absent for a manual merge."
    )
    cause_event_id: EventId | None = None

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.survivor_id in self.merged_ids:
            raise ValueError("survivor_id must not be one of merged_ids")
        if len(set(self.merged_ids)) != len(self.merged_ids):
            raise ValueError("merged_ids must be distinct")
        return self


class ContactUnmerged(EventModel):
    """A wrong merge was undone: the contact exists again, split off the survivor."""

    contact_id: ContactId = Field(description="The restored contact.")
    survivor_id: ContactId = Field(description="The contact it had been merged into.")
    reason: Annotated[str, Field(max_length=500)] | None = None


class ContactLifecycleChanged(EventModel):
    """A contact moved from one lifecycle stage to another."""

    contact_id: ContactId
    from_stage: LifecycleStage | None = Field(default=None, description="Absent for a new contact.")
    to_stage: LifecycleStage
    cause_event_id: EventId | None = Field(default=None, description="Event that moved it.")
    cause_kind: Code | None = Field(
        default=None, description="Interaction kind that moved it, e.g. purchase, or manual."
    )


class ContactConsentChanged(EventModel):
    """A contact granted or withdrew consent for a purpose."""

    contact_id: ContactId
    channel: Channel | None = Field(default=None, description="Absent: every channel.")
    purpose: ConsentPurpose
    granted: bool
    source: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="Who recorded it: the CloudEvents source of the interaction or the API actor."
    )
    cause_event_id: EventId | None = None


class ContactErased(EventModel):
    """The contacts service erased the contact's personal data."""

    contact_id: ContactId
    request_id: OpaqueId = Field(description="The privacy request that asked for it.")


class ContactDeleted(EventModel):
    """An agent deleted the contact (not an erasure): it leaves every list, identifiers freed."""

    contact_id: ContactId
    reason: Annotated[str, Field(max_length=500)] | None = None


EVENTS: dict[str, type[EventModel]] = {
    CONTACT_CREATED: ContactCreated,
    CONTACT_UPDATED: ContactUpdated,
    CONTACT_IDENTITY_LINKED: ContactIdentityLinked,
    CONTACT_IDENTITY_UNLINKED: ContactIdentityUnlinked,
    CONTACT_MERGED: ContactMerged,
    CONTACT_UNMERGED: ContactUnmerged,
    CONTACT_LIFECYCLE_CHANGED: ContactLifecycleChanged,
    CONTACT_CONSENT_CHANGED: ContactConsentChanged,
    CONTACT_ERASED: ContactErased,
    CONTACT_DELETED: ContactDeleted,
}
