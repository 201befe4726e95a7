"""Pure rules of the contacts service: no I/O, only decisions.

- identifiers: normalisation (email, E.164 phone, `system:id` external ids, anonymous ids);
- resolution: which contact an interaction belongs to, which contacts it proves to be one
  person, which identifiers to link;
- lifecycle: stage rules read from a TOML document, forward-only;
- consent, profile traits, tombstones of erased identifiers, timeline entries.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers

from crm_contracts import CloudEvent
from crm_contracts.contacts import IdentityType, LifecycleStage
from crm_contracts.interactions import INTERACTION_RECORDED, Identity, InteractionRecorded

# Which identifier decides where an interaction goes when its identifiers point at different
# contacts that may not be merged: an explicit contact_id first, then these, in order.
PRECEDENCE: tuple[IdentityType, ...] = (
    IdentityType.EXTERNAL_ID,
    IdentityType.EMAIL,
    IdentityType.PHONE,
    IdentityType.ANONYMOUS_ID,
)
STAGES: tuple[LifecycleStage, ...] = tuple(LifecycleStage)
PROFILE_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "company",
    "job_title",
    "locale",
    "country",
    "city",
    "timezone",
)


# -- identifiers -------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Identifier:
    """A normalised identifier: what the unique (kind, value) constraint holds."""

    kind: IdentityType
    value: str

    @property
    def system(self) -> str | None:
        """The issuing system of an external id."""
        return self.value.split(":", 1)[0] if self.kind == IdentityType.EXTERNAL_ID else None

    @property
    def is_personal(self) -> bool:
        """Emails and phone numbers never leave this service (logs, keys, events)."""
        return self.kind in (IdentityType.EMAIL, IdentityType.PHONE)


@dataclass(frozen=True)
class NormalisedIdentity:
    """The identifiers of one interaction, normalised, and what had to be dropped."""

    contact_id: str | None
    identifiers: tuple[Identifier, ...]
    dropped: tuple[IdentityType, ...] = ()


def normalise_email(raw: str) -> str | None:
    """Trimmed and lowercased; None when it is not an address."""
    value = raw.strip().lower()
    local, at, domain = value.partition("@")
    if not at or not local or not domain or "@" in domain or any(c.isspace() for c in value):
        return None
    return value


def normalise_phone(raw: str, region: str) -> str | None:
    """E.164 (`+442079460000`); national numbers read in `region`; None when impossible."""
    try:
        number = phonenumbers.parse(raw.strip(), region.upper())
    except phonenumbers.NumberParseException:
        return None
    # Local-only numbers (no area code) could be anyone's: not an identifier.
    if (
        phonenumbers.is_possible_number_with_reason(number)
        != phonenumbers.ValidationResult.IS_POSSIBLE
    ):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def external_id(system: str, value: str) -> str:
    """The stored form of an external id: `system:id` (system lowercased, id as given)."""
    return f"{system.strip().lower()}:{value.strip()}"


def normalise_identifier(kind: IdentityType, raw: str, *, region: str) -> Identifier | None:
    """One identifier as a caller wrote it (external ids as `system:id`); None if invalid."""
    value: str | None
    if kind == IdentityType.EMAIL:
        value = normalise_email(raw)
    elif kind == IdentityType.PHONE:
        value = normalise_phone(raw, region)
    elif kind == IdentityType.EXTERNAL_ID:
        system, colon, local = raw.partition(":")
        value = external_id(system, local) if colon and system.strip() and local.strip() else None
    else:
        value = raw.strip() or None
    return None if value is None else Identifier(kind, value)


def normalise_identity(identity: Identity, *, region: str) -> NormalisedIdentity:
    """Every identifier of an interaction in stored form; invalid ones are dropped."""
    found: list[Identifier] = []
    dropped: list[IdentityType] = []

    def add(kind: IdentityType, raw: str) -> None:
        identifier = normalise_identifier(kind, raw, region=region)
        if identifier is None:
            dropped.append(kind)
        else:
            found.append(identifier)

    for system, value in sorted(identity.external_ids.items()):
        add(IdentityType.EXTERNAL_ID, f"{system}:{value}")
    if identity.email is not None:
        add(IdentityType.EMAIL, identity.email)
    if identity.phone is not None:
        add(IdentityType.PHONE, identity.phone)
    if identity.anonymous_id is not None:
        add(IdentityType.ANONYMOUS_ID, identity.anonymous_id)
    return NormalisedIdentity(
        contact_id=identity.contact_id,
        identifiers=tuple(dict.fromkeys(found)),
        dropped=tuple(dropped),
    )


# -- resolution ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownContact:
    """An active contact an identifier (or an explicit contact_id) points at."""

    id: str
    created_at: datetime


@dataclass(frozen=True)
class Match:
    """An identifier of the interaction that is already linked (None: the explicit contact_id)."""

    identifier: Identifier | None
    contact: KnownContact
    origin_id: str = field(default="")

    @property
    def rank(self) -> int:
        """Lower ranks decide first (see PRECEDENCE)."""
        return 0 if self.identifier is None else 1 + PRECEDENCE.index(self.identifier.kind)


@dataclass(frozen=True)
class MergeRules:
    """Which identifier kinds may prove two contacts to be one person."""

    allowed: frozenset[IdentityType]

    @classmethod
    def from_settings(cls, auto_merge: Mapping[str, bool]) -> MergeRules:
        """Kinds mapped to true may auto-merge; any other kind may not."""
        return cls(frozenset(IdentityType(kind) for kind, on in auto_merge.items() if on))

    def may_merge_on(self, match: Match) -> bool:
        """An explicit contact_id always may; an identifier when its kind is allowed."""
        return match.identifier is None or match.identifier.kind in self.allowed


@dataclass(frozen=True)
class Resolution:
    """Where an interaction goes, what it merges and which identifiers it links."""

    target_id: str | None  # None: create a new contact
    origin_id: str | None  # the contact the interaction came through (None: the new one)
    survivor_id: str | None = None
    merged_ids: tuple[str, ...] = ()
    matched_on: IdentityType | None = None
    link: tuple[Identifier, ...] = ()
    left_apart: tuple[str, ...] = ()  # contacts matched but not merged (rules or exclusions)

    @property
    def creates(self) -> bool:
        return self.target_id is None


def oldest(contacts: Iterable[KnownContact]) -> KnownContact:
    """The contact that survives a merge: the oldest (ties: the smallest id)."""
    return min(contacts, key=lambda c: (c.created_at, c.id))


def resolve(
    identifiers: Sequence[Identifier],
    matches: Sequence[Match],
    rules: MergeRules,
    exclusions: frozenset[frozenset[str]] = frozenset(),
) -> Resolution:
    """Decide where an interaction goes.

    No match: a new contact with every identifier. Matches on several contacts: those matched
    by a kind that may merge (or by the explicit contact_id) are one person, unless an agent
    unmerged them before (`exclusions`); the oldest survives. The interaction goes to the
    contact of the highest-precedence match (after the merge, its survivor); identifiers not
    linked yet are linked to it; identifiers of contacts left apart stay where they are.
    """
    if not matches:
        return Resolution(target_id=None, origin_id=None, link=tuple(identifiers))
    ordered = sorted(matches, key=lambda m: (m.rank, m.contact.created_at, m.contact.id))
    best = ordered[0]
    group: dict[str, KnownContact] = {}
    for match in ordered:
        contact = match.contact
        if contact.id in group or not rules.may_merge_on(match):
            continue
        if any(frozenset((contact.id, other)) in exclusions for other in group):
            continue
        group[contact.id] = contact
    known = {m.identifier for m in matches if m.identifier is not None}
    link = tuple(i for i in identifiers if i not in known)
    target = best.contact.id
    survivor_id: str | None = None
    merged: tuple[str, ...] = ()
    matched_on: IdentityType | None = None
    if len(group) >= 2:
        survivor = oldest(group.values())
        survivor_id = survivor.id
        merged = tuple(
            c.id
            for c in sorted(group.values(), key=lambda c: (c.created_at, c.id))
            if c != survivor
        )
        kinds = [
            m.identifier.kind
            for m in ordered
            if m.identifier is not None and m.contact.id in merged and rules.may_merge_on(m)
        ]
        matched_on = kinds[0] if kinds else None
        if target in group:
            target = survivor_id
    together = {target, *(merged if target == survivor_id else ())}
    apart = tuple(dict.fromkeys(m.contact.id for m in ordered if m.contact.id not in together))
    return Resolution(
        target_id=target,
        origin_id=best.origin_id or best.contact.id,
        survivor_id=survivor_id,
        merged_ids=merged,
        matched_on=matched_on,
        link=link,
        left_apart=apart,
    )


# -- lifecycle -----------------------------------------------------------------------------


class LifecycleRulesError(ValueError):
    """The lifecycle rules document is not valid."""


def stage_rank(stage: LifecycleStage) -> int:
    """Position of a stage, first (suspect) to last (partner)."""
    return STAGES.index(stage)


def furthest(*stages: LifecycleStage | None) -> LifecycleStage | None:
    """The furthest of the stages given (None when all are None)."""
    present = [s for s in stages if s is not None]
    return max(present, key=stage_rank) if present else None


@dataclass(frozen=True)
class LifecycleRule:
    """Move to `stage` once the contact has `min_count` interactions of `kinds`."""

    kinds: frozenset[str]
    stage: LifecycleStage
    min_count: int = 1


@dataclass(frozen=True)
class LifecycleRules:
    """The whole rules file."""

    initial_stage: LifecycleStage
    rules: tuple[LifecycleRule, ...]
    # Every kind a rule names, to the kinds its rules count: asked once per interaction.
    _counted: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        named = {k for rule in self.rules for k in rule.kinds}
        counted = {
            kind: frozenset(k for rule in self.rules if kind in rule.kinds for k in rule.kinds)
            for kind in named
        }
        object.__setattr__(self, "_counted", counted)

    def counted_kinds(self, kind: str) -> frozenset[str]:
        """The interaction kinds whose counts the rules for `kind` need."""
        return self._counted.get(kind, _NONE_COUNTED)


_NONE_COUNTED: frozenset[str] = frozenset()


def parse_lifecycle_rules(document: Mapping[str, Any]) -> LifecycleRules:
    """Validate a parsed TOML rules document (see lifecycle_rules.toml)."""
    unknown = set(document) - {"initial_stage", "rules"}
    if unknown:
        raise LifecycleRulesError(f"unknown keys: {sorted(unknown)}")
    initial = _stage(document.get("initial_stage", LifecycleStage.SUSPECT.value), "initial_stage")
    raw_rules = document.get("rules", [])
    if not isinstance(raw_rules, list):
        raise LifecycleRulesError("rules must be an array of tables ([[rules]])")
    rules: list[LifecycleRule] = []
    for n, raw in enumerate(raw_rules, start=1):
        where = f"rules[{n}]"
        if not isinstance(raw, Mapping):
            raise LifecycleRulesError(f"{where} must be a table")
        extra = set(raw) - {"kinds", "stage", "min_count"}
        if extra:
            raise LifecycleRulesError(f"{where}: unknown keys {sorted(extra)}")
        kinds = raw.get("kinds")
        if (
            not isinstance(kinds, list)
            or not kinds
            or not all(isinstance(k, str) and k for k in kinds)
        ):
            raise LifecycleRulesError(f"{where}: kinds must be a non-empty list of kinds")
        min_count = raw.get("min_count", 1)
        if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
            raise LifecycleRulesError(f"{where}: min_count must be a positive integer")
        stage = _stage(raw.get("stage"), f"{where}.stage")
        rules.append(LifecycleRule(frozenset(kinds), stage, min_count))
    return LifecycleRules(initial_stage=initial, rules=tuple(rules))


def _stage(value: Any, where: str) -> LifecycleStage:
    try:
        return LifecycleStage(value)
    except ValueError:
        raise LifecycleRulesError(
            f"{where}: {value!r} is not a stage; use one of {[s.value for s in STAGES]}"
        ) from None


def by_agent(data: InteractionRecorded) -> bool:
    """An agent's interaction (a reply on a case): not the customer's activity, so no
    lifecycle rule counts it or fires on it."""
    return data.agent_id is not None


def stage_after(
    rules: LifecycleRules,
    current: LifecycleStage | None,
    kind: str,
    counts: Mapping[str, int],
    *,
    agent: bool = False,
) -> LifecycleStage:
    """The stage after an interaction of `kind`; `counts` include it. Never moves back; an
    agent's interaction (`agent`) leaves it where it is."""
    stage = current or rules.initial_stage
    if agent:
        return stage
    for rule in rules.rules:
        if kind not in rule.kinds:
            continue
        if sum(counts.get(k, 0) for k in rule.kinds) < rule.min_count:
            continue
        if stage_rank(rule.stage) > stage_rank(stage):
            stage = rule.stage
    return stage


# -- profile, consent, erasure ----------------------------------------------------------


def apply_traits(
    profile: Mapping[str, Any], traits: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Profile after the traits given (absent traits change nothing); the fields changed."""
    updated = dict(profile)
    changed: list[str] = []
    for name in PROFILE_FIELDS:
        value = traits.get(name)
        if value is not None and value != profile.get(name):
            updated[name] = value
            changed.append(name)
    custom = dict(profile.get("custom") or {})
    new_custom = {**custom, **(traits.get("custom") or {})}
    if new_custom != custom:
        updated["custom"] = new_custom
        changed.append("custom")
    return updated, changed


def fill_gaps(
    survivor: Mapping[str, Any], merged: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The survivor's profile, with fields it lacks taken from a merged contact."""
    updated = dict(survivor)
    changed: list[str] = []
    for name in PROFILE_FIELDS:
        if survivor.get(name) is None and merged.get(name) is not None:
            updated[name] = merged[name]
            changed.append(name)
    custom = {**(merged.get("custom") or {}), **(survivor.get("custom") or {})}
    if custom != (survivor.get("custom") or {}):
        updated["custom"] = custom
        changed.append("custom")
    return updated, changed


@dataclass(frozen=True)
class ConsentStatement:
    """The latest word on one (channel, purpose): granted or not, and when."""

    granted: bool
    time: datetime


def consent_changes(current: ConsentStatement | None, new: ConsentStatement) -> bool:
    """Whether a new statement changes the effective consent (a late, older one does not)."""
    if current is None:
        return True
    return new.time >= current.time and new.granted != current.granted


def identifier_digest(key: bytes, identifier: Identifier) -> str:
    """Non-identifying tombstone of an erased identifier (HMAC-SHA256, hex)."""
    message = f"{identifier.kind.value}:{identifier.value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def is_erased_replay(event_time: datetime, erased_at: datetime | None) -> bool:
    """An event about an erased identifier, from before the erasure, must not revive it.

    Events from after the erasure are the person coming back (a new signup): allowed.
    """
    return erased_at is not None and event_time <= erased_at


# -- timeline ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    """One event on a contact's timeline, ordered by the event's own time."""

    contact_id: str
    origin_id: str
    event_id: str
    source: str
    type: str
    kind: str
    channel: str | None
    time: datetime
    data: dict[str, Any]

    @property
    def by_agent(self) -> bool:
        """An agent's interaction: on the timeline, but not counted by lifecycle rules."""
        return self.type == INTERACTION_RECORDED and "agent_id" in self.data


def entry_kind(event: CloudEvent) -> str:
    """`purchase` for interactions, `case.opened`, `score.changed`... for other events."""
    if isinstance(event.data, InteractionRecorded):
        return event.data.kind
    return event.type.removeprefix("crm.")


def timeline_entry(event: CloudEvent, *, contact_id: str, origin_id: str) -> TimelineEntry:
    """The timeline entry of an event; interactions lose their identifiers (kept elsewhere)."""
    data = event.data.model_dump(mode="json", exclude_none=True)
    data.pop("identity", None)
    channel = data.get("channel")
    return TimelineEntry(
        contact_id=contact_id,
        origin_id=origin_id,
        event_id=event.id,
        source=event.source,
        type=event.type,
        kind=entry_kind(event),
        channel=channel if isinstance(channel, str) else None,
        time=event.time,
        data=data,
    )
