"""The contract's Scores of a score card are reused between changes: what they say on the wire
is what a fresh model of the same card says, numbers spelled as the card spells them."""

from __future__ import annotations

from decimal import Decimal

from crm_contracts.scores import Scores
from crm_scoring.domain import ScoreCard
from crm_scoring.handlers import to_scores


def card(clv: Decimal = Decimal("120.50"), churn_risk: float = 0.25) -> ScoreCard:
    return ScoreCard(
        engagement=40,
        engagement_band="medium",
        recency=3,
        frequency=2,
        monetary=4,
        value_tier="gold",
        clv=clv,
        churn_risk=churn_risk,
        churn_band="medium",
    )


def fresh(c: ScoreCard, currency: str) -> Scores:
    return Scores.model_validate(
        {
            "engagement": c.engagement,
            "recency": c.recency,
            "frequency": c.frequency,
            "monetary": c.monetary,
            "value_tier": c.value_tier,
            "clv": {"amount": c.clv, "currency": currency},
            "churn_risk": c.churn_risk,
            "churn_band": c.churn_band,
        }
    )


def test_a_card_seen_again_says_what_a_fresh_model_says() -> None:
    first = to_scores(card(), "EUR")
    again = to_scores(card(), "EUR")

    assert (
        again.model_dump_json() == first.model_dump_json() == fresh(card(), "EUR").model_dump_json()
    )


def test_numbers_equal_but_spelled_otherwise_keep_their_own_spelling() -> None:
    cards = [
        card(clv=Decimal("120.5")),
        card(clv=Decimal("120.50")),
        card(churn_risk=0.0),
        card(churn_risk=-0.0),
    ]
    for c in cards:
        assert to_scores(c, "EUR").model_dump_json() == fresh(c, "EUR").model_dump_json()
    assert to_scores(cards[0], "EUR").clv.amount == Decimal("120.5")
    assert str(to_scores(cards[1], "EUR").clv.amount) == "120.50"


def test_the_currency_is_part_of_what_is_reused() -> None:
    assert to_scores(card(), "EUR").clv.currency == "EUR"
    assert to_scores(card(), "GBP").clv.currency == "GBP"
