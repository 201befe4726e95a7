"""Every string, integer and timestamp of every event is one that every service can store.

Postgres cannot hold a NUL character, a lone surrogate is not text at all, an integer past
64 bits fits no column, and a timestamp near year 1 or 9999 overflows date arithmetic: the
contracts refuse them wherever they are, naming the place, so that a producer hears about
it at the edge instead of the event being lost at a consumer.
"""

from __future__ import annotations

import copy
import json
import types
import typing
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from crm_contracts import (
    EVENT_TYPES,
    EventAttributes,
    EventDecodeError,
    decode_json,
    decode_record,
    encode_binary,
    to_json_dict,
)
from crm_contracts.cases import CaseSlaBreached
from crm_contracts.contacts import LifecycleStage
from crm_contracts.examples import example_event
from crm_contracts.interactions import InteractionResolved
from crm_contracts.storable import RULES, StorableModel
from tests.support.events import RAW_INTERACTION

CONTRACTS = Path(__file__).parents[3] / "contracts"


def decode_error(obj: Any) -> EventDecodeError:
    with pytest.raises(EventDecodeError) as caught:
        decode_json(obj)
    return caught.value


def paths(error: EventDecodeError) -> list[str]:
    return [entry["path"] for entry in error.errors]


def raw() -> dict[str, Any]:
    return copy.deepcopy(RAW_INTERACTION)


def models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models an annotation names, however deeply nested in unions and containers."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        for field in annotation.model_fields.values():
            yield from models_in(field.annotation)
    for argument in typing.get_args(annotation):
        yield from models_in(argument)
    if isinstance(annotation, types.UnionType):
        for argument in annotation.__args__:
            yield from models_in(argument)


def string_leaves(value: Any, path: str = "") -> Iterator[str]:
    """The dotted path of every string value in a JSON document (`properties.order_id`)."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_leaves(item, f"{path}[{index}]")


def with_nul_at(document: dict[str, Any], path: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    parts = [p for p in path.replace("[", ".[").split(".") if p]
    target: Any = changed
    for part in parts[:-1]:
        target = target[int(part[1:-1])] if part.startswith("[") else target[part]
    last = parts[-1]
    key: Any = int(last[1:-1]) if last.startswith("[") else last
    target[key] = target[key] + "\x00"
    return changed


def test_every_model_of_every_event_and_the_envelope_checks_its_values() -> None:
    models = {model for data in EVENT_TYPES.values() for model in models_in(data)}

    assert not [model.__name__ for model in models if not issubclass(model, StorableModel)]
    assert issubclass(EventAttributes, StorableModel)
    assert len(models) > len(EVENT_TYPES)  # nested models were found too


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_a_nul_in_any_string_of_an_event_is_refused_where_it_is(event_type: str) -> None:
    event = to_json_dict(example_event(event_type))
    leaves = list(string_leaves(event["data"]))
    assert leaves

    for leaf in leaves:
        broken = {**event, "data": with_nul_at(event["data"], leaf)}
        error = decode_error(broken)
        assert error.reason == "invalid_data", leaf
        assert f"data.{leaf}" in paths(error), (leaf, error.errors)


@pytest.mark.parametrize(
    "attribute", ["id", "source", "subject", "dataschema", "correlationid", "causationid"]
)
def test_a_nul_in_an_envelope_attribute_is_an_invalid_attribute(attribute: str) -> None:
    event = to_json_dict(example_event("crm.interaction.resolved"))
    event[attribute] += "\x00"

    error = decode_error(event)

    assert error.reason == "invalid_attribute"
    assert error.errors == [
        {"path": attribute, "message": "must not contain the NUL character (U+0000)"}
    ]


def test_a_nul_in_free_form_properties_names_the_property() -> None:
    event = raw()
    event["data"]["properties"] = {"order_id": "o-1", "note": "gift\x00wrap"}

    error = decode_error(event)

    assert error.reason == "invalid_data"
    assert error.errors == [
        {"path": "data.properties.note", "message": "must not contain the NUL character (U+0000)"}
    ]


def test_a_nul_in_a_key_of_free_form_json_is_refused() -> None:
    event = raw()
    event["data"]["properties"] = {"bad\x00key": "x"}
    event["data"]["traits"]["custom"] = {"tier\x00": "gold"}

    error = decode_error(event)

    assert set(paths(error)) == {"data.properties", "data.traits.custom"}
    assert all(e["message"].startswith("a key must not contain") for e in error.errors)


@pytest.mark.parametrize(
    ("place", "value"),
    [
        (("identity", "anonymous_id"), "ck-\ud800"),
        (("traits", "first_name"), "Ada\udfff"),
        (("properties", "note"), "\ud83d"),  # half of an emoji
    ],
)
def test_a_lone_surrogate_is_refused(place: tuple[str, str], value: str) -> None:
    event = raw()
    event["data"].setdefault(place[0], {})[place[1]] = value

    error = decode_error(event)

    assert error.reason == "invalid_data"
    assert paths(error) == [f"data.{place[0]}.{place[1]}"]


def test_a_surrogate_pair_is_one_character_and_is_accepted() -> None:
    event = raw()
    event["data"]["properties"] = {"note": json.loads('"\\ud83d\\ude00"')}

    assert decode_json(event).data.model_dump()["properties"] == {"note": "\U0001f600"}


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 10**30])
def test_an_integer_past_64_bits_is_refused(number: int) -> None:
    event = raw()
    event["data"]["properties"] = {"quantity": number}

    error = decode_error(event)

    assert error.errors == [
        {
            "path": "data.properties.quantity",
            "message": "must be a 64-bit integer (-2^63 to 2^63-1)",
        }
    ]


@pytest.mark.parametrize("number", [2**63 - 1, -(2**63)])
def test_the_largest_64_bit_integers_are_accepted(number: int) -> None:
    event = raw()
    event["data"]["properties"] = {"quantity": number}

    assert decode_json(event).data.model_dump()["properties"] == {"quantity": number}


@pytest.mark.parametrize(
    "time",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # not even representable in UTC
        "1899-12-31T23:59:59Z",
        "9999-01-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_a_time_outside_1900_to_9999_is_an_invalid_attribute(time: str) -> None:
    event = raw()
    event["time"] = time

    error = decode_error(event)

    assert error.reason == "invalid_attribute"
    assert paths(error) == ["time"]


@pytest.mark.parametrize(
    "time", ["1900-01-01T00:00:00Z", "1900-01-01T00:30:00+00:30", "9998-12-31T23:59:59Z"]
)
def test_a_time_inside_the_bounds_is_accepted(time: str) -> None:
    event = raw()
    event["time"] = time

    assert decode_json(event).time.year in (1900, 9998)


def test_a_timestamp_field_of_the_data_has_the_same_bounds() -> None:
    event = to_json_dict(example_event("crm.case.sla_breached"))
    event["data"]["due_at"] = "0001-01-01T00:00:00Z"

    assert paths(decode_error(event)) == ["data.due_at"]


def test_a_binary_record_with_a_nul_in_a_header_is_an_invalid_attribute() -> None:
    record = encode_binary(example_event("crm.interaction.resolved"), key="c-1")
    headers = [(n, v + b"\x00" if n == "ce_id" else v) for n, v in record.headers]

    with pytest.raises(EventDecodeError) as caught:
        decode_record(record.value, headers)

    assert caught.value.reason == "invalid_attribute"
    assert paths(caught.value) == ["id"]


@pytest.mark.parametrize(
    "text",
    [b'"a\\u0000b"', b'"a\\ud800b"', b'"a\xed\xa0\x80b"'],  # escapes, and UTF-8 bytes of one
    ids=["nul-escape", "surrogate-escape", "surrogate-bytes"],
)
def test_a_binary_record_whose_data_holds_unstorable_text_is_invalid_data(text: bytes) -> None:
    record = encode_binary(example_event("crm.interaction.resolved"), key="c-1")
    value = (record.value or b"").replace(b'"o-1"', text)

    with pytest.raises(EventDecodeError) as caught:
        decode_record(value, record.headers)

    assert caught.value.reason == "invalid_data"
    assert paths(caught.value) == ["data.properties.order_id"]


def test_a_service_cannot_build_an_event_with_unstorable_text() -> None:
    with pytest.raises(ValidationError) as caught:
        InteractionResolved(
            interaction_id="evt-1",
            interaction_source="urn:channel:web\x00",
            contact_id="c-1",
            channel="web",
            kind="page_view",
            stage=LifecycleStage.PROSPECT,
            stage_changed=True,
        )

    assert [error["loc"] for error in caught.value.errors()] == [("interaction_source",)]


def test_a_service_cannot_build_an_event_with_a_timestamp_out_of_bounds() -> None:
    with pytest.raises(ValidationError):
        CaseSlaBreached.model_validate(
            {
                **example_event("crm.case.sla_breached").data.model_dump(),
                "due_at": datetime(1, 1, 1, tzinfo=UTC),
            }
        )


def test_events_md_and_the_asyncapi_document_state_the_rules() -> None:
    events_md = (CONTRACTS / "EVENTS.md").read_text(encoding="utf-8")
    asyncapi = json.loads((CONTRACTS / "asyncapi.json").read_text(encoding="utf-8"))

    for rule in RULES:
        assert rule in events_md
        assert rule in asyncapi["info"]["description"]
