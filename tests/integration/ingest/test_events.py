"""POST /v1/events: what channels send, what they are told, and what reaches the raw topic."""

from __future__ import annotations

import copy
import json
from typing import Any

from crm_contracts import decode_json, decode_record, to_json_dict
from crm_contracts.interactions import InteractionRecorded
from crm_ingest.domain import partition_key
from crm_ingest.settings import MIB
from tests.integration.ingest.conftest import Ingest, published
from tests.support.events import RAW_INTERACTION, interaction
from tests.support.kafka import header
from tests.support.servers import Servers

PROBLEM = "application/problem+json"


def _event(**data: Any) -> dict[str, Any]:
    return to_json_dict(interaction(**data))


async def test_a_single_event_is_on_the_raw_topic_in_binary_mode_once_the_answer_is_202(
    ingest: Ingest, api_key: str, servers: Servers
) -> None:
    event = _event()
    response = await ingest.post_events(event, api_key)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "accepted": 1,
        "rejected": 0,
        "results": [{"index": 0, "id": event["id"], "status": "accepted"}],
    }
    [record] = await published(servers.bootstrap, ingest.topic)
    assert header(record, "ce_id") == event["id"]
    assert header(record, "ce_source") == event["source"]
    assert header(record, "ce_type") == "crm.interaction.recorded"
    assert header(record, "ce_specversion") == "1.0"
    assert header(record, "content-type") == "application/json"
    assert decode_record(record.value, list(record.headers)) == decode_json(event)
    identity = decode_json(event).data_as(InteractionRecorded).identity
    assert record.key == partition_key(identity).encode()
    assert b"ada@example.com" not in record.key


async def test_the_example_interaction_of_the_issue_is_accepted_as_is(
    ingest: Ingest, api_key: str, servers: Servers
) -> None:
    response = await ingest.post_events(RAW_INTERACTION, api_key)
    assert response.status_code == 202, response.text
    [record] = await published(servers.bootstrap, ingest.topic)
    assert decode_record(record.value, list(record.headers)) == decode_json(RAW_INTERACTION)


async def test_a_batch_with_one_invalid_event_publishes_the_valid_ones_and_names_the_bad_field(
    ingest: Ingest, api_key: str, servers: Servers
) -> None:
    good, bad, also_good = _event(), _event(), _event(kind="page_view", value=None)
    bad["data"]["identity"]["email"] = "not an email"
    response = await ingest.post_events([good, bad, also_good], api_key)
    assert response.status_code == 207, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert [(r["index"], r["id"], r["status"]) for r in body["results"]] == [
        (0, good["id"], "accepted"),
        (1, bad["id"], "rejected"),
        (2, also_good["id"], "accepted"),
    ]
    rejected = body["results"][1]
    assert rejected["reason"] == "invalid_data"
    assert [e["path"] for e in rejected["errors"]] == ["data.identity.email"]
    assert "not an email" not in response.text  # the answer names fields, never values
    records = await published(servers.bootstrap, ingest.topic)
    assert [header(r, "ce_id") for r in records] == [good["id"], also_good["id"]]


async def test_a_batch_with_no_valid_event_is_a_422_problem_with_the_same_results(
    ingest: Ingest, api_key: str, servers: Servers
) -> None:
    no_time = _event()
    del no_time["time"]
    response = await ingest.post_events([no_time, {"specversion": "1.0"}], api_key)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"].endswith("/events-rejected")
    assert (body["accepted"], body["rejected"]) == (0, 2)
    assert body["results"][0]["reason"] == "missing_attribute"
    assert {"path": "time", "message": "required attribute"} in body["results"][0]["errors"]
    assert body["results"][1]["id"] is None
    assert await published(servers.bootstrap, ingest.topic) == []


async def test_a_campaign_step_without_its_campaign_is_a_422_and_with_it_is_accepted(
    ingest: Ingest, api_key: str, servers: Servers
) -> None:
    click = _event(
        kind="email_clicked",
        channel="email",
        value=None,
        campaign_id="cmp-spring-26",
        campaign_step_id="s2",
    )
    stray = copy.deepcopy(click)
    stray["id"] += "-stray"
    del stray["data"]["campaign_id"]

    refused = await ingest.post_events(stray, api_key)
    accepted = await ingest.post_events(click, api_key)

    assert refused.status_code == 422
    [result] = refused.json()["results"]
    assert result["errors"] == [{"path": "data", "message": "campaign_step_id needs campaign_id"}]
    assert accepted.status_code == 202, accepted.text
    [record] = await published(servers.bootstrap, ingest.topic)
    data = decode_record(record.value, list(record.headers)).data_as(InteractionRecorded)
    assert (data.campaign_id, data.campaign_step_id) == ("cmp-spring-26", "s2")


async def test_a_body_over_one_mebibyte_is_a_413_problem(
    ingest: Ingest, api_key: str, servers: Servers
) -> None:
    body = b"[" + b" " * MIB + b"]"
    response = await ingest.http.post(
        "/v1/events",
        content=body,
        headers={"X-API-Key": api_key, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["status"] == 413


async def test_a_batch_of_1001_events_is_refused_whole(
    ingest: Ingest, api_key: str, servers: Servers
) -> None:
    template = _event()
    batch = []
    for n in range(1001):
        event = copy.deepcopy(template)
        event["id"] = f"evt-{n}"
        batch.append(event)
    assert len(json.dumps(batch)) < MIB  # refused for its count, not its size
    response = await ingest.post_events(batch, api_key)
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"].endswith("/too-many-events")
    assert "1001" in problem["detail"] and "1000" in problem["detail"]
    assert await published(servers.bootstrap, ingest.topic) == []


async def test_a_batch_of_exactly_1000_events_is_accepted(
    ingest: Ingest, api_key: str, servers: Servers
) -> None:
    batch = [_event() for _ in range(1000)]
    response = await ingest.post_events(batch, api_key)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1000
    records = await published(servers.bootstrap, ingest.topic)
    assert [header(r, "ce_id") for r in records] == [e["id"] for e in batch]


async def test_malformed_json_is_a_400_problem(ingest: Ingest, api_key: str) -> None:
    response = await ingest.http.post(
        "/v1/events",
        content=b'{"specversion": "1.0", ',
        headers={"X-API-Key": api_key, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("/malformed-json")


async def test_json_that_is_neither_an_object_nor_an_array_is_a_400_problem(
    ingest: Ingest, api_key: str
) -> None:
    for body in (b'"an event"', b"42", b"null"):
        response = await ingest.http.post(
            "/v1/events",
            content=body,
            headers={"X-API-Key": api_key, "content-type": "application/json"},
        )
        assert response.status_code == 400, body
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"].endswith("/wrong-shape")


async def test_an_empty_batch_is_a_400_problem(ingest: Ingest, api_key: str) -> None:
    response = await ingest.post_events([], api_key)
    assert response.status_code == 400
    assert response.json()["type"].endswith("/empty-batch")


async def test_a_form_post_is_a_415_problem(ingest: Ingest, api_key: str) -> None:
    response = await ingest.http.post(
        "/v1/events",
        content=json.dumps(_event()),
        headers={"X-API-Key": api_key, "content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM


async def test_structured_cloudevents_media_types_are_accepted(
    ingest: Ingest, api_key: str
) -> None:
    for media_type, body in (
        ("application/cloudevents+json", _event()),
        ("application/cloudevents-batch+json", [_event(), _event()]),
    ):
        response = await ingest.http.post(
            "/v1/events",
            content=json.dumps(body),
            headers={"X-API-Key": api_key, "content-type": media_type},
        )
        assert response.status_code == 202, (media_type, response.text)


async def test_an_event_of_another_source_than_the_keys_is_rejected_alone(
    ingest: Ingest, api_key: str, servers: Servers
) -> None:
    own, foreign = _event(), _event()
    foreign["source"] = "urn:channel:pos"
    response = await ingest.post_events([own, foreign], api_key)
    assert response.status_code == 207, response.text
    result = response.json()["results"][1]
    assert (result["status"], result["reason"]) == ("rejected", "source_not_allowed")
    assert [e["path"] for e in result["errors"]] == ["source"]
    alone = await ingest.post_events(foreign, api_key)
    assert alone.status_code == 422
    assert alone.json()["results"][0]["reason"] == "source_not_allowed"
    records = await published(servers.bootstrap, ingest.topic)
    assert [header(r, "ce_id") for r in records] == [own["id"]]


async def test_events_of_other_types_are_not_accepted_from_channels(
    ingest: Ingest, api_key: str
) -> None:
    event = _event()
    event["type"] = "crm.interaction.resolved"
    response = await ingest.post_events(event, api_key)
    assert response.status_code == 422
    assert response.json()["results"][0]["reason"] == "type_not_accepted"


async def test_text_postgres_cannot_store_is_a_422_naming_the_field_and_nothing_is_published(
    ingest: Ingest, api_key: str, servers: Servers
) -> None:
    in_properties, in_identity, in_traits = _event(), _event(), _event()
    in_properties["data"]["properties"] = {"order_id": "o-1", "note": "gift\x00wrap"}
    in_identity["data"]["identity"] = {"anonymous_id": "ck-\x00"}
    in_traits["data"]["traits"] = {"first_name": "Ada", "custom": {"tier": "gold\x00"}}

    response = await ingest.post_events([in_properties, in_identity, in_traits], api_key)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    results = response.json()["results"]
    assert [(r["status"], r["reason"]) for r in results] == [("rejected", "invalid_data")] * 3
    assert [[e["path"] for e in r["errors"]] for r in results] == [
        ["data.properties.note"],
        ["data.identity.anonymous_id"],
        ["data.traits.custom.tier"],
    ]
    assert all("U+0000" in r["errors"][0]["message"] for r in results)
    assert "gift" not in response.text and "ck-" not in response.text  # never the values
    assert await published(servers.bootstrap, ingest.topic) == []


async def test_a_lone_surrogate_or_a_nul_escape_in_the_json_is_refused_beside_a_good_event(
    ingest: Ingest, api_key: str, servers: Servers
) -> None:
    good = _event()
    body = json.dumps(
        [good, _event(identity={"email": "grace@example.com"}), _event(properties={"n": 1})]
    )
    # JSON spells them as escapes: `\ud800` alone is not Unicode text, `\u0000` is NUL.
    body = body.replace('"grace@example.com"', '"grace\\ud800@example.com"')
    body = body.replace('"n": 1', '"n": "\\u0000"')

    response = await ingest.http.post(
        "/v1/events",
        content=body.encode(),
        headers={"X-API-Key": api_key, "content-type": "application/json"},
    )

    assert response.status_code == 207, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected"]
    assert [[e["path"] for e in r["errors"]] for r in results[1:]] == [
        ["data.identity.email"],
        ["data.properties.n"],
    ]
    records = await published(servers.bootstrap, ingest.topic)
    assert [header(r, "ce_id") for r in records] == [good["id"]]
