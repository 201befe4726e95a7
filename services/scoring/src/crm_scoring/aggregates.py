"""A contact's facts folded into running aggregates, so that one more event costs the same
whatever the contact's history.

`Aggregates` holds, for the facts of one contact whose event time is at or before `as_of`,
everything `domain.score` reads from them: decayed engagement points (now, and as of the
churn model's lookback), decayed churn signals, purchase counts, revenue and first/last
purchase, the purchases inside the RFM window, the newest fact time and the last open/close
of every case. `card` gives the scores `domain.score(facts, as_of, model)` gives (the unit
tests check it on random histories with shuffled event times), `add` folds in one more fact
(a late one too: only its event time matters), and `advance` moves `as_of` forward given
the facts that crossed a window edge on the way, those in `Crossing`'s ranges of event time.
Each fact enters once and crosses each edge once, so the facts read per event stay few.

Decayed sums are kept against a fixed `anchor` (sums of 2 ** ((t - anchor) / half_life);
the lookback sum against `anchor - lookback`, so that no exponent is ever large):
moving `as_of` forward changes no sum, the value as of a moment is one multiplication, and
the anchor moves only when the exponent grows large. Removing a fact (unmerge, erasure) is
not supported: those rebuild the aggregates from the contact's facts (`aggregate`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from crm_scoring.domain import (
    CASE_ENDS,
    CASE_OPENS,
    DAY_SECONDS,
    Change,
    Fact,
    Purchases,
    Reason,
    ScoreCard,
    Step,
    base_amount,
    card_from,
    churn_signals,
    engagement_drop_risk,
    engagement_from_raw,
    engagement_points,
    lead_in,
    overdue_risk,
    purchases_per_year,
    rank_reasons,
    round_churn,
    time_label_since,
)
from crm_scoring.model import ScoringModel

# The anchor moves once a decayed sum would grow past 2 ** this (far from float overflow).
_MAX_EXPONENT = 256.0


@dataclass(frozen=True, slots=True)
class CaseMark:
    """The last open or close of a case: its event time and fact id (the order key)."""

    at: datetime
    fact_id: str
    open_since: datetime | None


@dataclass(frozen=True, slots=True)
class Crossing:
    """The event-time ranges whose facts moving `as_of` from `after` to `until` must see."""

    after: datetime  # facts later than this are new (arrived, or were in the future)
    until: datetime
    window_from: datetime  # [window_from, window_to): leave the RFM window
    window_to: datetime
    lookback_from: datetime  # (lookback_from, lookback_to]: pass the lookback edge
    lookback_to: datetime


@dataclass(slots=True)
class Aggregates:
    """Everything the scores need from the facts at or before `as_of` (see the module)."""

    as_of: datetime
    anchor: datetime
    engagement: float = 0.0
    engagement_then: float = 0.0  # facts at or before as_of - lookback, anchored lookback earlier
    signals: dict[str, float] = field(default_factory=dict)
    purchases: int = 0
    revenue: Decimal = Decimal(0)  # net of refunds, model currency, not clamped
    first_purchase: datetime | None = None
    last_purchase: datetime | None = None
    window_purchases: int = 0
    window_net: Decimal = Decimal(0)
    latest: datetime | None = None
    cases: dict[str, CaseMark] = field(default_factory=dict)

    def copy(self) -> Aggregates:
        """An independent copy (the dicts too)."""
        out = Aggregates(**{name: getattr(self, name) for name in self.__slots__})
        out.signals = dict(self.signals)
        out.cases = dict(self.cases)
        return out


def _days(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / DAY_SECONDS


def _rise(at: datetime, anchor: datetime, half_life: float) -> float:
    return float(2.0 ** (_days(at, anchor) / half_life))


def _decayed(total: float, at: datetime, anchor: datetime, half_life: float) -> float:
    return total * float(2.0 ** (-_days(at, anchor) / half_life))


def _window_start(as_of: datetime, model: ScoringModel) -> datetime:
    return as_of - timedelta(days=model.rfm.window_days)


def _then(as_of: datetime, model: ScoringModel) -> datetime:
    return as_of - timedelta(days=model.churn.engagement_drop_lookback_days)


def _signed_amount(fact: Fact, model: ScoringModel) -> Decimal:
    amount = base_amount(fact, model) or Decimal(0)
    return amount if fact.kind == "purchase" else -amount


def empty(as_of: datetime) -> Aggregates:
    """The aggregates of a contact without facts."""
    return Aggregates(as_of=as_of, anchor=as_of)


def aggregate(facts: Iterable[Fact], as_of: datetime, model: ScoringModel) -> Aggregates:
    """The aggregates of these facts as of `as_of`, from scratch."""
    agg = empty(as_of)
    for fact in facts:
        add(agg, fact, model)
    return agg


def add(agg: Aggregates, fact: Fact, model: ScoringModel) -> None:
    """Fold one fact in (whatever its event time; one later than `as_of` is not counted)."""
    at = fact.occurred_at
    if at > agg.as_of:
        return
    agg.latest = at if agg.latest is None else max(agg.latest, at)
    if not fact.is_case:
        points, half_life = engagement_points(fact, model), model.engagement.half_life_days
        agg.engagement += points * _rise(at, agg.anchor, half_life)
        if at <= _then(agg.as_of, model):
            agg.engagement_then += points * _rise(at, _then(agg.anchor, model), half_life)
    for name in churn_signals(fact, model):
        half_life = model.churn.signals[name].half_life_days
        agg.signals[name] = agg.signals.get(name, 0.0) + _rise(at, agg.anchor, half_life)
    if fact.kind in ("purchase", "refund"):
        _add_purchase(agg, fact, model)
    if fact.is_case and fact.case_id is not None:
        _mark_case(agg, fact)


def _add_purchase(agg: Aggregates, fact: Fact, model: ScoringModel) -> None:
    at, amount = fact.occurred_at, _signed_amount(fact, model)
    agg.revenue += amount
    in_window = at >= _window_start(agg.as_of, model)
    if in_window:
        agg.window_net += amount
    if fact.kind == "purchase":
        agg.purchases += 1
        agg.window_purchases += in_window
        agg.first_purchase = at if agg.first_purchase is None else min(agg.first_purchase, at)
        agg.last_purchase = at if agg.last_purchase is None else max(agg.last_purchase, at)


def _mark_case(agg: Aggregates, fact: Fact) -> None:
    assert fact.case_id is not None
    if fact.kind not in CASE_OPENS and fact.kind not in CASE_ENDS:
        return
    mark = agg.cases.get(fact.case_id)
    if mark is not None and (mark.at, mark.fact_id) > (fact.occurred_at, fact.fact_id):
        return  # a later open or close of this case decides its state
    since = fact.occurred_at if fact.kind in CASE_OPENS else None
    agg.cases[fact.case_id] = CaseMark(fact.occurred_at, fact.fact_id, since)


def crossing(agg: Aggregates, until: datetime, model: ScoringModel) -> Crossing:
    """The ranges of event time whose facts `advance(agg, until, ...)` needs."""
    return Crossing(
        after=agg.as_of,
        until=until,
        window_from=_window_start(agg.as_of, model),
        window_to=_window_start(until, model),
        lookback_from=_then(agg.as_of, model),
        lookback_to=_then(until, model),
    )


def advance(agg: Aggregates, until: datetime, crossed: Iterable[Fact], model: ScoringModel) -> None:
    """Move `as_of` forward to `until`; `crossed` holds (at least) the facts of `crossing`."""
    if until < agg.as_of:
        raise ValueError("aggregates move forward only; rebuild them for an earlier moment")
    edges = crossing(agg, until, model)
    _reanchor(agg, until, model)
    agg.as_of = until
    arrived: dict[str, Fact] = {}
    passed: dict[str, Fact] = {}
    for fact in crossed:
        if fact.occurred_at > until:
            continue  # still in the future
        (arrived if fact.occurred_at > edges.after else passed)[fact.fact_id] = fact
    for fact in passed.values():
        _cross_edges(agg, fact, edges, model)
    for fact in arrived.values():
        add(agg, fact, model)


def _cross_edges(agg: Aggregates, fact: Fact, edges: Crossing, model: ScoringModel) -> None:
    at = fact.occurred_at
    if fact.kind in ("purchase", "refund") and edges.window_from <= at < edges.window_to:
        amount = _signed_amount(fact, model)
        agg.window_net -= amount
        agg.window_purchases -= fact.kind == "purchase"
    if not fact.is_case and edges.lookback_from < at <= edges.lookback_to:
        agg.engagement_then += engagement_points(fact, model) * _rise(
            at, _then(agg.anchor, model), model.engagement.half_life_days
        )


def _reanchor(agg: Aggregates, until: datetime, model: ScoringModel) -> None:
    half_lives = [model.engagement.half_life_days]
    half_lives += [s.half_life_days for s in model.churn.signals.values()]
    if _days(until, agg.anchor) / min(half_lives) <= _MAX_EXPONENT:
        return
    eng = model.engagement.half_life_days
    agg.engagement = _decayed(agg.engagement, until, agg.anchor, eng)
    agg.engagement_then = _decayed(agg.engagement_then, until, agg.anchor, eng)
    agg.signals = {
        name: _decayed(total, until, agg.anchor, model.churn.signals[name].half_life_days)
        for name, total in agg.signals.items()
    }
    agg.anchor = until


def _long_open_cases(cases: Mapping[str, CaseMark], as_of: datetime, model: ScoringModel) -> int:
    return sum(
        1
        for mark in cases.values()
        if mark.open_since is not None
        and max(_days(as_of, mark.open_since), 0.0) > model.churn.long_open_days
    )


def card(agg: Aggregates, model: ScoringModel) -> ScoreCard:
    """The scores as of `agg.as_of` (equal to `domain.score` of the facts folded in)."""
    as_of, churn, half_life = agg.as_of, model.churn, model.engagement.half_life_days
    now = engagement_from_raw(_decayed(agg.engagement, as_of, agg.anchor, half_life), model)
    p = Purchases(
        agg.purchases,
        max(agg.revenue, Decimal(0)),
        agg.first_purchase,
        agg.last_purchase,
        purchases_per_year(agg.purchases, agg.first_purchase, agg.last_purchase, model),
        agg.window_purchases,
        agg.window_net,
    )
    risk = churn.base + overdue_risk(p, as_of, model)
    for name in sorted(agg.signals):
        signal = churn.signals[name]
        decayed = _decayed(agg.signals[name], as_of, agg.anchor, signal.half_life_days)
        risk += signal.weight * decayed
    risk += churn.long_open_weight * _long_open_cases(agg.cases, as_of, model)
    then_raw = _decayed(agg.engagement_then, as_of, agg.anchor, half_life)
    risk += engagement_drop_risk(engagement_from_raw(then_raw, model), now, model)
    return card_from(
        engagement_score=now, purchases=p, churn_risk=round_churn(risk), as_of=as_of, model=model
    )


@dataclass(slots=True)
class Folded:
    """The aggregates after a sequence of changes, with the scores before and after each."""

    before_latest: datetime | None  # the newest fact time before the changes
    start: ScoreCard  # the scores before the changes
    steps: list[Step]
    aggregates: Aggregates

    @property
    def card(self) -> ScoreCard:
        """The scores after every change."""
        return self.steps[-1].after if self.steps else self.start


def fold_changes(before: Aggregates, changes: Sequence[Change], model: ScoringModel) -> Folded:
    """Fold each change's facts into a copy of `before`, scoring after each change."""
    agg = before.copy()
    start = card(agg, model)
    steps: list[Step] = []
    current = start
    for change in changes:
        if change.removed:
            raise ValueError("aggregates cannot remove facts; rebuild them from the facts")
        for fact in change.added:
            add(agg, fact, model)
        after = card(agg, model)
        steps.append(Step(change.label, current, after))
        current = after
    return Folded(before.latest, start, steps, agg)


def explain_folded(
    folded: Folded,
    *,
    previous: ScoreCard | None,
    published: ScoreCard | None,
    model: ScoringModel,
) -> list[Reason]:
    """The reasons `domain.explain` gives for the same facts, changes and scores."""
    steps = lead_in(
        start=folded.start,
        previous=previous,
        published=published,
        time_passed=time_label_since(folded.before_latest, folded.aggregates.as_of),
    )
    return rank_reasons(
        [*steps, *folded.steps],
        current=folded.card,
        base=published or previous or folded.start,
        model=model,
    )
