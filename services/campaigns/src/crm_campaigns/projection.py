"""The contact projection: each consumed event, applied to a ContactView. Pure.

Every change is by event time: a consent older than the word already held changes nothing
(a late `consent_given` does not undo a newer withdrawal), a touchpoint is kept in time
order whatever order it arrived in, and a score change older than the one held is dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from crm_campaigns.domain import (
    ACTIVITY_KEEP,
    MAX_WINDOW_DAYS,
    ConsentState,
    ContactView,
    Touchpoint,
    consent_key,
)
from crm_contracts import contacts as ct
from crm_contracts import scores as sc

CLOSED_CASES_KEPT = 20


def apply_profile(view: ContactView, profile: ct.Profile) -> None:
    """The contact's traits as the profile states them (custom traits as `custom.<name>`)."""
    traits: dict[str, Any] = {
        name: value
        for name, value in profile.model_dump(exclude={"custom"}).items()
        if value is not None
    }
    traits.update({f"custom.{name}": value for name, value in profile.custom.items()})
    view.traits = traits


def apply_consent(
    view: ContactView, *, purpose: str, channel: str | None, granted: bool, at: datetime
) -> bool:
    """Record a word on consent unless a newer one is held; True when it changed the view."""
    key = consent_key(purpose, channel)
    held = view.consents.get(key)
    if held is not None and held.at > at:
        return False
    view.consents[key] = ConsentState(granted=granted, at=at)
    return held is None or held.granted != granted


def apply_scores(view: ContactView, scores: sc.Scores) -> None:
    view.value_tier = scores.value_tier.value
    view.churn_band = scores.churn_band.value
    view.churn_risk = scores.churn_risk
    view.engagement = scores.engagement
    view.clv = float(scores.clv.amount)


def apply_touchpoint(view: ContactView, *, kind: str, channel: str, at: datetime) -> None:
    """Keep an interaction for behaviour conditions: newest first, bounded in count and age."""
    kept = view.activity.get(kind, [])
    kept.append(Touchpoint(at=at, channel=channel))
    kept.sort(key=lambda t: t.at, reverse=True)
    horizon = kept[0].at - timedelta(days=MAX_WINDOW_DAYS)
    view.activity[kind] = [t for t in kept[:ACTIVITY_KEEP] if t.at > horizon]


def open_case(view: ContactView, case_id: str, category: str | None) -> None:
    view.open_cases[case_id] = category or ""


def close_case(view: ContactView, case_id: str) -> None:
    """The case is resolved or closed; its category is remembered in case it reopens."""
    category = view.open_cases.pop(case_id, None)
    if category is None:
        return
    view.closed_cases[case_id] = category
    while len(view.closed_cases) > CLOSED_CASES_KEPT:
        view.closed_cases.pop(next(iter(view.closed_cases)))


def reopen_case(view: ContactView, case_id: str) -> None:
    view.open_cases[case_id] = view.closed_cases.pop(case_id, "")


def fold(survivor: ContactView, merged: ContactView) -> None:
    """A merged contact's view folded into its survivor's: the newer consent per key, every
    touchpoint, every open case; the survivor's own traits, stage and scores win."""
    for key, state in merged.consents.items():
        held = survivor.consents.get(key)
        if held is None or state.at > held.at:
            survivor.consents[key] = state
    for kind, points in merged.activity.items():
        for point in points:
            apply_touchpoint(survivor, kind=kind, channel=point.channel, at=point.at)
    for case_id, category in merged.open_cases.items():
        survivor.open_cases.setdefault(case_id, category)
    for name, value in merged.traits.items():
        survivor.traits.setdefault(name, value)
    survivor.stage = survivor.stage or merged.stage
    if survivor.value_tier is None:
        survivor.value_tier, survivor.churn_band = merged.value_tier, merged.churn_band
        survivor.churn_risk, survivor.engagement = merged.churn_risk, merged.engagement
        survivor.clv = merged.clv
