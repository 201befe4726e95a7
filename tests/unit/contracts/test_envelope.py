"""CloudEvents envelope: building, encoding in both Kafka modes, decoding and its errors."""

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from crm_contracts import (
    EVENT_TYPES,
    CloudEvent,
    EventDecodeError,
    KafkaRecord,
    decode_json,
    decode_record,
    encode_binary,
    encode_structured,
    new_event,
    schema_uri,
    to_json_dict,
)
from crm_contracts.cases import CASE_OPENED, CaseOpened
from crm_contracts.examples import example_data, example_event
from crm_contracts.interactions import INTERACTION_RECORDED, InteractionRecorded
from crm_contracts.scores import SCORE_CHANGED
from tests.support.events import RAW_INTERACTION

# The shape channel systems code against, as the issue gave it: accepted as is.
ISSUE_EXAMPLE: dict[str, Any] = RAW_INTERACTION


def issue_example() -> dict[str, Any]:
    return copy.deepcopy(ISSUE_EXAMPLE)


def decode_error(obj: Any) -> EventDecodeError:
    with pytest.raises(EventDecodeError) as caught:
        decode_json(obj)
    return caught.value


def paths(error: EventDecodeError) -> list[str]:
    return [entry["path"] for entry in error.errors]


def headers_of(record: KafkaRecord) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


# ---- the example from the issue ---------------------------------------------------------------


def test_the_issue_example_is_accepted_as_is() -> None:
    event = decode_json(issue_example())

    assert event.type == INTERACTION_RECORDED
    assert event.id == "evt-0001"
    assert event.time == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    data = event.data_as(InteractionRecorded)
    assert data.kind == "purchase"
    assert data.identity.external_ids == {"webshop": "c-42"}
    assert data.value is not None and data.value.amount == Decimal("120.00")
    assert data.properties == {"order_id": "o-1"}


def test_the_issue_example_survives_a_round_trip_through_kafka_and_json() -> None:
    event = decode_json(issue_example())

    binary = encode_binary(event, key="ada@example.com")
    structured = encode_structured(event, key=None)

    assert decode_record(binary.value, binary.headers) == event
    assert decode_record(structured.value, structured.headers) == event
    assert decode_json(to_json_dict(event)) == event
    assert to_json_dict(event)["data"]["value"] == {"amount": "120.00", "currency": "EUR"}


def test_the_issue_example_sent_without_headers_is_read_as_structured() -> None:
    value = json.dumps(ISSUE_EXAMPLE).encode()

    assert decode_record(value, []) == decode_json(issue_example())


# ---- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_round_trips_in_binary_mode(event_type: str) -> None:
    event = example_event(event_type)

    record = encode_binary(event, key=event.subject)

    assert decode_record(record.value, record.headers) == event
    assert headers_of(record)["ce_type"] == event_type


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_round_trips_in_structured_mode(event_type: str) -> None:
    event = example_event(event_type)

    record = encode_structured(event, key=event.subject)

    assert decode_record(record.value, record.headers) == event
    assert decode_json(json.loads(record.value or b"")) == event


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_example_carries_the_model_registered_for_its_type(event_type: str) -> None:
    assert isinstance(example_data(event_type), EVENT_TYPES[event_type])


# ---- building events --------------------------------------------------------------------------


def test_a_new_event_gets_an_id_a_time_a_schema_and_its_own_correlation_id() -> None:
    before = datetime.now(UTC)

    event = new_event(CASE_OPENED, example_data(CASE_OPENED), source="urn:crm:cases")

    assert uuid.UUID(event.id).version == 4
    assert before <= event.time <= datetime.now(UTC)
    assert event.dataschema == schema_uri(CASE_OPENED)
    assert event.dataschema == "https://crm-backbone.dev/schemas/crm.case.opened.json"
    assert event.correlationid == event.id
    assert event.causationid is None


def test_a_new_event_takes_its_subject_from_the_contact_id_of_its_data() -> None:
    data = example_data(CASE_OPENED)
    assert isinstance(data, CaseOpened)

    assert new_event(CASE_OPENED, data, source="urn:crm:cases").subject == data.contact_id
    assert new_event(CASE_OPENED, data, source="s", subject="c-9").subject == "c-9"


def test_a_raw_interaction_has_a_subject_only_when_the_channel_knows_the_contact() -> None:
    data = example_data(INTERACTION_RECORDED)
    assert isinstance(data, InteractionRecorded)
    known = data.model_copy(
        update={"identity": data.identity.model_copy(update={"contact_id": "c-1"})}
    )

    assert new_event(INTERACTION_RECORDED, data, source="urn:channel:web").subject is None
    assert new_event(INTERACTION_RECORDED, known, source="urn:channel:web").subject == "c-1"


def test_an_event_caused_by_another_carries_its_trace() -> None:
    cause = decode_json(issue_example())

    event = new_event(
        SCORE_CHANGED, example_data(SCORE_CHANGED), source="urn:crm:scoring", cause=cause
    )
    next_event = new_event(CASE_OPENED, example_data(CASE_OPENED), source="s", cause=event)

    assert event.causationid == cause.id
    assert event.correlationid == cause.id
    assert next_event.causationid == event.id
    assert next_event.correlationid == cause.id


def test_a_new_event_refuses_data_of_another_type() -> None:
    with pytest.raises(TypeError, match="CaseOpened"):
        new_event(CASE_OPENED, example_data(SCORE_CHANGED), source="urn:crm:cases")


def test_a_new_event_refuses_an_unknown_type() -> None:
    with pytest.raises(KeyError, match=r"crm\.case\.teleported"):
        new_event("crm.case.teleported", example_data(CASE_OPENED), source="urn:crm:cases")


def test_a_new_event_refuses_a_time_without_a_zone() -> None:
    with pytest.raises(ValueError, match="time"):
        new_event(
            CASE_OPENED, example_data(CASE_OPENED), source="s", time=datetime(2026, 1, 1, 9, 0)
        )


def test_a_cloud_event_validated_from_a_mapping_reports_data_errors_under_data() -> None:
    obj = issue_example()
    obj["data"]["channel"] = "pigeon"

    with pytest.raises(ValueError) as caught:
        CloudEvent.model_validate(obj)

    assert "data.channel" in str(caught.value)


# ---- the Kafka binding ------------------------------------------------------------------------


def test_binary_mode_puts_attributes_in_ce_headers_and_the_data_in_the_value() -> None:
    event = example_event(CASE_OPENED)

    record = encode_binary(event, key="c-7f3a9e")

    assert record.key == b"c-7f3a9e"
    assert headers_of(record) == {
        "ce_specversion": "1.0",
        "ce_id": event.id,
        "ce_source": "urn:crm:cases",
        "ce_type": CASE_OPENED,
        "ce_time": "2026-11-22T10:00:00Z",
        "ce_subject": "c-7f3a9e",
        "ce_dataschema": schema_uri(CASE_OPENED),
        "ce_correlationid": "evt-0001",
        "ce_causationid": "evt-0001",
        "content-type": "application/json",
    }
    assert record.value == event.data.model_dump_json(exclude_none=True).encode()
    assert json.loads(record.value or b"")["sla"] == {
        "first_response_due_at": "2026-11-22T12:00:00Z",
        "resolution_due_at": "2026-11-24T10:00:00Z",
    }


def test_binary_mode_leaves_out_absent_attributes_and_null_fields() -> None:
    event = decode_json(issue_example())

    record = encode_binary(event, key=None)

    assert record.key is None
    assert "ce_subject" not in headers_of(record)
    assert b"null" not in (record.value or b"")


def test_times_with_an_offset_keep_it_in_rfc3339() -> None:
    obj = issue_example()
    obj["time"] = "2026-11-22T11:00:00.250+01:00"

    event = decode_json(obj)
    record = encode_binary(event, key=None)

    assert event.time == datetime(2026, 11, 22, 10, 0, 0, 250000, tzinfo=UTC)
    assert event.time.utcoffset() == timedelta(hours=1)
    assert headers_of(record)["ce_time"] == "2026-11-22T11:00:00.250000+01:00"


def test_structured_mode_sends_the_whole_event_as_cloudevents_json() -> None:
    event = example_event(CASE_OPENED)

    record = encode_structured(event, key="c-7f3a9e")

    assert record.headers == [("content-type", b"application/cloudevents+json")]
    body = json.loads(record.value or b"")
    assert body == to_json_dict(event)
    assert body["type"] == CASE_OPENED and body["time"] == "2026-11-22T10:00:00Z"


def test_binary_mode_headers_are_matched_without_regard_to_case() -> None:
    record = encode_binary(example_event(CASE_OPENED), key=None)
    shouting = [(name.upper(), value) for name, value in record.headers]

    assert decode_record(record.value, shouting) == example_event(CASE_OPENED)


def test_unrelated_headers_and_unknown_extensions_are_ignored() -> None:
    record = encode_binary(example_event(CASE_OPENED), key=None)
    headers = [*record.headers, ("traceparent", b"00-abc-def-01"), ("ce_tenant", b"acme")]

    assert decode_record(record.value, headers) == example_event(CASE_OPENED)


def test_a_json_content_type_with_parameters_is_accepted() -> None:
    record = encode_binary(example_event(CASE_OPENED), key=None)
    headers = [
        (name, b"application/json; charset=utf-8" if name == "content-type" else value)
        for name, value in record.headers
    ]

    assert decode_record(record.value, headers).datacontenttype.startswith("application/json")


# ---- decoding errors --------------------------------------------------------------------------


def test_a_missing_attribute_is_named() -> None:
    obj = issue_example()
    del obj["id"]

    error = decode_error(obj)

    assert error.reason == "missing_attribute"
    assert error.errors == [{"path": "id", "message": "required attribute"}]


def test_a_null_attribute_counts_as_missing() -> None:
    obj = issue_example()
    obj["source"] = None

    error = decode_error(obj)

    assert error.reason == "missing_attribute"
    assert paths(error) == ["source"]


def test_a_missing_time_is_a_missing_attribute() -> None:
    obj = issue_example()
    del obj["time"]

    assert decode_error(obj).reason == "missing_attribute"


def test_an_unknown_type_is_an_error() -> None:
    obj = issue_example()
    obj["type"] = "crm.interaction.teleported"

    error = decode_error(obj)

    assert error.reason == "unknown_type"
    assert paths(error) == ["type"]
    assert "crm.interaction.teleported" in str(error)


def test_a_type_that_is_not_dotted_is_an_invalid_attribute() -> None:
    obj = issue_example()
    obj["type"] = "InteractionRecorded"

    error = decode_error(obj)

    assert error.reason == "invalid_attribute"
    assert paths(error) == ["type"]


def test_another_specversion_is_unsupported() -> None:
    obj = issue_example()
    obj["specversion"] = "0.3"

    error = decode_error(obj)

    assert error.reason == "unsupported_specversion"
    assert paths(error) == ["specversion"]


@pytest.mark.parametrize(
    "bad_time",
    [
        "yesterday",
        "2026-11-22T10:00:00",
        "2026-11-22",
        "1763805600",
        1763805600,
        "2026-13-01T00:00:00Z",
    ],
)
def test_a_bad_time_is_an_invalid_attribute(bad_time: Any) -> None:
    obj = issue_example()
    obj["time"] = bad_time

    error = decode_error(obj)

    assert error.reason == "invalid_attribute"
    assert paths(error) == ["time"]


def test_invalid_data_is_reported_by_path() -> None:
    obj = issue_example()
    obj["data"]["value"]["currency"] = "euro"
    obj["data"]["channel"] = "pigeon"

    error = decode_error(obj)

    assert error.reason == "invalid_data"
    assert paths(error) == ["data.channel", "data.value.currency"]
    assert "data.value.currency" in str(error)


def test_an_unknown_data_field_of_a_raw_interaction_is_refused() -> None:
    obj = issue_example()
    obj["data"]["identity"]["emial"] = "ada@example.com"

    error = decode_error(obj)

    assert error.reason == "invalid_data"
    assert error.errors == [{"path": "data.identity.emial", "message": "unknown field"}]


def test_missing_data_is_invalid_data() -> None:
    obj = issue_example()
    del obj["data"]

    error = decode_error(obj)

    assert error.reason == "invalid_data"
    assert paths(error) == ["data"]


def test_base64_data_is_refused() -> None:
    obj = issue_example()
    obj["data_base64"] = "e30="
    del obj["data"]

    assert decode_error(obj).reason == "invalid_data"


def test_a_non_json_datacontenttype_is_an_invalid_attribute() -> None:
    obj = issue_example()
    obj["datacontenttype"] = "application/avro"

    error = decode_error(obj)

    assert error.reason == "invalid_attribute"
    assert paths(error) == ["datacontenttype"]


def test_every_problem_is_listed_and_the_reason_is_the_most_basic_one() -> None:
    obj = issue_example()
    del obj["id"]
    obj["time"] = "soon"
    obj["data"]["identity"] = {}

    error = decode_error(obj)

    assert error.reason == "missing_attribute"
    assert paths(error) == ["id", "time", "data.identity"]


def test_the_error_text_is_one_readable_line() -> None:
    obj = issue_example()
    obj["data"] = {"channel": "pigeon", "kind": "Purchase!", "identity": {}, "csat": 9}

    text = str(decode_error(obj))

    assert "\n" not in text
    assert text.startswith("invalid_data: data.channel: ")
    assert text.endswith("(and 1 more)")


def test_bad_json_is_malformed() -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_record(b'{"specversion": "1.0", ', [])

    assert caught.value.reason == "malformed"
    assert "not valid JSON" in str(caught.value)


def test_json_that_is_not_an_object_is_malformed() -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_record(b"[1, 2]", [("content-type", b"application/cloudevents+json")])

    assert caught.value.reason == "malformed"


def test_nan_is_not_json() -> None:
    record = encode_binary(example_event(SCORE_CHANGED), key=None)
    value = (record.value or b"").replace(b'"churn_risk":0.25', b'"churn_risk":NaN')

    with pytest.raises(EventDecodeError) as caught:
        decode_record(value, record.headers)

    assert caught.value.reason == "malformed"
    assert paths(caught.value) == ["data"]


def test_bad_json_in_binary_mode_points_at_the_data() -> None:
    record = encode_binary(example_event(CASE_OPENED), key=None)

    with pytest.raises(EventDecodeError) as caught:
        decode_record(b"{oops", record.headers)

    assert caught.value.reason == "malformed"
    assert paths(caught.value) == ["data"]


def test_a_header_that_is_not_utf8_is_malformed() -> None:
    record = encode_binary(example_event(CASE_OPENED), key=None)
    headers = [*record.headers[:-1], ("content-type", b"\xff\xfe")]

    with pytest.raises(EventDecodeError) as caught:
        decode_record(record.value, headers)

    assert caught.value.reason == "malformed"


def test_a_repeated_ce_header_is_malformed() -> None:
    record = encode_binary(example_event(CASE_OPENED), key=None)

    with pytest.raises(EventDecodeError) as caught:
        decode_record(record.value, [*record.headers, ("ce_id", b"evt-other")])

    assert caught.value.reason == "malformed"
    assert paths(caught.value) == ["ce_id"]


def test_a_binary_record_without_a_value_has_no_data() -> None:
    record = encode_binary(example_event(CASE_OPENED), key=None)

    with pytest.raises(EventDecodeError) as caught:
        decode_record(None, record.headers)

    assert caught.value.reason == "invalid_data"
    assert paths(caught.value) == ["data"]


def test_a_tombstone_is_not_an_event() -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_record(None, [])

    assert caught.value.reason == "malformed"


def test_a_binary_record_without_a_type_header_misses_an_attribute() -> None:
    record = encode_binary(example_event(CASE_OPENED), key=None)
    headers = [(name, value) for name, value in record.headers if name != "ce_type"]

    with pytest.raises(EventDecodeError) as caught:
        decode_record(record.value, headers)

    assert caught.value.reason == "missing_attribute"
    assert paths(caught.value) == ["type"]


def test_batched_structured_mode_is_refused() -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_record(b"[]", [("content-type", b"application/cloudevents-batch+json")])

    assert caught.value.reason == "malformed"


def test_decode_errors_are_value_errors() -> None:
    assert issubclass(EventDecodeError, ValueError)


def test_a_decoded_time_is_aware_whatever_the_offset() -> None:
    obj = issue_example()
    obj["time"] = "2026-11-22T05:00:00-05:00"

    event = decode_json(obj)

    assert event.time.tzinfo is not None
    assert event.time.astimezone(UTC) == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
