"""The scoring rules: a contact's facts and a moment in, its scores and their reasons out.

Everything here is pure. `score(facts, as_of, model)` depends only on the set of facts (each
with its event time) and on `as_of`, never on the order facts arrived in: late and
out-of-order events give the same scores as ordered ones, and a replay gives the same
scores again. Facts later than `as_of` are not counted yet.

- engagement 0-100: points per interaction kind and channel, halving every half-life;
- RFM 1-5 each over a window, and the value tier from R + F + M;
- CLV: average order value x purchases per year x expected lifetime x (1 - churn risk);
- churn risk 0-1: base + overdue purchase (against the contact's own rhythm) + decaying
  signals (complaints, SLA breaches, reopened cases, low CSAT, detractors, unsubscribes,
  refunds; purchases and positive feedback lower it) + long-open cases + falling engagement.

`explain` splits a change into plain-word reasons whose contributions add up to it;
`should_publish` applies the materiality thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from crm_contracts.cases import (
    CASE_CLOSED,
    CASE_CSAT_RECORDED,
    CASE_OPENED,
    CASE_REOPENED,
    CASE_RESOLVED,
    CASE_SLA_BREACHED,
)
from crm_contracts.interactions import InteractionResolved
from crm_scoring.model import Band, ScoringModel

DAY_SECONDS = 86_400.0
CENT = Decimal("0.01")
CHURN_PLACES = 4

# Fact kinds that come from case events; every other kind is an interaction kind.
CASE_FACT_KINDS = {
    CASE_OPENED: "case_opened",
    CASE_REOPENED: "case_reopened",
    CASE_RESOLVED: "case_resolved",
    CASE_CLOSED: "case_closed",
    CASE_SLA_BREACHED: "case_sla_breached",
    CASE_CSAT_RECORDED: "case_csat",
}
CASE_OPENS = frozenset({"case_opened", "case_reopened"})
CASE_ENDS = frozenset({"case_resolved", "case_closed"})
_CASE_KINDS = frozenset(CASE_FACT_KINDS.values())

SCORE_NAMES = (
    "value_tier",
    "churn_risk",
    "clv",
    "engagement",
    "recency",
    "frequency",
    "monetary",
)
_SCORE_WORDS = {
    "engagement": "engagement",
    "recency": "recency",
    "frequency": "frequency",
    "monetary": "monetary",
    "value_tier": "value tier",
    "clv": "CLV",
    "churn_risk": "churn risk",
}


@dataclass(frozen=True, slots=True)
class Fact:
    """Something that happened to a contact, at its event time, as scoring keeps it."""

    fact_id: str
    kind: str
    occurred_at: datetime
    channel: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    csat: int | None = None
    nps: int | None = None
    case_id: str | None = None
    detail: str | None = None

    @property
    def is_case(self) -> bool:
        return self.kind in _CASE_KINDS


@dataclass(frozen=True, slots=True)
class ScoreCard:
    """Every score of one contact at one moment."""

    engagement: int
    engagement_band: str
    recency: int
    frequency: int
    monetary: int
    value_tier: str
    clv: Decimal
    churn_risk: float
    churn_band: str

    def value(self, name: str, model: ScoringModel) -> float:
        """A score as a number (the value tier as its rank, bronze 0)."""
        if name == "value_tier":
            return float([t.name for t in model.rfm.tiers].index(self.value_tier))
        if name == "clv":
            return float(self.clv)
        return float(getattr(self, name))


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a score moved, in plain words, with how much it moved it."""

    text: str
    score: str
    contribution: float


@dataclass(frozen=True, slots=True)
class Change:
    """What happened between two evaluations: facts added and/or removed, under one label."""

    label: str
    added: tuple[Fact, ...] = ()
    removed: frozenset[str] = field(default_factory=frozenset)


# -- facts from events --------------------------------------------------------------------


def interaction_fact_id(source: str, interaction_id: str) -> str:
    """The fact id of an interaction: the recorded interaction's CloudEvents source and id."""
    return f"interaction|{source}|{interaction_id}"


def fact_from_interaction(data: InteractionResolved, occurred_at: datetime) -> Fact | None:
    """The fact a resolved interaction adds to its contact; None for an agent's (a reply on a
    case): what we sent is not the customer's engagement."""
    if data.agent_id is not None:
        return None
    return Fact(
        fact_id=interaction_fact_id(data.interaction_source, data.interaction_id),
        kind=data.kind,
        occurred_at=occurred_at,
        channel=data.channel.value,
        amount=data.value.amount if data.value is not None else None,
        currency=data.value.currency if data.value is not None else None,
        csat=data.csat,
        nps=data.nps,
        case_id=data.case_id,
    )


def fact_from_case_event(
    *,
    event_type: str,
    source: str,
    event_id: str,
    occurred_at: datetime,
    case_id: str,
    csat: int | None = None,
    detail: str | None = None,
) -> Fact | None:
    """The fact a case event adds, or None for case events that do not score."""
    kind = CASE_FACT_KINDS.get(event_type)
    if kind is None:
        return None
    return Fact(
        fact_id=f"case|{source}|{event_id}",
        kind=kind,
        occurred_at=occurred_at,
        case_id=case_id,
        csat=csat,
        detail=detail,
    )


# -- the scores ---------------------------------------------------------------------------


def _days(later: datetime, earlier: datetime) -> float:
    return max((later - earlier).total_seconds() / DAY_SECONDS, 0.0)


def _halved(days: float, half_life: float) -> float:
    return float(0.5 ** (days / half_life))


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _band(bands: Sequence[Band], value: float) -> str:
    name = bands[0].name
    for band in bands:
        if value >= band.minimum:
            name = band.name
    return name


def _in_order(facts: Iterable[Fact], as_of: datetime) -> list[Fact]:
    # A fixed order makes float sums, and so the rounded scores, independent of arrival order.
    return sorted(
        (f for f in facts if f.occurred_at <= as_of), key=lambda f: (f.occurred_at, f.fact_id)
    )


def base_amount(fact: Fact, model: ScoringModel) -> Decimal | None:
    """The fact's amount in the model currency; None without an amount or a known rate."""
    if fact.amount is None or fact.currency is None:
        return None
    rate = model.rates.get(fact.currency)
    return None if rate is None else fact.amount * rate


def engagement_points(fact: Fact, model: ScoringModel) -> float:
    """The undecayed engagement points of an interaction fact: points(kind) x weight(channel)."""
    eng = model.engagement
    points = eng.points.get(fact.kind, eng.default_points)
    weight = eng.channel_weights.get(fact.channel or "", 1.0)
    return points * weight


def engagement_from_raw(raw: float, model: ScoringModel) -> int:
    """Engagement 0-100 from the sum of decayed points."""
    return round(100 * (1 - math.exp(-raw / model.engagement.saturation_points)))


def engagement(facts: Iterable[Fact], as_of: datetime, model: ScoringModel) -> int:
    """Engagement 0-100 as of `as_of`."""
    eng = model.engagement
    raw = 0.0
    for fact in _in_order(facts, as_of):
        if fact.is_case:
            continue
        raw += engagement_points(fact, model) * _halved(
            _days(as_of, fact.occurred_at), eng.half_life_days
        )
    return engagement_from_raw(raw, model)


@dataclass(frozen=True, slots=True)
class Purchases:
    """A contact's purchases (and refunds) as the scores use them."""

    count: int
    revenue: Decimal  # net of refunds, all time, model currency
    first: datetime | None
    last: datetime | None
    per_year: float
    window_count: int
    window_net: Decimal


def _purchases(facts: Sequence[Fact], as_of: datetime, model: ScoringModel) -> Purchases:
    window_start = as_of - timedelta(days=model.rfm.window_days)
    count = window_count = 0
    revenue = window_net = Decimal(0)
    first: datetime | None = None
    last: datetime | None = None
    for fact in facts:
        if fact.kind not in ("purchase", "refund"):
            continue
        amount = base_amount(fact, model) or Decimal(0)
        sign = 1 if fact.kind == "purchase" else -1
        revenue += sign * amount
        if fact.occurred_at >= window_start:
            window_net += sign * amount
        if fact.kind == "purchase":
            count += 1
            first = fact.occurred_at if first is None else min(first, fact.occurred_at)
            last = fact.occurred_at if last is None else max(last, fact.occurred_at)
            if fact.occurred_at >= window_start:
                window_count += 1
    return Purchases(
        count,
        max(revenue, Decimal(0)),
        first,
        last,
        purchases_per_year(count, first, last, model),
        window_count,
        window_net,
    )


def purchases_per_year(
    count: int, first: datetime | None, last: datetime | None, model: ScoringModel
) -> float:
    """The contact's purchase rhythm (see [clv] in the model)."""
    clv = model.clv
    if count >= 2 and first is not None and last is not None:
        span = max(_days(last, first), clv.min_span_days)
        return min((count - 1) / span * 365.0, clv.max_purchases_per_year)
    if count == 1:
        return clv.default_purchases_per_year
    return 0.0


def _quintile_at_least(value: float, edges: Sequence[float]) -> int:
    return 1 + sum(1 for edge in edges if value >= edge)


def _recency(p: Purchases, as_of: datetime, model: ScoringModel) -> int:
    if p.last is None or p.window_count == 0:
        return 1
    since = _days(as_of, p.last)
    return 5 - sum(1 for edge in model.rfm.recency_days if since > edge)


def _open_cases(facts: Sequence[Fact], as_of: datetime, model: ScoringModel) -> int:
    open_since: dict[str, datetime | None] = {}
    for fact in facts:  # in event-time order
        if not fact.is_case or fact.case_id is None:
            continue
        if fact.kind in CASE_OPENS:
            open_since[fact.case_id] = fact.occurred_at
        elif fact.kind in CASE_ENDS:
            open_since[fact.case_id] = None
    return sum(
        1
        for since in open_since.values()
        if since is not None and _days(as_of, since) > model.churn.long_open_days
    )


def churn_signals(fact: Fact, model: ScoringModel) -> list[str]:
    """The churn signals one fact carries (see `[churn.signals]` in the model)."""
    churn = model.churn
    found: list[str] = []
    by_kind = {
        "complaint": "complaint",
        "unsubscribe": "unsubscribe",
        "refund": "refund",
        "purchase": "purchase",
        "case_sla_breached": "sla_breached",
        "case_reopened": "case_reopened",
    }
    if fact.kind in by_kind:
        found.append(by_kind[fact.kind])
    if fact.csat is not None:
        if fact.csat <= churn.low_csat_max:
            found.append("low_csat")
        elif fact.csat >= churn.high_csat_min:
            found.append("positive_feedback")
    if fact.nps is not None:
        if fact.nps <= churn.detractor_max:
            found.append("detractor")
        elif fact.nps >= churn.promoter_min:
            found.append("positive_feedback")
    return [name for name in found if name in churn.signals]


def _churn(facts: Sequence[Fact], p: Purchases, as_of: datetime, model: ScoringModel) -> float:
    churn = model.churn
    risk = churn.base + overdue_risk(p, as_of, model)
    for fact in facts:
        for name in churn_signals(fact, model):
            signal = churn.signals[name]
            risk += signal.weight * _halved(_days(as_of, fact.occurred_at), signal.half_life_days)
    risk += churn.long_open_weight * _open_cases(facts, as_of, model)
    then = engagement(facts, as_of - timedelta(days=churn.engagement_drop_lookback_days), model)
    if then >= max(churn.engagement_drop_min_previous, 1):
        risk += engagement_drop_risk(then, engagement(facts, as_of, model), model)
    return round_churn(risk)


def overdue_risk(p: Purchases, as_of: datetime, model: ScoringModel) -> float:
    """The churn risk of a purchase overdue against the contact's own rhythm."""
    churn = model.churn
    if p.last is None or p.per_year <= 0:
        return 0.0
    ratio = _days(as_of, p.last) / (365.0 / p.per_year)
    return churn.overdue_weight * _clamp((ratio - 1) / (churn.overdue_full_ratio - 1), 0.0, 1.0)


def engagement_drop_risk(then: int, now: int, model: ScoringModel) -> float:
    """The churn risk of engagement falling from `then` (lookback days ago) to `now`."""
    churn = model.churn
    if then < max(churn.engagement_drop_min_previous, 1) or now >= then:
        return 0.0
    return churn.engagement_drop_weight * (then - now) / then


def round_churn(risk: float) -> float:
    """Churn risk clamped to 0-1 and rounded as published."""
    return round(_clamp(risk, 0.0, 1.0), CHURN_PLACES)


def _clv(p: Purchases, churn_risk: float, model: ScoringModel) -> Decimal:
    if p.count == 0:
        return Decimal("0.00")
    aov = p.revenue / p.count
    factor = p.per_year * model.clv.expected_lifetime_years * (1.0 - churn_risk)
    return (aov * Decimal(repr(round(factor, 9)))).quantize(CENT, rounding=ROUND_HALF_UP)


def score(facts: Iterable[Fact], as_of: datetime, model: ScoringModel) -> ScoreCard:
    """Every score of a contact with these facts, as of `as_of`."""
    ordered = _in_order(facts, as_of)
    p = _purchases(ordered, as_of, model)
    return card_from(
        engagement_score=engagement(ordered, as_of, model),
        purchases=p,
        churn_risk=_churn(ordered, p, as_of, model),
        as_of=as_of,
        model=model,
    )


def card_from(
    *,
    engagement_score: int,
    purchases: Purchases,
    churn_risk: float,
    as_of: datetime,
    model: ScoringModel,
) -> ScoreCard:
    """The score card from engagement, purchases and churn risk (the rest follows)."""
    eng, p, risk = engagement_score, purchases, churn_risk
    recency = _recency(p, as_of, model)
    frequency = _quintile_at_least(p.window_count, model.rfm.frequency_counts)
    monetary = _quintile_at_least(
        float(p.window_net), [float(e) for e in model.rfm.monetary_amounts]
    )
    return ScoreCard(
        engagement=eng,
        engagement_band=_band(model.engagement.bands, eng),
        recency=recency,
        frequency=frequency,
        monetary=monetary,
        value_tier=_band(model.rfm.tiers, recency + frequency + monetary),
        clv=_clv(p, risk, model),
        churn_risk=risk,
        churn_band=_band(model.churn.bands, risk),
    )


# -- publishing and reasons ----------------------------------------------------------------


def bands_changed(old: ScoreCard, new: ScoreCard) -> bool:
    """A value tier, churn band or engagement band boundary was crossed."""
    return (
        old.value_tier != new.value_tier
        or old.churn_band != new.churn_band
        or old.engagement_band != new.engagement_band
    )


def should_publish(
    published: ScoreCard | None, new: ScoreCard, model: ScoringModel, *, time_only: bool = False
) -> bool:
    """Whether `new` differs materially from the scores last published.

    First scores are always published, and so is a tier or band change; time alone (a
    periodic re-evaluation) publishes nothing else.
    """
    if published is None or bands_changed(published, new):
        return True
    if time_only:
        return False
    pub = model.publish
    clv_step = max(pub.clv_absolute, abs(published.clv) * Decimal(repr(pub.clv_relative)))
    return (
        abs(new.engagement - published.engagement) >= pub.engagement
        or abs(new.churn_risk - published.churn_risk) >= pub.churn_risk - 1e-9
        or abs(new.clv - published.clv) >= clv_step
        or abs(new.recency - published.recency) >= pub.rfm
        or abs(new.frequency - published.frequency) >= pub.rfm
        or abs(new.monetary - published.monetary) >= pub.rfm
    )


def describe(fact: Fact) -> str:
    """A fact in a few plain words, without personal data."""
    if fact.kind in ("purchase", "refund") and fact.amount is not None:
        return f"{fact.kind} {fact.amount.quantize(CENT)} {fact.currency}"
    if fact.kind == "case_sla_breached":
        return f"case breached SLA ({fact.detail})" if fact.detail else "case breached SLA"
    if fact.kind == "case_csat":
        return f"case rated CSAT {fact.csat}/5"
    if fact.kind == "case_opened":
        return "case opened"
    if fact.kind == "case_reopened":
        return "case reopened"
    if fact.kind in ("case_resolved", "case_closed"):
        return "case " + fact.kind.removeprefix("case_")
    words = fact.kind.replace("_", " ")
    if fact.csat is not None:
        words += f" CSAT {fact.csat}/5"
    if fact.nps is not None:
        words += f" NPS {fact.nps}"
    return f"{words} via {fact.channel}" if fact.channel else words


def time_label(facts: Iterable[Fact], as_of: datetime) -> str:
    """How a time-only change reads: the days since the contact's last interaction."""
    return time_label_since(
        max((f.occurred_at for f in facts if f.occurred_at <= as_of), default=None), as_of
    )


def time_label_since(latest: datetime | None, as_of: datetime) -> str:
    """How a time-only change reads, from the newest fact's time (None: no facts)."""
    if latest is None:
        return "time passed"
    days = int(_days(as_of, latest))
    return f"{days} days since the last activity" if days != 1 else "1 day since the last activity"


def _format(name: str, delta: float, new: ScoreCard) -> str:
    if name == "value_tier":
        return f"{delta:+.0f} value tier ({new.value_tier})"
    if name == "churn_risk":
        return f"{delta:+.2f} churn risk" if abs(delta) >= 0.005 else f"{delta:+.3f} churn risk"
    if name == "clv":
        return f"{delta:+.2f} CLV"
    return f"{delta:+.0f} {_SCORE_WORDS[name]}"


def _weight(name: str, delta: float, scale_clv: float) -> float:
    scale = {"engagement": 100.0, "value_tier": 2.0, "churn_risk": 1.0, "clv": scale_clv}
    return abs(delta) / scale.get(name, 4.0)


def explain(
    *,
    facts_before: Iterable[Fact],
    changes: Sequence[Change],
    as_of: datetime,
    model: ScoringModel,
    previous: ScoreCard | None,
    published: ScoreCard | None = None,
) -> list[Reason]:
    """The reasons, biggest first, that lead from the published scores to the new ones.

    The steps are: smaller changes left unpublished before (published -> previous), time
    passing (previous -> the old facts as of `as_of`), then each change in turn; the
    contributions of all steps add up to the whole change.
    """
    facts = {f.fact_id: f for f in facts_before}
    start = score(facts.values(), as_of, model)
    steps = lead_in(
        start=start,
        previous=previous,
        published=published,
        time_passed=time_label(facts.values(), as_of),
    )
    current = start
    for change in changes:
        for fact_id in change.removed:
            facts.pop(fact_id, None)
        for fact in change.added:
            facts[fact.fact_id] = fact
        after = score(facts.values(), as_of, model)
        steps.append(Step(change.label, current, after))
        current = after
    return rank_reasons(steps, current=current, base=published or previous or start, model=model)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a change: the scores before and after, under one label."""

    label: str
    before: ScoreCard
    after: ScoreCard


def lead_in(
    *, start: ScoreCard, previous: ScoreCard | None, published: ScoreCard | None, time_passed: str
) -> list[Step]:
    """The steps before the changes: unpublished earlier changes, then time passing."""
    if previous is None:
        return []
    steps: list[Step] = []
    if published is not None and published != previous:
        steps.append(Step("earlier changes below the publishing thresholds", published, previous))
    steps.append(Step(time_passed, previous, start))
    return steps


def rank_reasons(
    steps: Sequence[Step], *, current: ScoreCard, base: ScoreCard, model: ScoringModel
) -> list[Reason]:
    """The reasons of every step, biggest first, at most `max_reasons`."""
    scale_clv = max(abs(float(current.clv)), abs(float(base.clv)), 1.0)
    weighted: list[tuple[float, int, Reason]] = []
    for step in steps:
        for name in SCORE_NAMES:
            delta = step.after.value(name, model) - step.before.value(name, model)
            if abs(delta) < 1e-9:
                continue
            if name == "churn_risk":
                delta = round(delta, CHURN_PLACES)
            text = f"{step.label[:150]}: {_format(name, delta, current)}"
            reason = Reason(text=text, score=name, contribution=delta)
            weighted.append((_weight(name, delta, scale_clv), len(weighted), reason))
    weighted.sort(key=lambda item: (-item[0], item[1]))
    return [reason for _, _, reason in weighted[: model.publish.max_reasons]]


def merge_facts(survivor: Mapping[str, Fact], merged: Iterable[Fact]) -> dict[str, Fact]:
    """The survivor's facts with the merged contact's folded in (a fact counts once)."""
    out = dict(survivor)
    for fact in merged:
        out.setdefault(fact.fact_id, fact)
    return out
