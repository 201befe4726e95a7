"""Rules every event data model keeps, and the checks of contacts, cases, campaigns and scores."""

import typing
from datetime import datetime
from decimal import Decimal
from types import NoneType, UnionType
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from crm_contracts import EVENT_TYPES, data_model_for, schema_uri
from crm_contracts.base import EventModel, Money
from crm_contracts.cases import CaseStatusChanged
from crm_contracts.contacts import ContactIdentityLinked, ContactMerged, IdentityType
from crm_contracts.examples import example_data
from crm_contracts.interactions import InteractionRecorded
from crm_contracts.registry import UnknownEventType
from crm_contracts.scores import SCORE_CHANGED, ScoreChanged, ScoreDeltas, Scores


def models_in(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The model and every model nested in its fields."""
    found: list[type[BaseModel]] = []
    pending: list[Any] = [model]
    while pending:
        item = pending.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in found:
                continue
            found.append(item)
            pending += [field.annotation for field in item.model_fields.values()]
        else:
            pending += list(typing.get_args(item))
    return found


ALL_MODELS = sorted(
    {nested for model in EVENT_TYPES.values() for nested in models_in(model)},
    key=lambda model: model.__name__,
)


def is_nullable(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return (origin is typing.Union or origin is UnionType) and NoneType in typing.get_args(
        annotation
    )


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_event_types_are_dotted_past_tense_names_of_the_crm(event_type: str) -> None:
    prefix, noun, verb = event_type.split(".")

    assert prefix == "crm" and noun and verb
    assert schema_uri(event_type).endswith(f"/schemas/{event_type}.json")


EVENT_MODELS = sorted(set(EVENT_TYPES.values()), key=lambda model: model.__name__)


@pytest.mark.parametrize("model", EVENT_MODELS, ids=[model.__name__ for model in EVENT_MODELS])
def test_every_event_model_has_a_one_line_docstring(model: type[BaseModel]) -> None:
    doc = (model.__doc__ or "").strip()

    assert doc and "\n" not in doc
    assert model.model_json_schema()["description"] == doc


@pytest.mark.parametrize("model", ALL_MODELS, ids=[model.__name__ for model in ALL_MODELS])
def test_a_nullable_field_defaults_to_null_so_leaving_nulls_out_loses_nothing(
    model: type[BaseModel],
) -> None:
    for name, field in model.model_fields.items():
        if is_nullable(field.annotation):
            assert field.default is None, f"{model.__name__}.{name}"


@pytest.mark.parametrize("model", ALL_MODELS, ids=[model.__name__ for model in ALL_MODELS])
def test_models_are_immutable_and_say_how_they_treat_unknown_fields(
    model: type[BaseModel],
) -> None:
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") in ("forbid", "ignore")


def test_input_from_channels_refuses_unknown_fields_and_published_data_ignores_them() -> None:
    raw_models = models_in(InteractionRecorded)
    published = [
        model
        for event_type, top in EVENT_TYPES.items()
        if top is not InteractionRecorded
        for model in models_in(top)
    ]

    assert all(model.model_config["extra"] == "forbid" for model in raw_models)
    assert all(model.model_config["extra"] == "ignore" for model in published)
    assert all(issubclass(model, EventModel) for model in published)


def test_an_unknown_event_type_has_no_model() -> None:
    with pytest.raises(UnknownEventType):
        data_model_for("crm.case.teleported")
    with pytest.raises(KeyError):
        schema_uri("crm.case.teleported")


def test_a_merge_keeps_the_survivor_out_of_the_merged_ids() -> None:
    with pytest.raises(ValidationError):
        ContactMerged(survivor_id="c-1", merged_ids=["c-1"])
    with pytest.raises(ValidationError):
        ContactMerged(survivor_id="c-1", merged_ids=["c-2", "c-2"])
    with pytest.raises(ValidationError):
        ContactMerged(survivor_id="c-1", merged_ids=[])


def test_an_identity_link_never_carries_an_email_or_a_phone_number() -> None:
    with pytest.raises(ValidationError):
        ContactIdentityLinked(
            contact_id="c-1", identity_type=IdentityType.EMAIL, identifier="ada@example.com"
        )
    ContactIdentityLinked(contact_id="c-1", identity_type=IdentityType.EMAIL)


def test_a_status_change_changes_the_status() -> None:
    with pytest.raises(ValidationError):
        CaseStatusChanged.model_validate(
            {"case_id": "k-1", "contact_id": "c-1", "from_status": "open", "to_status": "open"}
        )


def scores(**changes: Any) -> Scores:
    values: dict[str, Any] = {
        "engagement": 40,
        "recency": 3,
        "frequency": 2,
        "monetary": 2,
        "value_tier": "silver",
        "clv": Money(amount=Decimal("100.00"), currency="EUR"),
        "churn_risk": 0.3,
        "churn_band": "medium",
    }
    values.update(changes)
    return Scores.model_validate(values)


def test_a_score_change_derives_deltas_and_flags_from_old_and_new() -> None:
    old = scores()
    new = scores(
        engagement=58,
        value_tier="gold",
        churn_risk=0.2,
        clv=Money(amount=Decimal("130.5"), currency="EUR"),
    )

    change = ScoreChanged.from_scores(
        contact_id="c-1", model_version="2026.1", old=old, new=new, reasons=[], cause_event_id="e"
    )

    assert change.deltas == ScoreDeltas(
        engagement=18, recency=0, frequency=0, monetary=0, clv=Decimal("30.5"), churn_risk=-0.1
    )
    assert change.tier_changed and not change.band_changed


def test_first_scores_have_no_deltas_and_count_as_a_tier_and_band_change() -> None:
    change = ScoreChanged.from_scores(
        contact_id="c-1", model_version="1", old=None, new=scores(), reasons=[], cause_event_id="e"
    )

    assert change.deltas is None
    assert change.tier_changed and change.band_changed


def test_a_score_change_with_wrong_deltas_or_flags_is_refused() -> None:
    good = example_data(SCORE_CHANGED).model_dump()

    for broken in (
        {"deltas": {**good["deltas"], "engagement": 99}},
        {"tier_changed": False},
        {"deltas": None},
        {"new": {**good["new"], "clv": {"amount": "1.00", "currency": "USD"}}},
    ):
        with pytest.raises(ValidationError):
            ScoreChanged.model_validate({**good, **broken})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("engagement", 101),
        ("recency", 0),
        ("frequency", 6),
        ("churn_risk", 1.5),
        ("churn_risk", float("nan")),
    ],
)
def test_scores_stay_in_their_ranges(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        scores(**{field: value})


def test_data_times_must_carry_a_zone() -> None:
    with pytest.raises(ValidationError):
        data_model_for("crm.case.sla_breached").model_validate(
            {
                "case_id": "k-1",
                "contact_id": "c-1",
                "sla_kind": "resolution",
                "due_at": datetime(2026, 1, 1, 9, 0),
                "queue": "billing",
                "priority": "high",
            }
        )


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [
        ("crm.case.sla_breached", "cycle", 0),
        ("crm.case.csat_recorded", "replaced_csat", 0),
        ("crm.case.csat_recorded", "replaced_csat", 6),
        ("crm.case.opened", "description", "x" * 5001),
        ("crm.case.reopened", "from_status", "escalated"),
    ],
)
def test_the_case_fields_added_for_the_cases_service_keep_their_bounds(
    event_type: str, field: str, value: Any
) -> None:
    good = example_data(event_type).model_dump()
    model = data_model_for(event_type)

    assert model.model_validate({**good, field: None}).model_dump()[field] is None
    with pytest.raises(ValidationError):
        model.model_validate({**good, field: value})


def test_a_case_event_without_the_fields_added_later_still_reads() -> None:
    opened = data_model_for("crm.case.opened").model_validate(
        {"case_id": "k-1", "contact_id": "c-1", "title": "Broken", "queue": "billing"}
    )
    breached = data_model_for("crm.case.sla_breached").model_validate(
        {
            "case_id": "k-1",
            "contact_id": "c-1",
            "sla_kind": "next_response",
            "due_at": "2026-01-01T09:00:00Z",
            "queue": "billing",
            "priority": "high",
        }
    )

    assert opened.model_dump(exclude_none=True) == {
        "case_id": "k-1",
        "contact_id": "c-1",
        "title": "Broken",
        "queue": "billing",
        "priority": "normal",
        "status": "new",
        "sla": {},
    }
    assert breached.model_dump()["cycle"] is None


def test_an_enrolment_published_before_experiments_is_in_the_treated_arm() -> None:
    enrolled = data_model_for("crm.campaign.contact_enrolled").model_validate(
        {"campaign_id": "cmp-1", "contact_id": "c-1", "enrolment_id": "enr-1"}
    )

    assert enrolled.model_dump()["arm"] == "treated"


def test_a_conversion_published_before_credits_reads_with_none() -> None:
    good = example_data("crm.campaign.converted").model_dump()
    del good["attribution_model"], good["credits"]

    converted = data_model_for("crm.campaign.converted").model_validate(good)

    assert (converted.model_dump()["attribution_model"], converted.model_dump()["credits"]) == (
        None,
        [],
    )


@pytest.mark.parametrize(
    "credits",
    [
        [{"step_id": "s1", "share": 0.7}, {"step_id": "s2", "share": 0.4}],
        [{"step_id": "s1", "share": 1.5}],
        [{"step_id": "s1", "share": -0.1}],
        [{"step_id": "s1", "share": 1, "revenue": {"amount": "120.00", "currency": "USD"}}],
        [{"step_id": "s1", "share": 0.5}] * 51,
    ],
)
def test_credits_share_at_most_the_whole_conversion_in_its_currency(
    credits: list[dict[str, Any]],
) -> None:
    good = example_data("crm.campaign.converted").model_dump()

    with pytest.raises(ValidationError):
        data_model_for("crm.campaign.converted").model_validate({**good, "credits": credits})


def test_credited_revenue_needs_the_conversions_value() -> None:
    good = example_data("crm.campaign.converted").model_dump()

    with pytest.raises(ValidationError):
        data_model_for("crm.campaign.converted").model_validate({**good, "value": None})
