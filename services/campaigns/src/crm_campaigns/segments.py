"""Segments: a rule tree over a `ContactView`, and when its answer changes by time alone.

A rule is a tree of pydantic models, a union discriminated by `type`; the same models are
the HTTP input and the JSON stored with a segment. `parse_rule` reads one (and bounds its
size), `rule_json` writes one. `evaluate(rule, view, as_of)` says whether the contact is a
member at `as_of` and the earliest later moment at which that answer flips with no new
event (a purchase ageing out of "three purchases in 30 days", "no purchase for 60 days"
coming true); the service stores that moment per segment and contact and looks again then.

Pure: no I/O, no clock; the caller passes `as_of`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, assert_never

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, RootModel, model_validator

from crm_campaigns.domain import ACTIVITY_KEEP, MAX_WINDOW_DAYS, ContactView, Touchpoint

MAX_DEPTH = 6
MAX_NODES = 100
MAX_CHILDREN = 50

# Finite: JSON's 1e400 reads as infinity, which jsonb cannot store (nor NaN).
Scalar = str | int | FiniteFloat | bool


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllRule(_Node):
    """Member when every rule holds."""

    type: Literal["all"] = "all"
    rules: list[Rule] = Field(
        min_length=1, max_length=MAX_CHILDREN, description="Rules that must all hold."
    )


class AnyRule(_Node):
    """Member when at least one rule holds."""

    type: Literal["any"] = "any"
    rules: list[Rule] = Field(
        min_length=1, max_length=MAX_CHILDREN, description="Rules of which one must hold."
    )


class NotRule(_Node):
    """Member when the rule does not hold."""

    type: Literal["not"] = "not"
    rule: Rule = Field(description="The rule that must not hold.")


class StageRule(_Node):
    """Member when the contact's lifecycle stage is one of these."""

    type: Literal["stage"] = "stage"
    stages: list[str] = Field(
        min_length=1, max_length=MAX_CHILDREN, description="Lifecycle stages (`customer`, ...)."
    )


class ValueTierRule(_Node):
    """Member when the contact's value tier is one of these."""

    type: Literal["value_tier"] = "value_tier"
    tiers: list[str] = Field(
        min_length=1, max_length=MAX_CHILDREN, description="Value tiers (`high`, ...)."
    )


class ChurnBandRule(_Node):
    """Member when the contact's churn-risk band is one of these."""

    type: Literal["churn_band"] = "churn_band"
    bands: list[str] = Field(
        min_length=1, max_length=MAX_CHILDREN, description="Churn-risk bands (`high`, ...)."
    )


class ScoreRule(_Node):
    """Member when the contact has the score and it compares so with `value`."""

    type: Literal["score"] = "score"
    score: Literal["engagement", "churn_risk", "clv"] = Field(description="Which score.")
    op: Literal["gte", "gt", "lte", "lt"] = Field(description="Comparison: score `op` value.")
    value: FiniteFloat = Field(description="The value compared with.")


class ConsentRule(_Node):
    """Member when the latest word on the purpose (for the channel) is this grant or
    withdrawal; a contact with no word at all is not a member either way."""

    type: Literal["consent"] = "consent"
    purpose: str = Field(min_length=1, description="Consent purpose (`marketing`, ...).")
    channel: str | None = Field(
        None, description="Channel; the every-channel consent counts too, the newer wins."
    )
    granted: bool = Field(True, description="True: consent granted; false: withdrawn.")


class TraitRule(_Node):
    """Member when a profile trait compares so; a contact without the trait is a member of
    none of `eq`, `ne`, `in`, `exists`."""

    type: Literal["trait"] = "trait"
    name: str = Field(
        min_length=1, description="Trait key: `country`, ...; custom traits `custom.<name>`."
    )
    op: Literal["eq", "ne", "in", "exists"] = Field(
        description="`eq`/`ne` a scalar, `in` a list, `exists` takes no value."
    )
    value: Scalar | list[Scalar] | None = Field(
        None, description="What the trait is compared with."
    )

    @model_validator(mode="after")
    def _value_fits_op(self) -> TraitRule:
        if self.op == "exists" and self.value is not None:
            raise ValueError("trait op 'exists' takes no value")
        if self.op == "in" and not isinstance(self.value, list):
            raise ValueError("trait op 'in' needs a list value")
        if self.op in ("eq", "ne") and (self.value is None or isinstance(self.value, list)):
            raise ValueError(f"trait op {self.op!r} needs one scalar value")
        return self


class OpenCaseRule(_Node):
    """Member when the contact has an open case (of this category when given)."""

    type: Literal["open_case"] = "open_case"
    category: str | None = Field(None, description="Case category; any when omitted.")


class DidRule(_Node):
    """Member when the contact had at least `at_least` interactions of `kind` (on
    `channel` when given) in the last `within_days` days."""

    type: Literal["did"] = "did"
    kind: str = Field(min_length=1, description="Interaction kind (`purchase`, ...).")
    channel: str | None = Field(None, description="Channel; any when omitted.")
    at_least: int = Field(1, ge=1, le=ACTIVITY_KEEP, description="How many, at least.")
    within_days: float = Field(gt=0, le=MAX_WINDOW_DAYS, description="Window, in days.")


class DidNotRule(_Node):
    """Member when the contact had no interaction of `kind` (on `channel` when given) in
    the last `for_days` days, including never."""

    type: Literal["did_not"] = "did_not"
    kind: str = Field(min_length=1, description="Interaction kind (`purchase`, ...).")
    channel: str | None = Field(None, description="Channel; any when omitted.")
    for_days: float = Field(gt=0, le=MAX_WINDOW_DAYS, description="Window, in days.")


Rule = Annotated[
    AllRule
    | AnyRule
    | NotRule
    | StageRule
    | ValueTierRule
    | ChurnBandRule
    | ScoreRule
    | ConsentRule
    | TraitRule
    | OpenCaseRule
    | DidRule
    | DidNotRule,
    Field(discriminator="type"),
]
_StaticRule = (
    StageRule | ValueTierRule | ChurnBandRule | ScoreRule | ConsentRule | TraitRule | OpenCaseRule
)

for _model in (AllRule, AnyRule, NotRule):
    _model.model_rebuild()


class SegmentRule(RootModel[Rule]):
    """A segment's rule tree, at most 6 deep and 100 nodes."""

    @model_validator(mode="after")
    def _bounded(self) -> SegmentRule:
        check_rule(self.root)
        return self


def check_rule(rule: Rule) -> None:
    """Raise ValueError when the tree is deeper than 6 or has more than 100 nodes."""
    if (depth := _depth(rule)) > MAX_DEPTH:
        raise ValueError(f"segment rule is {depth} levels deep; at most {MAX_DEPTH}")
    if (nodes := sum(1 for _ in walk(rule))) > MAX_NODES:
        raise ValueError(f"segment rule has {nodes} conditions; at most {MAX_NODES}")


def parse_rule(obj: Any) -> Rule:
    """A rule from its JSON (text or decoded); raises pydantic.ValidationError (a
    ValueError) when it is not one or is too big."""
    if isinstance(obj, str | bytes):
        return SegmentRule.model_validate_json(obj).root
    return SegmentRule.model_validate(obj).root


def rule_json(rule: Rule) -> dict[str, Any]:
    """The rule as JSON-ready data; `parse_rule` reads it back."""
    return SegmentRule(rule).model_dump(mode="json")  # type: ignore[no-any-return]


def walk(rule: Rule) -> Iterator[Rule]:
    """Every node of the tree, the rule itself first."""
    yield rule
    if isinstance(rule, AllRule | AnyRule):
        for child in rule.rules:
            yield from walk(child)
    elif isinstance(rule, NotRule):
        yield from walk(rule.rule)


def behaviour_kinds(rule: Rule) -> frozenset[str]:
    """The interaction kinds the behaviour conditions of the tree name."""
    return frozenset(node.kind for node in walk(rule) if isinstance(node, DidRule | DidNotRule))


def longest_window_days(rule: Rule) -> float:
    """The longest behaviour window in the tree, in days (0 with none)."""
    return max(
        (
            node.within_days if isinstance(node, DidRule) else node.for_days
            for node in walk(rule)
            if isinstance(node, DidRule | DidNotRule)
        ),
        default=0.0,
    )


def _depth(rule: Rule) -> int:
    if isinstance(rule, AllRule | AnyRule):
        return 1 + max(_depth(child) for child in rule.rules)
    if isinstance(rule, NotRule):
        return 1 + _depth(rule.rule)
    return 1


@dataclass(frozen=True, slots=True)
class Answer:
    """Whether a contact is a member at `as_of`, and the earliest later moment at which
    that can change with no new event (None: it cannot)."""

    member: bool
    changes_at: datetime | None


def evaluate(rule: Rule, view: ContactView, as_of: datetime) -> Answer:
    """Membership of the contact at `as_of`, and when it next flips by time alone."""
    line = _timeline(rule, view, as_of)
    return Answer(member=line.now, changes_at=line.flips[0] if line.flips else None)


@dataclass(frozen=True, slots=True)
class _Timeline:
    """The answer at as_of and every later moment at which it flips, ascending; between
    flips it holds, and at a flip the new answer already holds."""

    now: bool
    flips: tuple[datetime, ...] = ()

    def negated(self) -> _Timeline:
        if not self.flips:
            return _FALSE if self.now else _TRUE
        return _Timeline(not self.now, self.flips)


# Most answers never flip by time alone: one object each (a batch evaluates every segment
# for every contact it touched).
_TRUE = _Timeline(True)
_FALSE = _Timeline(False)


def _timeline(rule: Rule, view: ContactView, as_of: datetime) -> _Timeline:
    # By the node's class, not `match`: a pattern tests each case in turn, and this runs for
    # every node of every segment for every contact a batch touches.
    timeline = _TIMELINES.get(type(rule))
    if timeline is None:
        return _TRUE if _holds(rule, view) else _FALSE  # type: ignore[arg-type]
    return timeline(rule, view, as_of)


def _all(rule: AllRule, view: ContactView, as_of: datetime) -> _Timeline:
    return _combine([_timeline(r, view, as_of) for r in rule.rules], need=len(rule.rules))


def _any(rule: AnyRule, view: ContactView, as_of: datetime) -> _Timeline:
    return _combine([_timeline(r, view, as_of) for r in rule.rules], need=1)


def _not(rule: NotRule, view: ContactView, as_of: datetime) -> _Timeline:
    return _timeline(rule.rule, view, as_of).negated()


def _did(rule: DidRule, view: ContactView, as_of: datetime) -> _Timeline:
    points = _matching(view, rule.kind, rule.channel)
    return _activity(points, rule.at_least, timedelta(days=rule.within_days), as_of)


def _did_not(rule: DidNotRule, view: ContactView, as_of: datetime) -> _Timeline:
    points = _matching(view, rule.kind, rule.channel)
    return _activity(points, 1, timedelta(days=rule.for_days), as_of).negated()


_TIMELINES: dict[type, Callable[[Any, ContactView, datetime], _Timeline]] = {
    AllRule: _all,
    AnyRule: _any,
    NotRule: _not,
    DidRule: _did,
    DidNotRule: _did_not,
}


def _matching(view: ContactView, kind: str, channel: str | None) -> list[Touchpoint]:
    points = view.activity.get(kind, [])
    return points if channel is None else [p for p in points if p.channel == channel]


def _activity(
    points: list[Touchpoint], at_least: int, window: timedelta, as_of: datetime
) -> _Timeline:
    # A touchpoint counts from its moment until `window` later (at > t - window, at <= t);
    # touchpoints after as_of (a late evaluation) start counting at their moment.
    if not points:
        return _FALSE
    now = 0
    steps: dict[datetime, int] = defaultdict(int)
    for point in points:
        if point.at + window <= as_of:
            continue
        if point.at > as_of:
            steps[point.at] += 1
        else:
            now += 1
        steps[point.at + window] -= 1
    return _sweep(now, steps, at_least)


def _combine(lines: list[_Timeline], need: int) -> _Timeline:
    now = sum(line.now for line in lines)
    if not any(line.flips for line in lines):
        return _TRUE if now >= need else _FALSE
    steps: dict[datetime, int] = defaultdict(int)
    for line in lines:
        value = line.now
        for at in line.flips:
            steps[at] += -1 if value else 1
            value = not value
    return _sweep(now, steps, need)


def _sweep(count: int, steps: dict[datetime, int], need: int) -> _Timeline:
    """The timeline of `count >= need` as `count` moves by `steps` (moment -> delta)."""
    now = current = count >= need
    if not steps:
        return _TRUE if now else _FALSE
    flips: list[datetime] = []
    for at in sorted(steps):
        count += steps[at]
        if (count >= need) != current:
            current = not current
            flips.append(at)
    return _Timeline(now, tuple(flips))


def _holds(rule: _StaticRule, view: ContactView) -> bool:
    match rule:
        case StageRule():
            return view.stage in rule.stages
        case ValueTierRule():
            return view.value_tier in rule.tiers
        case ChurnBandRule():
            return view.churn_band in rule.bands
        case ScoreRule():
            return _compares(getattr(view, rule.score), rule.op, rule.value)
        case ConsentRule():
            word = view.consent(rule.purpose, rule.channel)
            return word is not None and word.granted == rule.granted
        case TraitRule():
            return _trait_holds(rule, view)
        case OpenCaseRule():
            if rule.category is None:
                return bool(view.open_cases)
            return rule.category in view.open_cases.values()
        case _:
            assert_never(rule)


def _compares(score: float | None, op: str, value: float) -> bool:
    if score is None:
        return False
    match op:
        case "gte":
            return score >= value
        case "gt":
            return score > value
        case "lte":
            return score <= value
        case _:
            return score < value


def _trait_holds(rule: TraitRule, view: ContactView) -> bool:
    trait = view.traits.get(rule.name)
    if trait is None:
        return False
    match rule.value:
        case list(values):
            return any(_same(trait, v) for v in values)
        case None:
            return rule.op == "exists"
        case value:
            return _same(trait, value) == (rule.op == "eq")


def _same(trait: Any, value: Scalar) -> bool:
    # True == 1 in Python; a trait of `true` is not the number 1.
    if isinstance(trait, bool) != isinstance(value, bool):
        return False
    return bool(trait == value)
