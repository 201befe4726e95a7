"""The topic registry: every Kafka topic of the backbone, its key and the events it carries.

Topic names end in a major version; a breaking change is a new topic.
"""

from dataclasses import dataclass, replace
from typing import Literal

from crm_contracts import campaigns, cases, contacts, interactions, privacy, scores

INTERACTIONS_RAW = "crm.interactions.raw.v1"
INTERACTIONS = "crm.interactions.v1"
CONTACTS = "crm.contacts.v1"
CASES = "crm.cases.v1"
CAMPAIGNS = "crm.campaigns.v1"
SCORES = "crm.scores.v1"
SCORES_CURRENT = "crm.scores.current.v1"
PRIVACY = "crm.privacy.v1"

DEFAULT_PARTITIONS = 12
DEAD_LETTER_SUFFIX = ".dlt"

# Headers a dead letter carries besides the original record's headers.
DLT_ERROR_REASON = "x-error-reason"
DLT_ERROR_MESSAGE = "x-error-message"
DLT_ERROR_TOPIC = "x-error-topic"
DLT_ERROR_PARTITION = "x-error-partition"
DLT_ERROR_OFFSET = "x-error-offset"
DLT_ERROR_CONSUMER = "x-error-consumer"
DLT_ERROR_ATTEMPTS = "x-error-attempts"
DLT_ERROR_TIME = "x-error-time"
# A record too large to be dead-lettered whole goes without its value (and, if even that is
# too large, without its headers and key): what was dropped, and the value's digest and size.
DLT_ERROR_DROPPED = "x-error-dropped"
DLT_ERROR_VALUE_SHA256 = "x-error-value-sha256"
DLT_ERROR_VALUE_SIZE = "x-error-value-size"
DLT_ERROR_HEADERS = (
    DLT_ERROR_REASON,
    DLT_ERROR_MESSAGE,
    DLT_ERROR_TOPIC,
    DLT_ERROR_PARTITION,
    DLT_ERROR_OFFSET,
    DLT_ERROR_CONSUMER,
    DLT_ERROR_ATTEMPTS,
    DLT_ERROR_TIME,
    DLT_ERROR_DROPPED,
    DLT_ERROR_VALUE_SHA256,
    DLT_ERROR_VALUE_SIZE,
)

CleanupPolicy = Literal["delete", "compact"]


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic: its name, what its key is, and which event types it carries."""

    name: str
    key: str
    partitions: int
    cleanup_policy: CleanupPolicy
    event_types: tuple[str, ...]
    description: str

    @property
    def is_dead_letter(self) -> bool:
        """True for a `<topic>.dlt` topic."""
        return self.name.endswith(DEAD_LETTER_SUFFIX)


_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        name=INTERACTIONS_RAW,
        key="any identity the channel has: email, phone, external id or anonymous id",
        partitions=DEFAULT_PARTITIONS,
        cleanup_policy="delete",
        event_types=(interactions.INTERACTION_RECORDED,),
        description="Interactions as channels record them, straight to Kafka or through "
        "ingest; structured or binary CloudEvents. Consumed by contacts.",
    ),
    TopicSpec(
        name=INTERACTIONS,
        key="contact_id",
        partitions=DEFAULT_PARTITIONS,
        cleanup_policy="delete",
        event_types=(interactions.INTERACTION_RESOLVED,),
        description="The same interactions resolved to a contact, with the lifecycle stage "
        "they moved it to. Published by contacts.",
    ),
    TopicSpec(
        name=CONTACTS,
        key="contact_id (merged: survivor_id)",
        partitions=DEFAULT_PARTITIONS,
        cleanup_policy="delete",
        event_types=tuple(contacts.EVENTS),
        description="Contact lifecycle: created, updated, identity linked, merged, unmerged, "
        "lifecycle and consent changes, erased. Published by contacts.",
    ),
    TopicSpec(
        name=CASES,
        key="contact_id",
        partitions=DEFAULT_PARTITIONS,
        cleanup_policy="delete",
        event_types=tuple(cases.EVENTS),
        description="Support cases from opened to closed, with SLA breaches, comments and CSAT. "
        "Published by cases.",
    ),
    TopicSpec(
        name=CAMPAIGNS,
        key="contact_id (campaign-level events: campaign_id)",
        partitions=DEFAULT_PARTITIONS,
        cleanup_policy="delete",
        event_types=tuple(campaigns.EVENTS),
        description="Campaigns and their enrolments, and contacts entering and leaving "
        "segments; step_due asks a channel to deliver a step. Published by campaigns.",
    ),
    TopicSpec(
        name=SCORES,
        key="contact_id",
        partitions=DEFAULT_PARTITIONS,
        cleanup_policy="delete",
        event_types=(scores.SCORE_CHANGED,),
        description="Score changes with old and new values, reasons, model version and the "
        "event that caused them. Published by scoring.",
    ),
    TopicSpec(
        name=SCORES_CURRENT,
        key="contact_id",
        partitions=DEFAULT_PARTITIONS,
        cleanup_policy="compact",
        event_types=(scores.SCORE_CURRENT,),
        description="Latest scores per contact (compacted); a tombstone (null value) after "
        "an erasure. Published by scoring.",
    ),
    TopicSpec(
        name=PRIVACY,
        key="contact_id",
        partitions=DEFAULT_PARTITIONS,
        cleanup_policy="delete",
        event_types=tuple(privacy.EVENTS),
        description="Erasure requests, and one completion per service that erased the "
        "contact's personal data.",
    ),
)


def dead_letter_topic(name: str) -> str:
    """The dead-letter topic of a topic: `<topic>.dlt`."""
    if name.endswith(DEAD_LETTER_SUFFIX):
        raise ValueError(f"{name} is already a dead-letter topic")
    return f"{name}{DEAD_LETTER_SUFFIX}"


def _dead_letter_spec(spec: TopicSpec) -> TopicSpec:
    return TopicSpec(
        name=dead_letter_topic(spec.name),
        key=f"as on {spec.name}",
        partitions=spec.partitions,
        cleanup_policy="delete",
        event_types=(),
        description=f"Dead letters of {spec.name}: the original record (key, value, headers) "
        f"plus x-error-* headers saying why it could not be handled.",
    )


def topic_specs(*, partitions: int | None = None, dead_letters: bool = True) -> list[TopicSpec]:
    """The registry, each topic followed by its dead-letter topic when dead_letters is set."""
    if partitions is not None and partitions < 1:
        raise ValueError("partitions must be at least 1")
    specs: list[TopicSpec] = []
    for spec in _TOPICS:
        if partitions is not None:
            spec = replace(spec, partitions=partitions)
        specs.append(spec)
        if dead_letters:
            specs.append(_dead_letter_spec(spec))
    return specs


def get_topic(name: str) -> TopicSpec:
    """The spec of one topic (dead-letter topics included); KeyError if it is not registered."""
    for spec in topic_specs():
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}")


def topic_for_event_type(type: str) -> str:
    """The name of the topic that carries an event type; KeyError if none does."""
    for spec in _TOPICS:
        if type in spec.event_types:
            return spec.name
    raise KeyError(f"no topic carries event type {type!r}")
