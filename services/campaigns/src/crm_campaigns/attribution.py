"""Which steps a conversion is credited to, and what counts as a conversion.

`credit` splits one conversion over the steps that touched the contact, by the campaign's
model; `credited_step` names the one step a `campaign.converted` event carries; `is_conversion`
says whether an interaction meets the campaign's goal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_campaigns.domain import AttributionModel, Goal


@dataclass(frozen=True, slots=True)
class Touch:
    """A step that reached the contact (a send) at `at`."""

    step_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Credit:
    """A step's part of one conversion: `share` of it (the shares sum to 1) and that part of
    its revenue in whole cents (0.0 when the conversion carries no value)."""

    step_id: str
    share: float
    revenue: float


def credit(
    touches: Sequence[Touch],
    *,
    converted_at: datetime,
    since: datetime,
    model: AttributionModel,
    revenue: float | None,
) -> list[Credit]:
    """The credits of a conversion at `converted_at`, one per credited step.

    Only touches with since <= at <= converted_at count: `since` is the enrolment's start;
    a lookback window shorter than that is the caller's to apply through `since`. Touches at
    the same instant are ordered by step id. first_touch credits the earliest touch,
    last_touch the latest; linear gives each touch 1/n, summed per step. Credits come in
    order of each step's latest touch, so the last one is the step that touched last. No
    touches: no credits.
    """
    counted = sorted(
        (t for t in touches if since <= t.at <= converted_at), key=lambda t: (t.at, t.step_id)
    )
    if not counted:
        return []
    if model is AttributionModel.FIRST_TOUCH:
        weights = {counted[0].step_id: 1}
    elif model is AttributionModel.LAST_TOUCH:
        weights = {counted[-1].step_id: 1}
    else:
        weights = _touches_per_step(counted)
    total = sum(weights.values())
    cents = _split_cents(_cents(revenue), list(weights.values()))
    return [
        Credit(step_id, weight / total, share_cents / 100)
        for (step_id, weight), share_cents in zip(weights.items(), cents, strict=True)
    ]


def credited_step(credits: Sequence[Credit]) -> str | None:
    """The step with the largest share; on a tie the later credit (`credit` orders them by
    latest touch, so the step that touched last). None without credits."""
    best: Credit | None = None
    for entry in credits:
        if best is None or entry.share >= best.share:
            best = entry
    return best.step_id if best is not None else None


def is_conversion(
    goal: Goal, *, kind: str, value: float | None, entered_at: datetime, at: datetime
) -> bool:
    """Whether an interaction of `kind` worth `value` at `at` meets `goal` for an enrolment
    that entered at `entered_at` (a goal with a minimum value needs a value)."""
    if kind != goal.kind:
        return False
    if goal.min_value is not None and (value is None or value < goal.min_value):
        return False
    return entered_at <= at <= entered_at + timedelta(days=goal.window_days)


def _touches_per_step(counted: Sequence[Touch]) -> dict[str, int]:
    """Touches per step, keyed in order of each step's latest touch."""
    weights: dict[str, int] = {}
    for touch in counted:
        weights[touch.step_id] = weights.pop(touch.step_id, 0) + 1
    return weights


def _cents(revenue: float | None) -> int:
    return 0 if revenue is None else round(revenue * 100)


def _split_cents(total: int, weights: Sequence[int]) -> list[int]:
    """`total` cents in proportion to `weights`, summing to `total` exactly: each part its
    floor, then the cents left over one each to the largest remainders (ties: the later part).

    A negative total (a refund) is split as its size and given back its sign.
    """
    sign, size, whole = (-1 if total < 0 else 1), abs(total), sum(weights)
    parts = [size * w // whole for w in weights]
    remainders = [size * w % whole for w in weights]
    left = size - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (remainders[i], i), reverse=True)
    for i in by_remainder[:left]:
        parts[i] += 1
    return [sign * p for p in parts]
