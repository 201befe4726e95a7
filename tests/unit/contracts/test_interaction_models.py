"""Raw and resolved interactions: kinds, identity, value, feedback, consent, properties."""

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from crm_contracts import EventDecodeError, decode_json
from crm_contracts.interactions import (
    KNOWN_KINDS,
    MAX_PROPERTIES,
    InteractionKind,
    InteractionRecorded,
    InteractionResolved,
)


def interaction(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "channel": "web",
        "kind": "page_view",
        "identity": {"anonymous_id": "ck-1"},
    }
    data.update(changes)
    return data


def event(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "urn:channel:web",
        "type": "crm.interaction.recorded",
        "time": "2026-11-22T10:00:00Z",
        "data": data,
    }


def errors_of(data: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(EventDecodeError) as caught:
        decode_json(event(data))
    assert caught.value.reason == "invalid_data"
    return caught.value.errors


def error_paths(data: dict[str, Any]) -> list[str]:
    return [error["path"] for error in errors_of(data)]


def test_every_known_kind_is_accepted() -> None:
    for kind in KNOWN_KINDS:
        extra: dict[str, Any] = {}
        if kind in ("purchase", "refund"):
            extra["value"] = {"amount": "10.00", "currency": "EUR"}
        if kind == "feedback":
            extra["nps"] = 9
        if kind.startswith("consent_"):
            extra["consent"] = {"purpose": "marketing"}
        assert InteractionRecorded.model_validate(interaction(kind=kind, **extra)).kind == kind


@pytest.mark.parametrize("kind", ["webinar_attended", "loyalty_points_redeemed", "x2"])
def test_a_custom_snake_case_kind_is_accepted_and_passed_on_unchanged(kind: str) -> None:
    decoded = decode_json(event(interaction(kind=kind)))

    assert isinstance(decoded.data, InteractionRecorded)
    assert decoded.data.kind == kind


@pytest.mark.parametrize("kind", ["Purchase", "page-view", "9lives", "", "a" * 65, "page view"])
def test_a_kind_that_is_not_lowercase_snake_case_is_refused(kind: str) -> None:
    assert error_paths(interaction(kind=kind)) == ["data.kind"]


def test_the_known_kinds_are_listed_in_the_schema() -> None:
    schema = InteractionRecorded.model_json_schema()

    assert schema["properties"]["kind"]["examples"] == list(KNOWN_KINDS)
    assert "custom kind" in schema["properties"]["kind"]["description"]


def test_known_kinds_compare_equal_to_their_text() -> None:
    data = InteractionRecorded.model_validate(interaction(kind="signup"))

    assert data.kind == InteractionKind.SIGNUP


def test_an_unknown_channel_is_refused() -> None:
    assert error_paths(interaction(channel="fax")) == ["data.channel"]


def test_the_identity_needs_at_least_one_identifier() -> None:
    errors = errors_of(interaction(identity={}))

    assert [error["path"] for error in errors] == ["data.identity"]
    assert "at least one" in errors[0]["message"]


def test_an_identity_of_empty_external_ids_has_no_identifier() -> None:
    assert error_paths(interaction(identity={"external_ids": {}})) == ["data.identity"]


@pytest.mark.parametrize(
    "identity",
    [
        {"contact_id": "c-1"},
        {"email": "ada@example.com"},
        {"phone": "+44 20 7946 0000"},
        {"external_ids": {"webshop": "c-42"}},
        {"anonymous_id": "ck-1"},
    ],
)
def test_any_one_identifier_is_enough(identity: dict[str, Any]) -> None:
    InteractionRecorded.model_validate(interaction(identity=identity))


def test_an_email_is_not_a_contact_id() -> None:
    assert error_paths(interaction(identity={"contact_id": "ada@example.com"})) == [
        "data.identity.contact_id"
    ]


def test_a_purchase_needs_a_value() -> None:
    assert error_paths(interaction(kind="purchase")) == ["data.value"]


def test_an_amount_is_a_decimal_string_and_stays_one() -> None:
    data = InteractionRecorded.model_validate(
        interaction(kind="purchase", value={"amount": "120.50", "currency": "GBP"})
    )

    assert data.value is not None and data.value.amount == Decimal("120.50")
    assert data.model_dump(mode="json")["value"] == {"amount": "120.50", "currency": "GBP"}


@pytest.mark.parametrize("amount", ["12,50", "-1.00", "1e5", "abc", "1.1234567", True])
def test_a_bad_amount_is_refused(amount: Any) -> None:
    data = interaction(kind="purchase", value={"amount": amount, "currency": "EUR"})

    assert error_paths(data) == ["data.value.amount"]


@pytest.mark.parametrize("currency", ["eur", "EURO", "E1R", ""])
def test_a_currency_is_three_capital_letters(currency: str) -> None:
    data = interaction(kind="purchase", value={"amount": "1.00", "currency": currency})

    assert error_paths(data) == ["data.value.currency"]


def test_feedback_needs_csat_or_nps() -> None:
    errors = errors_of(interaction(kind="feedback"))

    assert errors == [{"path": "data", "message": "kind feedback needs csat or nps"}]
    InteractionRecorded.model_validate(interaction(kind="feedback", csat=4))
    InteractionRecorded.model_validate(interaction(kind="feedback", nps=0))


@pytest.mark.parametrize(("field", "value"), [("csat", 0), ("csat", 6), ("nps", -1), ("nps", 11)])
def test_scores_out_of_range_are_refused(field: str, value: int) -> None:
    assert error_paths(interaction(kind="feedback", **{field: value})) == [f"data.{field}"]


def test_a_consent_kind_needs_its_purpose() -> None:
    assert error_paths(interaction(kind="consent_given")) == ["data.consent"]


def test_consent_granted_must_agree_with_the_kind() -> None:
    data = interaction(kind="consent_withdrawn", consent={"purpose": "marketing", "granted": True})

    assert error_paths(data) == ["data.consent"]


def test_consent_on_another_kind_says_whether_it_was_granted() -> None:
    unclear = interaction(kind="signup", consent={"purpose": "marketing"})
    clear = interaction(kind="signup", consent={"purpose": "marketing", "granted": True})

    assert error_paths(unclear) == ["data.consent"]
    InteractionRecorded.model_validate(clear)


def test_properties_take_scalars() -> None:
    properties = {"order_id": "o-1", "items": 3, "total": 12.5, "gift": False, "coupon": None}

    data = InteractionRecorded.model_validate(interaction(properties=properties))

    assert data.properties == properties


def test_properties_refuse_nested_values() -> None:
    paths = error_paths(interaction(properties={"basket": {"sku": "a"}}))

    assert paths and all(path.startswith("data.properties.basket") for path in paths)


def test_properties_refuse_more_than_fifty_keys() -> None:
    properties = {f"k{i}": i for i in range(MAX_PROPERTIES + 1)}

    assert error_paths(interaction(properties=properties)) == ["data.properties"]


def test_properties_refuse_long_keys() -> None:
    paths = error_paths(interaction(properties={"k" * 65: 1}))

    assert paths and paths[0].startswith("data.properties")


def test_properties_refuse_long_strings() -> None:
    assert error_paths(interaction(properties={"note": "x" * 1025})) == ["data.properties.note"]


def test_properties_refuse_more_than_8_kib_of_json() -> None:
    properties = {f"k{i}": "x" * 1000 for i in range(9)}

    errors = errors_of(interaction(properties=properties))

    assert [error["path"] for error in errors] == ["data.properties"]
    assert "8192" in errors[0]["message"]


def test_traits_take_known_names_and_bounded_custom_ones() -> None:
    traits = {"first_name": "Ada", "custom": {"shoe_size": 38}}

    InteractionRecorded.model_validate(interaction(traits=traits))
    assert error_paths(interaction(traits={"nickname": "Ada"})) == ["data.traits.nickname"]
    too_many = {"custom": {f"t{i}": i for i in range(21)}}
    assert error_paths(interaction(traits=too_many)) == ["data.traits.custom"]


def test_unknown_top_level_fields_of_a_raw_interaction_are_refused() -> None:
    assert error_paths(interaction(contact="c-1")) == ["data.contact"]


def resolved(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "interaction_id": "evt-1",
        "interaction_source": "urn:channel:web",
        "contact_id": "c-1",
        "channel": "web",
        "kind": "signup",
        "stage": "prospect",
        "previous_stage": "suspect",
        "stage_changed": True,
    }
    data.update(changes)
    return data


def test_a_resolved_interaction_carries_no_personal_identifiers() -> None:
    fields = set(InteractionResolved.model_fields)

    assert {"identity", "traits", "email", "phone"}.isdisjoint(fields)
    assert {"contact_id", "stage", "previous_stage", "stage_changed"} <= fields


def test_a_resolved_interaction_says_truthfully_whether_the_stage_changed() -> None:
    InteractionResolved.model_validate(resolved())
    InteractionResolved.model_validate(resolved(previous_stage=None))
    InteractionResolved.model_validate(resolved(previous_stage="prospect", stage_changed=False))
    with pytest.raises(ValidationError):
        InteractionResolved.model_validate(resolved(stage_changed=False))


def test_a_resolved_interaction_ignores_fields_added_by_a_newer_producer() -> None:
    data = InteractionResolved.model_validate(resolved(sentiment="positive"))

    assert "sentiment" not in data.model_dump()


def test_an_agents_reply_names_the_agent_on_the_raw_and_the_resolved_interaction() -> None:
    reply = decode_json(event(interaction(kind="chat", channel="chat", agent_id="agent-17")))

    assert reply.data_as(InteractionRecorded).agent_id == "agent-17"
    assert InteractionResolved.model_validate(resolved(agent_id="agent-17")).agent_id == "agent-17"
    assert InteractionRecorded.model_validate(interaction()).agent_id is None
    assert error_paths(interaction(agent_id="agent 17")) == ["data.agent_id"]


def test_a_click_on_a_campaign_email_names_its_step_raw_and_resolved() -> None:
    click = interaction(
        kind="email_clicked", channel="email", campaign_id="cmp-spring-26", campaign_step_id="s2"
    )

    raw = decode_json(event(click)).data_as(InteractionRecorded)
    resolved_click = InteractionResolved.model_validate(
        resolved(campaign_id="cmp-spring-26", campaign_step_id="s2")
    )

    assert (raw.campaign_id, raw.campaign_step_id) == ("cmp-spring-26", "s2")
    assert (resolved_click.campaign_id, resolved_click.campaign_step_id) == ("cmp-spring-26", "s2")
    assert InteractionRecorded.model_validate(interaction()).campaign_step_id is None


def test_a_campaign_step_needs_its_campaign() -> None:
    errors = errors_of(interaction(kind="email_clicked", campaign_step_id="s2"))

    assert errors == [{"path": "data", "message": "campaign_step_id needs campaign_id"}]
