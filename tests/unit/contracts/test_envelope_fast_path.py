"""Decoding a valid record in one pass builds the very event the checked path builds.

`decode_record` and `decode_json` first try to build an event with the fewest validations,
and fall back to the path that names every problem. These tests hold the two to each other:
same values, same fields set, same encoding; and what the one-pass path would accept but the
contract refuses (JSON's NaN) still goes to the checked path.
"""

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from crm_contracts import (
    EVENT_TYPES,
    CloudEvent,
    EventDecodeError,
    decode_json,
    decode_record,
    encode_binary,
    encode_structured,
    envelope,
    to_json_dict,
)
from crm_contracts.envelope import HEADER_ATTRIBUTES, _validate
from crm_contracts.examples import example_event
from crm_contracts.interactions import INTERACTION_RECORDED
from tests.support.events import RAW_INTERACTION


def checked(event: CloudEvent) -> CloudEvent:
    """The event as the checked path (`_validate`) builds it from the event's JSON."""
    obj = to_json_dict(event)
    data = obj.pop("data")
    return _validate(obj, data)


def same(decoded: CloudEvent, expected: CloudEvent) -> None:
    assert decoded == expected
    assert decoded.model_fields_set == expected.model_fields_set
    assert type(decoded.data) is type(expected.data)
    assert decoded.data.model_fields_set == expected.data.model_fields_set
    assert to_json_dict(decoded) == to_json_dict(expected)


def every_attribute(event: CloudEvent) -> CloudEvent:
    return event.model_copy(
        update={
            "subject": "c-7f3a9e",
            "correlationid": "corr-1",
            "causationid": "cause-1",
            "datacontenttype": "application/json; charset=utf-8",
            "time": datetime(2026, 11, 22, 11, 30, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
        }
    )


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_a_binary_record_decodes_to_what_the_checked_path_builds(event_type: str) -> None:
    for event in (example_event(event_type), every_attribute(example_event(event_type))):
        record = encode_binary(event, key="k")

        same(decode_record(record.value, record.headers), checked(event))


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_a_structured_record_decodes_to_what_the_checked_path_builds(event_type: str) -> None:
    for event in (example_event(event_type), every_attribute(example_event(event_type))):
        record = encode_structured(event, key=None)

        same(decode_record(record.value, record.headers), checked(event))
        same(decode_json(json.loads(record.value or b"")), checked(event))


def test_null_attributes_count_as_absent_on_either_path() -> None:
    body: dict[str, Any] = {**copy.deepcopy(RAW_INTERACTION), "subject": None, "causationid": None}
    expected = _validate({k: v for k, v in body.items() if k != "data"}, body["data"])

    decoded = decode_json(body)

    same(decoded, expected)
    assert "subject" not in decoded.model_fields_set


def test_a_structured_event_without_specversion_still_misses_an_attribute() -> None:
    body = copy.deepcopy(RAW_INTERACTION)
    del body["specversion"]

    with pytest.raises(EventDecodeError) as caught:
        decode_json(body)

    assert caught.value.reason == "missing_attribute"
    assert [e["path"] for e in caught.value.errors] == ["specversion"]


def test_nan_in_binary_data_is_still_malformed() -> None:
    record = encode_binary(example_event(INTERACTION_RECORDED), key=None)
    value = (record.value or b"").replace(b'"order_id":"o-1"', b'"order_id":NaN')

    with pytest.raises(EventDecodeError) as caught:
        decode_record(value, record.headers)

    assert caught.value.reason == "malformed"
    assert caught.value.errors[0]["path"] == "data"


def test_data_that_mentions_nan_in_a_string_decodes() -> None:
    event = decode_json(
        {
            **copy.deepcopy(RAW_INTERACTION),
            "data": {
                **RAW_INTERACTION["data"],
                "properties": {"note": "NaN and Infinity are words here"},
            },
        }
    )
    record = encode_binary(event, key=None)

    same(decode_record(record.value, record.headers), checked(event))


def test_binary_headers_carry_the_attributes_as_the_structured_json_spells_them() -> None:
    for event_type in sorted(EVENT_TYPES):
        event = every_attribute(example_event(event_type))
        attributes = to_json_dict(event)

        headers = encode_binary(event, key=None).headers

        assert headers == [
            *((f"ce_{name}", str(attributes[name]).encode()) for name in HEADER_ATTRIBUTES),
            ("content-type", b"application/json; charset=utf-8"),
        ]


def test_a_utc_time_is_written_with_z() -> None:
    event = example_event(INTERACTION_RECORDED).model_copy(
        update={"time": datetime(2026, 11, 22, 10, 0, tzinfo=UTC)}
    )

    headers = dict(encode_binary(event, key=None).headers)

    assert headers["ce_time"] == b"2026-11-22T10:00:00Z"


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_a_valid_record_is_built_in_one_pass(
    event_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The comparisons above would pass trivially if every record took the checked path.
    event = every_attribute(example_event(event_type))
    binary, structured = encode_binary(event, key=None), encode_structured(event, key=None)

    def refuse(*_: Any) -> CloudEvent:
        raise AssertionError("took the checked path")

    monkeypatch.setattr(envelope, "_validate", refuse)

    assert decode_record(binary.value, binary.headers) == event
    assert decode_record(structured.value, structured.headers) == event


@pytest.mark.parametrize(
    "value",
    [
        b'{"a":1,"a":2}',
        b'\xef\xbb\xbf{"a":1}',
        '{"a":1}'.encode("utf-16"),
        b'"\\ud800"',
        b'{"a": NaN}',
        b'{"a": -Infinity}',
        b'{"a":',
        b"\xff\xfe\xfd",
        b"",
    ],
)
def test_record_json_is_read_as_json_loads_reads_it(value: bytes) -> None:
    def reject(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        expected: Any = json.loads(value, parse_constant=reject)
    except ValueError as exc:  # UnicodeDecodeError included
        expected = f"malformed: data: not valid JSON: {exc}"
    try:
        got: Any = envelope._parse_json(value, path="data")
    except EventDecodeError as exc:
        got = str(exc)

    assert got == expected
