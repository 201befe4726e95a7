"""Events published by the scoring service on `crm.scores.v1` and `crm.scores.current.v1`."""

from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, FiniteFloat, model_validator

from crm_contracts.base import ContactId, EventId, EventModel, Money, SignedAmount

SCORE_CHANGED = "crm.score.changed"
SCORE_CURRENT = "crm.score.current"

# Deltas of churn_risk are rounded to 6 places so that 0.35 - 0.25 reads 0.1 on the wire.
CHURN_RISK_DELTA_PLACES = 6
CHURN_RISK_TOLERANCE = 1e-6


class ValueTier(StrEnum):
    """Value tier of a contact, lowest first."""

    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"
    PLATINUM = "platinum"


class ChurnBand(StrEnum):
    """Churn risk in words."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ScoreName(StrEnum):
    """One of the scores the scoring service keeps."""

    ENGAGEMENT = "engagement"
    RECENCY = "recency"
    FREQUENCY = "frequency"
    MONETARY = "monetary"
    VALUE_TIER = "value_tier"
    CLV = "clv"
    CHURN_RISK = "churn_risk"


ModelVersion = Annotated[
    str,
    Field(min_length=1, max_length=64, description="Version of the scoring model, e.g. 2026.1."),
]
Quintile = Annotated[int, Field(ge=1, le=5)]


class Scores(EventModel):
    """Every score of one contact at one moment."""

    engagement: int = Field(ge=0, le=100, description="How engaged lately, 0 to 100.")
    recency: Quintile = Field(description="RFM recency, 1 (long ago) to 5 (just now).")
    frequency: Quintile = Field(description="RFM frequency, 1 (rarely) to 5 (often).")
    monetary: Quintile = Field(description="RFM monetary, 1 (little) to 5 (much).")
    value_tier: ValueTier
    clv: Money = Field(description="Predicted customer lifetime value.")
    churn_risk: FiniteFloat = Field(ge=0, le=1, description="Probability of churn, 0 to 1.")
    churn_band: ChurnBand


class ScoreDeltas(EventModel):
    """New minus old, per score."""

    engagement: int
    recency: int
    frequency: int
    monetary: int
    clv: SignedAmount
    churn_risk: FiniteFloat

    @classmethod
    def between(cls, old: Scores, new: Scores) -> Self:
        """Differences from old to new."""
        return cls(
            engagement=new.engagement - old.engagement,
            recency=new.recency - old.recency,
            frequency=new.frequency - old.frequency,
            monetary=new.monetary - old.monetary,
            clv=new.clv.amount - old.clv.amount,
            churn_risk=round(new.churn_risk - old.churn_risk, CHURN_RISK_DELTA_PLACES),
        )


class ScoreReason(EventModel):
    """Why a score moved, in plain words."""

    text: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        examples=["purchase 120 EUR: +18 value"]
    )
    score: ScoreName
    contribution: FiniteFloat = Field(description="How much it moved that score (signed).")


class ScoreChanged(EventModel):
    """A contact's scores changed: old and new values, why, and what caused it."""

    contact_id: ContactId
    model_version: ModelVersion
    old: Scores | None = Field(default=None, description="Absent for a contact's first scores.")
    new: Scores
    deltas: ScoreDeltas | None = Field(default=None, description="Absent when old is absent.")
    tier_changed: bool = Field(description="value_tier differs from old (true when no old).")
    band_changed: bool = Field(description="churn_band differs from old (true when no old).")
    reasons: list[ScoreReason] = Field(default_factory=list, max_length=20)
    cause_event_id: EventId = Field(description="The event that caused the change.")

    @classmethod
    def from_scores(
        cls,
        *,
        contact_id: str,
        model_version: str,
        old: Scores | None,
        new: Scores,
        reasons: list[ScoreReason],
        cause_event_id: str,
    ) -> Self:
        """Build the event, deriving deltas and change flags from old and new."""
        return cls(
            contact_id=contact_id,
            model_version=model_version,
            old=old,
            new=new,
            deltas=None if old is None else ScoreDeltas.between(old, new),
            tier_changed=old is None or old.value_tier != new.value_tier,
            band_changed=old is None or old.churn_band != new.churn_band,
            reasons=reasons,
            cause_event_id=cause_event_id,
        )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        old, new, deltas = self.old, self.new, self.deltas
        if old is None:
            if deltas is not None:
                raise ValueError("deltas must be absent when old is absent")
        else:
            if old.clv.currency != new.clv.currency:
                raise ValueError("old and new clv must use one currency")
            if deltas is None:
                raise ValueError("deltas are required when old is present")
            # The differences `ScoreDeltas.between` would hold, without validating a model:
            # valid scores always give valid deltas (clv >= 0 keeps its difference in range).
            if (
                deltas.engagement != new.engagement - old.engagement
                or deltas.recency != new.recency - old.recency
                or deltas.frequency != new.frequency - old.frequency
                or deltas.monetary != new.monetary - old.monetary
                or deltas.clv != new.clv.amount - old.clv.amount
            ):
                raise ValueError("deltas must equal new minus old")
            churn_risk = round(new.churn_risk - old.churn_risk, CHURN_RISK_DELTA_PLACES)
            if abs(deltas.churn_risk - churn_risk) > CHURN_RISK_TOLERANCE:
                raise ValueError("deltas.churn_risk must equal new minus old")
        if self.tier_changed != (old is None or old.value_tier != new.value_tier):
            raise ValueError("tier_changed must say whether value_tier changed")
        if self.band_changed != (old is None or old.churn_band != new.churn_band):
            raise ValueError("band_changed must say whether churn_band changed")
        return self


class ScoreCurrent(EventModel):
    """The latest scores of a contact (compacted topic; a tombstone follows an erasure)."""

    contact_id: ContactId
    model_version: ModelVersion
    scores: Scores
    cause_event_id: EventId | None = Field(
        default=None, description="The event that produced these scores."
    )


EVENTS: dict[str, type[EventModel]] = {
    SCORE_CHANGED: ScoreChanged,
    SCORE_CURRENT: ScoreCurrent,
}
