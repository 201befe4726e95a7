"""CloudEvents 1.0 envelope, and its Kafka binary and structured modes.

Services publish in binary mode (`ce_*` headers, JSON data as the value); the raw
interactions topic also takes structured mode (the whole event as JSON), which is the form
HTTP clients send to ingest.
"""

import builtins
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails

from crm_contracts.registry import EVENT_TYPES, UnknownEventType, data_model_for, schema_uri
from crm_contracts.storable import StorableModel

SPECVERSION: Literal["1.0"] = "1.0"
JSON_CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
CONTENT_TYPE_HEADER = "content-type"
HEADER_PREFIX = "ce_"

REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type", "time")
# Binary-mode headers in the order they are written; content-type comes last.
HEADER_ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    "dataschema",
    "correlationid",
    "causationid",
)

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)

DecodeReason = Literal[
    "malformed",
    "missing_attribute",
    "unsupported_specversion",
    "unknown_type",
    "invalid_attribute",
    "invalid_data",
]
M = TypeVar("M", bound=BaseModel)


def format_time(value: datetime) -> str:
    """RFC 3339 text of an aware datetime, `Z` for UTC."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _is_json_media_type(value: str) -> bool:
    base = value.split(";", 1)[0].strip().lower()
    if base.startswith("application/cloudevents"):
        return False
    return base in ("application/json", "text/json") or base.endswith("+json")


class EventAttributes(StorableModel):
    """The CloudEvents context attributes of an event (everything but data); every one
    storable (`crm_contracts.storable`), `time` from 1900 to 9999."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = SPECVERSION
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=1024)
    type: str = Field(max_length=128, pattern=EVENT_TYPE_PATTERN)
    time: AwareDatetime = Field(description="When it happened.")
    subject: str | None = Field(default=None, min_length=1, max_length=256)
    datacontenttype: str = JSON_CONTENT_TYPE
    dataschema: str | None = Field(default=None, min_length=1, max_length=1024)
    correlationid: str | None = Field(default=None, min_length=1, max_length=256)
    causationid: str | None = Field(default=None, min_length=1, max_length=256)

    @field_validator("time", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str) or not _RFC3339.fullmatch(value):
            raise ValueError("must be an RFC 3339 timestamp with a zone, e.g. 2026-11-22T10:00:00Z")
        return value

    @field_validator("datacontenttype")
    @classmethod
    def _json_only(cls, value: str) -> str:
        if not _is_json_media_type(value):
            raise ValueError(f"must be {JSON_CONTENT_TYPE}: data is JSON")
        return value

    @field_serializer("time", when_used="json")
    def _time_text(self, value: datetime) -> str:
        return format_time(value)


def _prefixed(exc: ValidationError, prefix: str) -> list[InitErrorDetails]:
    return [
        InitErrorDetails(
            type=error["type"],
            loc=(prefix, *error["loc"]),
            input=error["input"],
            ctx=error.get("ctx", {}),
        )
        for error in exc.errors()
    ]


class CloudEvent(EventAttributes):
    """A CloudEvents 1.0 event whose data is the model registered for its type."""

    data: SerializeAsAny[BaseModel]

    @model_validator(mode="before")
    @classmethod
    def _data_from_mapping(cls, value: Any) -> Any:
        # `type(...) is dict` first: isinstance against the abstract Mapping is slow.
        if not (type(value) is dict or isinstance(value, Mapping)):
            return value
        data = value.get("data")
        if not (type(data) is dict or isinstance(data, Mapping)):
            return value
        try:
            model = data_model_for(value.get("type"))  # type: ignore[arg-type]
        except (UnknownEventType, TypeError):
            return value
        try:
            return {**value, "data": model.model_validate(value["data"])}
        except ValidationError as exc:
            raise ValidationError.from_exception_data(
                cls.__name__, _prefixed(exc, "data")
            ) from None

    @model_validator(mode="after")
    def _data_matches_type(self) -> "CloudEvent":
        model = data_model_for(self.type)
        if not isinstance(self.data, model):
            raise ValueError(f"data of {self.type} must be {model.__name__}")
        return self

    def data_as(self, model: "builtins.type[M]") -> M:
        """The data, typed as the model given; TypeError if it is another model."""
        if not isinstance(self.data, model):
            raise TypeError(f"{self.type} carries {self.data.__class__.__name__}, not {model}")
        return self.data


@dataclass(frozen=True)
class KafkaRecord:
    """What to hand to a Kafka producer, or what a consumer received."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class EventDecodeError(ValueError):
    """A record or JSON object is not a valid event of the backbone."""

    def __init__(self, reason: DecodeReason, errors: list[dict[str, str]]) -> None:
        self.reason: DecodeReason = reason
        self.errors = errors
        super().__init__(reason, errors)

    def __str__(self) -> str:
        shown = [
            f"{error['path']}: {error['message']}" if error["path"] else error["message"]
            for error in self.errors[:3]
        ]
        more = len(self.errors) - len(shown)
        summary = "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")
        return f"{self.reason}: {summary}" if summary else self.reason


def new_event(
    type: str,
    data: BaseModel,
    *,
    source: str,
    subject: str | None = None,
    correlationid: str | None = None,
    causationid: str | None = None,
    id: str | None = None,
    time: datetime | None = None,
    cause: CloudEvent | None = None,
) -> CloudEvent:
    """A new event of a registered type; cause (the event that led to it) fills the trace ids.

    id defaults to a uuid4, time to now (UTC), subject to the data's contact id, correlationid
    to the cause's correlation id or else the event's own id, causationid to the cause's id.
    """
    model = data_model_for(type)
    if not isinstance(data, model):
        raise TypeError(f"{type} needs {model.__name__} data, not {data.__class__.__name__}")
    event_id = id if id is not None else str(uuid.uuid4())
    if cause is not None:
        causationid = causationid or cause.id
        correlationid = correlationid or cause.correlationid or cause.id
    return CloudEvent(
        id=event_id,
        source=source,
        type=type,
        time=time if time is not None else datetime.now(UTC),
        subject=subject if subject is not None else _subject_of(data),
        dataschema=schema_uri(type),
        correlationid=correlationid or event_id,
        causationid=causationid,
        data=data,
    )


def _subject_of(data: BaseModel) -> str | None:
    path: str | None = getattr(data, "subject_field", None)
    value: Any = data
    for name in path.split(".") if path else ():
        value = getattr(value, name, None)
    return value if isinstance(value, str) else None


_HEADER_NAMES = tuple((name, f"{HEADER_PREFIX}{name}") for name in HEADER_ATTRIBUTES)


def _key_bytes(key: str | None) -> bytes | None:
    return None if key is None else key.encode()


def encode_binary(event: CloudEvent, *, key: str | None) -> KafkaRecord:
    """Binary mode: attributes as `ce_*` headers, the data as compact JSON in the value."""
    headers: list[tuple[str, bytes]] = []
    for name, header in _HEADER_NAMES:
        # What `to_json_dict` holds for each attribute: the text as is, `time` formatted.
        value = getattr(event, name)
        if value is not None:
            text = format_time(value) if name == "time" else str(value)
            headers.append((header, text.encode()))
    headers.append((CONTENT_TYPE_HEADER, event.datacontenttype.encode()))
    value = event.data.model_dump_json(by_alias=True, exclude_none=True).encode()
    return KafkaRecord(key=_key_bytes(key), value=value, headers=headers)


def encode_structured(event: CloudEvent, *, key: str | None) -> KafkaRecord:
    """Structured mode: the whole event as one JSON object in the value."""
    value = event.model_dump_json(by_alias=True, exclude_none=True).encode()
    return KafkaRecord(
        key=_key_bytes(key),
        value=value,
        headers=[(CONTENT_TYPE_HEADER, STRUCTURED_CONTENT_TYPE.encode())],
    )


def to_json_dict(event: CloudEvent) -> dict[str, Any]:
    """The structured-mode JSON object of an event (what HTTP clients send)."""
    return event.model_dump(mode="json", by_alias=True, exclude_none=True)


def decode_json(obj: Any) -> CloudEvent:
    """Validate a structured-mode JSON object (already parsed) into an event."""
    if not isinstance(obj, Mapping):
        raise EventDecodeError(
            "malformed", [_error("", "a structured CloudEvent must be a JSON object")]
        )
    if "data_base64" in obj:
        raise EventDecodeError(
            "invalid_data", [_error("data_base64", "not supported: data must be JSON")]
        )
    attributes = {name: value for name, value in obj.items() if name != "data"}
    data = obj.get("data")
    event = _valid_event(attributes, lambda model: model.model_validate(data))
    return event if event is not None else _validate(attributes, data)


def decode_record(value: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> CloudEvent:
    """Decode a Kafka record in either mode (detected from its headers) into an event."""
    found_type, attributes = _cloudevents_headers(headers)
    content_type = found_type or ""
    if content_type.lower().startswith("application/cloudevents"):
        if content_type.lower().startswith("application/cloudevents-batch"):
            raise EventDecodeError("malformed", [_error("", "batched mode is not supported")])
        return decode_json(_parse_json(value, path=""))
    if "specversion" in attributes:
        attributes.pop("data", None)  # ce_data is no attribute: the value is the data
        if found_type is not None:
            attributes["datacontenttype"] = content_type
        if value is not None and not _NON_STANDARD_JSON.search(value):
            raw = value
            event = _valid_event(attributes, lambda model: model.model_validate_json(raw))
            if event is not None:
                return event
        data = None if value is None else _parse_json(value, path="data")
        return _validate(attributes, data)
    if value is None:
        raise EventDecodeError(
            "malformed", [_error("", "the record has no value and no CloudEvents headers")]
        )
    return decode_json(_parse_json(value, path=""))


# JSON's non-standard constants, which `_parse_json` refuses and pydantic's parser accepts:
# data that mentions them anywhere (inside a string, say) takes the checked path.
_NON_STANDARD_JSON = re.compile(rb"NaN|Infinity")


def _valid_event(
    attributes: Mapping[str, Any], validate_data: Callable[[type[BaseModel]], BaseModel]
) -> CloudEvent | None:
    """The event, in one pass, when everything about it is valid; None when anything is not.

    Most records are valid: this builds them with the fewest validations. On None the caller
    takes `_validate`, which finds and names every problem; an accepted event is the one
    `_validate` would have built (same values, same fields set).
    """
    present = {name: value for name, value in attributes.items() if value is not None}
    event_type = present.get("type")
    model = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if model is None or not all(name in present for name in REQUIRED_ATTRIBUTES):
        return None
    try:
        present["data"] = validate_data(model)
        return CloudEvent.model_validate(present)
    except (ValidationError, ValueError, TypeError):
        return None


def _error(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def _cloudevents_headers(
    headers: Sequence[tuple[str, bytes | None]],
) -> tuple[str | None, dict[str, str]]:
    """The content-type header and the `ce_*` headers (names lowered, prefix cut), in one pass."""
    content_type: str | None = None
    found: dict[str, str] = {}
    for name, raw in headers:
        lowered = name.lower()
        if raw is None:
            continue
        attribute: str | None = None  # None: the content-type header
        if lowered[:3] == HEADER_PREFIX:
            attribute = lowered[3:]
            seen = attribute in found
        elif lowered == CONTENT_TYPE_HEADER:
            seen = content_type is not None
        else:
            continue
        if seen:
            raise EventDecodeError("malformed", [_error(name, "header appears more than once")])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EventDecodeError("malformed", [_error(name, "header is not UTF-8")]) from None
        if attribute is None:
            content_type = text
        else:
            found[attribute] = text
    return content_type, found


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for every record: json.loads with keyword arguments builds a new one a call.
_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_json(value: bytes | None, *, path: str) -> Any:
    if value is None:
        raise EventDecodeError("malformed", [_error(path, "the record has no value")])
    try:
        if isinstance(value, bytes | bytearray):  # what json.loads does with bytes
            return _JSON_DECODER.decode(value.decode(json.detect_encoding(value), "surrogatepass"))
        return json.loads(value, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EventDecodeError("malformed", [_error(path, f"not valid JSON: {exc}")]) from None


def _path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            path += part
        else:
            path += f".{part}" if path else part
    return path


def _message(error: ErrorDetails) -> str:
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error["type"] == "missing":
        return "required"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    return message


def _validate(attributes: Mapping[str, Any], data: Any) -> CloudEvent:
    present = {name: value for name, value in attributes.items() if value is not None}
    specversion = present.get("specversion")
    if specversion is not None and specversion != SPECVERSION:
        raise EventDecodeError(
            "unsupported_specversion",
            [_error("specversion", f"{specversion!r} is not supported; use {SPECVERSION!r}")],
        )
    missing = [_error(name, "required attribute") for name in REQUIRED_ATTRIBUTES]
    missing = [error for error in missing if error["path"] not in present]
    invalid: list[dict[str, str]] = []
    parsed: EventAttributes | None = None
    try:
        parsed = EventAttributes.model_validate(present)
    except ValidationError as exc:
        invalid = [
            _error(_path(error["loc"]), _message(error))
            for error in exc.errors()
            if error["type"] != "missing"
        ]
    unknown: list[dict[str, str]] = []
    data_errors: list[dict[str, str]] = []
    model: type[BaseModel] | None = None
    event_type = present.get("type")
    if isinstance(event_type, str) and not any(e["path"] == "type" for e in missing + invalid):
        try:
            model = data_model_for(event_type)
        except UnknownEventType:
            unknown = [_error("type", f"unknown event type {event_type!r}")]
    validated: BaseModel | None = None
    if model is not None:
        if data is None:
            data_errors = [_error("data", "required")]
        else:
            try:
                validated = model.model_validate(data)
            except ValidationError as exc:
                data_errors = [
                    _error(_path(("data", *error["loc"])), _message(error))
                    for error in exc.errors()
                ]
    checks: list[tuple[DecodeReason, list[dict[str, str]]]] = [
        ("missing_attribute", missing),
        ("invalid_attribute", invalid),
        ("unknown_type", unknown),
        ("invalid_data", data_errors),
    ]
    for reason, errors in checks:
        if errors:
            raise EventDecodeError(reason, missing + invalid + unknown + data_errors)
    assert parsed is not None and validated is not None
    # Everything is validated already; constructing skips a second pass over the data.
    fields_set = {*parsed.model_fields_set, "data"}
    return CloudEvent.model_construct(fields_set, **dict(parsed), data=validated)
