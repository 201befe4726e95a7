"""The shortcuts validation takes give the answers of the longer way they replace.

Each shortcut is held to the computation it stands for, kept here as the reference: the same
values accepted, the same refused, with the same message.
"""

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from crm_contracts import (
    EventDecodeError,
    decode_json,
    decode_record,
    encode_binary,
    encode_structured,
    envelope,
    to_json_dict,
)
from crm_contracts.examples import example_data, example_event
from crm_contracts.interactions import (
    INTERACTION_RESOLVED,
    MAX_PROPERTIES_JSON_BYTES,
    _check_json_size,
)
from crm_contracts.scores import (
    CHURN_RISK_TOLERANCE,
    SCORE_CHANGED,
    ScoreChanged,
    ScoreDeltas,
    Scores,
)
from crm_contracts.storable import INT64_MAX, INT64_MIN, StorableModel, first_problem


def json_size_verdict(properties: dict[str, Any]) -> str | None:
    """The reference: the size of the compact JSON, measured every time."""
    size = len(json.dumps(properties, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_PROPERTIES_JSON_BYTES:
        return f"properties take {size} bytes as JSON, more than {MAX_PROPERTIES_JSON_BYTES}"
    return None


def shortcut_verdict(properties: dict[str, Any]) -> str | None:
    try:
        assert _check_json_size(properties) is properties
    except ValueError as exc:
        return str(exc)
    return None


texts = st.text(st.characters(codec="utf-8"), max_size=200) | st.text(
    st.sampled_from('"\\\x01\x1f\u00e9\u20ac\U0001f600a'), max_size=1500
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(texts, scalars, max_size=50))
def test_the_properties_size_check_agrees_with_measuring_the_json(
    properties: dict[str, Any],
) -> None:
    assert shortcut_verdict(properties) == json_size_verdict(properties)


@pytest.mark.parametrize(
    "properties",
    [
        {"note": "x" * 8183},  # exactly the limit: {"note":"..."} is 8192 bytes
        {"note": "x" * 8184},
        {"note": "\x01" * 1364},  # 6 bytes a character as JSON
        {"note": "\u20ac" * 2729},  # 3 bytes a character as UTF-8
        {f"k{i:02}": "\U0001f600" * 200 for i in range(11)},
        {"n": 2**70},
        {"d": Decimal("1.5")},
    ],
)
def test_properties_near_or_over_the_limit_get_the_measured_answer(
    properties: dict[str, Any],
) -> None:
    try:
        expected = json_size_verdict(properties)
    except TypeError:  # not JSON at all: the check must not accept it either
        with pytest.raises(TypeError):
            _check_json_size(properties)
        return
    assert shortcut_verdict(properties) == expected


def consistency_verdict(old: Scores, new: Scores, deltas: ScoreDeltas) -> str | None:
    """The reference: compare deltas with the model `ScoreDeltas.between` validates."""
    expected = ScoreDeltas.between(old, new)
    if deltas.model_dump(exclude={"churn_risk"}) != expected.model_dump(exclude={"churn_risk"}):
        return "deltas must equal new minus old"
    if abs(deltas.churn_risk - expected.churn_risk) > CHURN_RISK_TOLERANCE:
        return "deltas.churn_risk must equal new minus old"
    return None


def scores_of(draw: st.DrawFn) -> Scores:
    return Scores(
        engagement=draw(st.integers(0, 100)),
        recency=draw(st.integers(1, 5)),
        frequency=draw(st.integers(1, 5)),
        monetary=draw(st.integers(1, 5)),
        value_tier="gold",
        clv={"amount": draw(amounts), "currency": "EUR"},
        churn_risk=draw(st.floats(0, 1)),
        churn_band="medium",
    )


amounts = st.decimals(min_value=0, max_value=Decimal("999999999999999999.999999"), places=6).map(
    lambda amount: f"{amount:f}"
) | st.sampled_from(["0", "120.00", "130.5", "999999999999999999.999999"])


@st.composite
def score_changes(draw: st.DrawFn) -> tuple[Scores, Scores, ScoreDeltas]:
    old, new = scores_of(draw), scores_of(draw)
    exact = ScoreDeltas.between(old, new)
    nudged = draw(st.sampled_from(["", "engagement", "monetary", "clv", "churn_risk"]))
    changes: dict[str, Any] = {}
    if nudged == "clv":
        step = draw(st.sampled_from([Decimal("0.000001"), Decimal(1)]))
        changes["clv"] = exact.clv - step if exact.clv > 0 else exact.clv + step  # in range
    elif nudged == "churn_risk":
        changes["churn_risk"] = exact.churn_risk + draw(st.sampled_from([1e-9, 1e-3, -0.5]))
    elif nudged:
        changes[nudged] = getattr(exact, nudged) + 1
    deltas = ScoreDeltas.model_validate({**exact.model_dump(), **changes})
    return old, new, deltas


@settings(max_examples=300, deadline=None)
@given(score_changes())
def test_a_score_change_is_judged_consistent_as_by_rebuilding_its_deltas(
    change: tuple[Scores, Scores, ScoreDeltas],
) -> None:
    old, new, deltas = change
    body = {
        **example_data(SCORE_CHANGED).model_dump(),
        "old": old.model_dump(),
        "new": new.model_dump(),
        "deltas": deltas.model_dump(),
        "tier_changed": False,
        "band_changed": False,
    }
    expected = consistency_verdict(old, new, deltas)

    if expected is None:
        assert ScoreChanged.model_validate(body).deltas == deltas
    else:
        with pytest.raises(ValidationError) as caught:
            ScoreChanged.model_validate(body)
        assert [error["msg"] for error in caught.value.errors()] == [f"Value error, {expected}"]


class _Fields(StorableModel):
    number: int | None = None
    moment: datetime | None = None


def storable_verdict(**fields: Any) -> list[tuple[tuple[str | int, ...], str]]:
    try:
        _Fields(**fields)
    except ValidationError as exc:
        return [(error["loc"], error["msg"]) for error in exc.errors()]
    return []


def reference_verdict(**fields: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """The reference: `first_problem` asked about every field."""
    found = [(name, first_problem(value)) for name, value in fields.items()]
    return [((name, *problem[0]), problem[1]) for name, problem in found if problem is not None]


zones = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])
edges = st.sampled_from([datetime(1900, 1, 1), datetime(9999, 1, 1), datetime(9998, 12, 31, 23)])


@settings(max_examples=300, deadline=None)
@given(
    st.integers() | st.sampled_from([INT64_MIN, INT64_MAX, INT64_MIN - 1, INT64_MAX + 1]),
    st.datetimes(timezones=zones) | st.builds(lambda d, z: d.replace(tzinfo=z), edges, zones),
)
def test_integers_and_instants_are_judged_storable_as_first_problem_judges_them(
    number: int, moment: datetime
) -> None:
    assert storable_verdict(number=number, moment=moment) == reference_verdict(
        number=number, moment=moment
    )


def reference_decode_record(value: bytes | None, headers: list[tuple[str, bytes | None]]) -> Any:
    """The reference: `decode_record` as it read its headers before (two passes)."""
    found: dict[str, str] = {}
    for name, raw in headers:
        lowered = name.lower()
        if raw is None or not (lowered == "content-type" or lowered.startswith("ce_")):
            continue
        if lowered in found:
            raise EventDecodeError(
                "malformed", [{"path": name, "message": "header appears more than once"}]
            )
        try:
            found[lowered] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EventDecodeError(
                "malformed", [{"path": name, "message": "header is not UTF-8"}]
            ) from None
    content_type = found.get("content-type", "")
    if content_type.lower().startswith("application/cloudevents"):
        if content_type.lower().startswith("application/cloudevents-batch"):
            raise EventDecodeError(
                "malformed", [{"path": "", "message": "batched mode is not supported"}]
            )
        return decode_json(envelope._parse_json(value, path=""))
    if "ce_specversion" in found:
        attributes = {
            name.removeprefix("ce_"): text
            for name, text in found.items()
            if name.startswith("ce_") and name != "ce_data"
        }
        if "content-type" in found:
            attributes["datacontenttype"] = content_type
        data = None if value is None else envelope._parse_json(value, path="data")
        return envelope._validate(attributes, data)
    if value is None:
        raise EventDecodeError(
            "malformed",
            [{"path": "", "message": "the record has no value and no CloudEvents headers"}],
        )
    return decode_json(envelope._parse_json(value, path=""))


def outcome(decode: Any, value: bytes | None, headers: list[tuple[str, bytes | None]]) -> Any:
    try:
        return to_json_dict(decode(value, headers))
    except EventDecodeError as exc:
        return exc.reason, exc.errors


_BINARY = encode_binary(example_event(INTERACTION_RESOLVED), key=None)
_STRUCTURED = encode_structured(example_event(INTERACTION_RESOLVED), key=None)
header_names = st.sampled_from(
    [name for name, _ in _BINARY.headers]
    + ["CE_Type", "Content-Type", "ce_", "ce_data", "ce_extra", "x-other", "ce_specversion"]
)
header_values = st.sampled_from(
    [raw for _, raw in _BINARY.headers]
    + [None, b"", b"\xff", b"2.0", b"application/cloudevents+json", b"text/plain", b"x"]
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(header_names, header_values), max_size=4),
    st.sampled_from([_BINARY, _STRUCTURED]),
    st.booleans(),
    st.sampled_from([None, b"", b"{}", b"[1]"]),
)
def test_headers_are_read_as_the_two_pass_reading_read_them(
    extra: list[tuple[str, bytes | None]], record: Any, shuffle: bool, other_value: bytes | None
) -> None:
    headers = list(record.headers) + extra
    if shuffle:
        headers.reverse()
    for value in (record.value, other_value):
        assert outcome(decode_record, value, headers) == outcome(
            reference_decode_record, value, headers
        )
