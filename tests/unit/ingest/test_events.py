"""Which bodies and events ingest accepts, and what it says about the others."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from crm_ingest.domain import (
    AcceptedEvent,
    BodyError,
    FieldIssue,
    RejectedEvent,
    check_event,
    check_events,
    parse_events,
)
from tests.support.events import RAW_INTERACTION

SOURCE = RAW_INTERACTION["source"]


def _event(**changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(RAW_INTERACTION)
    event.update(changes)
    return event


def test_one_object_is_one_event() -> None:
    body = json.dumps(RAW_INTERACTION).encode()
    assert parse_events(body, max_events=10) == [RAW_INTERACTION]


def test_an_array_is_a_batch_of_at_most_max_events() -> None:
    body = json.dumps([RAW_INTERACTION] * 3).encode()
    assert parse_events(body, max_events=3) == [RAW_INTERACTION] * 3


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "malformed_json"),
        (b"", "malformed_json"),
        (b'{"a": NaN}', "malformed_json"),
        (b"\xff\xfe\x00", "malformed_json"),
        (b'"an event"', "wrong_shape"),
        (b"42", "wrong_shape"),
        (b"null", "wrong_shape"),
        (b"[]", "empty_batch"),
        (b"[{}, {}, {}]", "too_many_events"),
    ],
)
def test_bodies_that_are_not_an_event_or_a_batch_are_refused(body: bytes, problem: str) -> None:
    with pytest.raises(BodyError) as caught:
        parse_events(body, max_events=2)
    assert caught.value.problem == problem


def test_the_sample_interaction_is_accepted_with_a_hashed_key() -> None:
    check = check_event(RAW_INTERACTION, index=0, allowed_source=SOURCE)
    assert isinstance(check, AcceptedEvent)
    assert check.id == RAW_INTERACTION["id"]
    assert "ada@example.com" not in check.key


def test_an_invalid_email_is_rejected_with_its_field_path() -> None:
    event = _event()
    event["data"]["identity"]["email"] = "not an email"
    check = check_event(event, index=3, allowed_source=SOURCE)
    assert isinstance(check, RejectedEvent)
    assert (check.index, check.id, check.reason) == (3, RAW_INTERACTION["id"], "invalid_data")
    assert [issue.path for issue in check.errors] == ["data.identity.email"]


def test_a_missing_attribute_is_named() -> None:
    event = _event()
    del event["time"]
    check = check_event(event, index=0, allowed_source=SOURCE)
    assert isinstance(check, RejectedEvent)
    assert check.reason == "missing_attribute"
    assert FieldIssue("time", "required attribute") in check.errors


def test_an_event_from_another_source_than_the_keys_is_rejected() -> None:
    check = check_event(_event(source="urn:channel:pos"), index=0, allowed_source=SOURCE)
    assert isinstance(check, RejectedEvent)
    assert check.reason == "source_not_allowed"
    assert [issue.path for issue in check.errors] == ["source"]


def test_events_of_the_services_are_not_accepted_from_channels() -> None:
    event = _event(type="crm.contact.created", data={"anything": True})
    check = check_event(event, index=0, allowed_source=SOURCE)
    assert isinstance(check, RejectedEvent)
    assert check.reason == "type_not_accepted"


def test_an_unknown_type_is_rejected_as_unknown() -> None:
    check = check_event(_event(type="crm.thing.happened"), index=0, allowed_source=SOURCE)
    assert isinstance(check, RejectedEvent) and check.reason == "unknown_type"


def test_a_rejected_event_without_a_text_id_has_no_id() -> None:
    check = check_event(_event(id=7), index=0, allowed_source=SOURCE)
    assert isinstance(check, RejectedEvent) and check.id is None


def test_something_that_is_not_an_object_in_a_batch_is_rejected_as_malformed() -> None:
    checks = check_events([RAW_INTERACTION, "oops"], allowed_source=SOURCE)
    assert isinstance(checks[0], AcceptedEvent)
    assert isinstance(checks[1], RejectedEvent)
    assert (checks[1].index, checks[1].reason) == (1, "malformed")
