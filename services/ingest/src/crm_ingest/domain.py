"""Pure rules of ingest: what a request body may hold, which events a channel may publish,
how they are keyed, and what an API key looks like. No I/O here."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from crm_contracts import EVENT_TYPES, CloudEvent, EventDecodeError, decode_json
from crm_contracts.envelope import DecodeReason
from crm_contracts.interactions import INTERACTION_RECORDED, Identity, InteractionRecorded

# Channels publish interactions; every other event type belongs to a service of the backbone.
ACCEPTED_TYPE = INTERACTION_RECORDED

RejectReason = DecodeReason | Literal["type_not_accepted", "source_not_allowed"]
BodyProblem = Literal["malformed_json", "wrong_shape", "empty_batch", "too_many_events"]


@dataclass(frozen=True)
class FieldIssue:
    """One thing wrong with an event: where (`data.identity.email`) and what."""

    path: str
    message: str


@dataclass(frozen=True)
class AcceptedEvent:
    """A valid event from the right source, with the partition key to publish it under."""

    index: int
    event: CloudEvent
    key: str

    @property
    def id(self) -> str:
        return self.event.id


@dataclass(frozen=True)
class RejectedEvent:
    """An event that will not be published, and why."""

    index: int
    id: str | None
    reason: RejectReason
    errors: tuple[FieldIssue, ...] = field(default_factory=tuple)


EventCheck = AcceptedEvent | RejectedEvent


class BodyError(ValueError):
    """A request body that is not one event or a batch of them."""

    def __init__(self, problem: BodyProblem, message: str) -> None:
        self.problem: BodyProblem = problem
        super().__init__(message)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_events(body: bytes, *, max_events: int) -> list[Any]:
    """The raw events of a body: one JSON object, or an array of them; `BodyError` when it is
    neither, or holds more than `max_events`."""
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BodyError("malformed_json", f"The body is not valid JSON: {exc}.") from None
    if isinstance(payload, dict):
        return [payload]
    if not isinstance(payload, list):
        raise BodyError(
            "wrong_shape",
            "The body must be one structured-mode CloudEvent (a JSON object) "
            "or a batch of them (a JSON array).",
        )
    if not payload:
        raise BodyError("empty_batch", "The batch holds no event.")
    if len(payload) > max_events:
        raise BodyError(
            "too_many_events",
            f"The batch holds {len(payload)} events; at most {max_events} are accepted "
            "per request: split it.",
        )
    return payload


def check_event(raw: Any, *, index: int, allowed_source: str) -> EventCheck:
    """Accept a structured-mode interaction from `allowed_source`, or say why not."""
    raw_id = raw.get("id") if isinstance(raw, Mapping) else None
    event_id = raw_id if isinstance(raw_id, str) else None
    event_type = raw.get("type") if isinstance(raw, Mapping) else None
    if isinstance(event_type, str) and event_type in EVENT_TYPES and event_type != ACCEPTED_TYPE:
        # Checked before the data: its errors would hide that the type is the problem.
        return RejectedEvent(
            index,
            event_id,
            "type_not_accepted",
            (FieldIssue("type", f"channels publish {ACCEPTED_TYPE} only"),),
        )
    try:
        event = decode_json(raw)
    except EventDecodeError as exc:
        issues = tuple(FieldIssue(e["path"], e["message"]) for e in exc.errors)
        return RejectedEvent(index, event_id, exc.reason, issues)
    if event.source != allowed_source:
        return RejectedEvent(
            index,
            event.id,
            "source_not_allowed",
            (FieldIssue("source", "the API key may publish for its own source only"),),
        )
    identity = event.data_as(InteractionRecorded).identity
    return AcceptedEvent(index, event, partition_key(identity))


def check_events(raws: Sequence[Any], *, allowed_source: str) -> list[EventCheck]:
    """`check_event` for each event of a batch, in order."""
    return [
        check_event(raw, index=index, allowed_source=allowed_source)
        for index, raw in enumerate(raws)
    ]


# Domain separation: a key never equals the plain hash of an email computed elsewhere.
_KEY_NAMESPACE = b"crm.interactions.raw.v1 partition key\x00"
_NOT_DIGITS = re.compile(r"\D")


def partition_key(identity: Identity) -> str:
    """The record key of an interaction: one customer's events keep one partition, and the
    key never carries an email, a phone number or another identifier in clear.

    The strongest identifier present decides: contact_id (opaque already, used as is), then
    an external id (`system:id`, the first system by name), the email (trimmed, lowercase),
    the phone (its digits), the anonymous id. All but contact_id are hashed with SHA-256.
    Readers of the topic see the identity in the value anyway; the hash keeps it out of the
    places that show keys (broker tools, dead-letter listings, logs).
    """
    if identity.contact_id:
        return identity.contact_id
    if identity.external_ids:
        system = min(identity.external_ids)
        return _hashed("external_id", f"{system}:{identity.external_ids[system].strip()}")
    if identity.email:
        return _hashed("email", identity.email.strip().lower())
    if identity.phone:
        return _hashed("phone", _NOT_DIGITS.sub("", identity.phone))
    if identity.anonymous_id:
        return _hashed("anonymous_id", identity.anonymous_id)
    raise ValueError("the identity holds no identifier")  # Identity refuses this already


def _hashed(kind: str, value: str) -> str:
    return hashlib.sha256(_KEY_NAMESPACE + f"{kind}\x00{value}".encode()).hexdigest()


# API keys look like `crmik_<12 hex>_<43 urlsafe>`: the public prefix finds the row, the
# rest is 32 random bytes. Such a key cannot be guessed or brute-forced from its hash, so a
# plain SHA-256 is enough; a slow password hash would only slow down every request.
API_KEY_SCHEME = "crmik_"
_PREFIX_HEX_CHARS = 12
_SECRET_BYTES = 32
_API_KEY = re.compile(rf"({API_KEY_SCHEME}[0-9a-f]{{{_PREFIX_HEX_CHARS}}})_[A-Za-z0-9_-]{{43}}")
MAX_SOURCE_LENGTH = 1024
MAX_DESCRIPTION_LENGTH = 200
_SOURCE = re.compile(rf"\S{{1,{MAX_SOURCE_LENGTH}}}")


@dataclass(frozen=True)
class ApiKey:
    """A channel's API key as stored, without its secret."""

    id: UUID
    source: str
    prefix: str
    description: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def check_source(source: str) -> str:
    """Return `source` if it can be an event source (no blanks, 1 to 1024 characters)."""
    if not _SOURCE.fullmatch(source):
        raise ValueError(
            f"a source is 1 to {MAX_SOURCE_LENGTH} characters without blanks, "
            "e.g. urn:channel:webshop"
        )
    return source


@dataclass(frozen=True)
class NewApiKey:
    """A freshly generated key: shown once to its owner, stored as prefix and hash."""

    key: str = field(repr=False)
    prefix: str
    key_hash: bytes = field(repr=False)


def generate_api_key() -> NewApiKey:
    """A new random API key."""
    prefix = API_KEY_SCHEME + secrets.token_hex(_PREFIX_HEX_CHARS // 2)
    key = f"{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    return NewApiKey(key=key, prefix=prefix, key_hash=hash_api_key(key))


def api_key_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, else None."""
    match = _API_KEY.fullmatch(key)
    return match.group(1) if match else None


def hash_api_key(key: str) -> bytes:
    """What is stored of a key: its SHA-256."""
    return hashlib.sha256(key.encode()).digest()


def api_key_matches(key: str, key_hash: bytes) -> bool:
    """Whether `key` is the key stored as `key_hash` (constant-time comparison)."""
    return hmac.compare_digest(hash_api_key(key), key_hash)
