"""Conversions through HTTP and Kafka: a goal interaction within the window converts an
enrolment once (also after the contact exited), its revenue credited to the steps that
touched the contact by the campaign's model; the holdout arm measures the lift."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from crm_campaigns.settings import CampaignsSettings
from crm_contracts import campaigns as cp
from tests.integration.campaigns.conftest import (
    Campaigns,
    consent,
    contact,
    published,
    resolved,
    stats,
)
from tests.support.harness import T0, Replicas, of_type
from tests.support.kafka import eventually

EMAIL_CONSENT = {"type": "consent", "purpose": "marketing", "channel": "email"}
TWO_STEPS = [
    {"id": "s1", "channel": "email", "template_ref": "welcome"},
    {"id": "s2", "channel": "email", "template_ref": "offer", "wait_seconds": 86400},
]
PURCHASE = {"kind": "purchase", "window_days": 30}


def step(found: dict[str, Any], step_id: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [s for s in found["steps"] if s["step_id"] == step_id]
    [entry] = entries
    return entry


def conversions(events: list[Any]) -> list[cp.CampaignConverted]:
    return [e.data_as(cp.CampaignConverted) for e in of_type(events, cp.CAMPAIGN_CONVERTED)]


def click(who: str, campaign_id: str, step_id: str, **at: float) -> Any:
    return resolved(
        "email_clicked",
        who,
        campaign_id=campaign_id,
        step_id=step_id,
        channel="email",
        time=T0 + timedelta(**at),
    )


def purchase(who: str, amount: str, **at: float) -> Any:
    return resolved("purchase", who, value=amount, time=T0 + timedelta(**at))


async def both_steps_sent(service: Campaigns, *contacts: str) -> None:
    """Step s1 goes out at entry, s2 a day later; then the contacts exit, completed."""
    for who in contacts:
        await service.wait_enrolments(who, lambda es: len(es) == 1)
        assert len(await service.steps_due(who)) == 1
    service.clock.advance(days=1)
    for who in contacts:
        [done] = await service.wait_enrolments(who, lambda es: es[0]["status"] == "exited")
        assert done["exit_reason"] == "completed"


async def test_a_purchase_after_exit_within_the_window_converts_once_with_its_revenue(
    service: Campaigns,
) -> None:
    segment_id = await service.segment(EMAIL_CONSENT)
    campaign_id = await service.launch(segment_id, steps=TWO_STEPS, goal=PURCHASE)
    who, late = contact(), contact()
    await service.publish(consent(who, granted=True), consent(late, granted=True))
    await both_steps_sent(service, who, late)

    await service.publish(
        click(who, campaign_id, "s2", days=1, hours=1),
        click(late, campaign_id, "s2", days=1, hours=1),
    )
    await service.publish(purchase(who, "120.00", days=6, hours=1))
    # Entered at T0 with a 30-day window: a purchase a minute after it is not a conversion.
    await service.publish(purchase(late, "90.00", days=30, minutes=1))

    events = await service.campaign_events(lambda es: bool(conversions(es)))
    [converted] = conversions(events)
    assert (converted.contact_id, converted.campaign_id) == (who, campaign_id)
    assert converted.attributed_step_id == "s2"
    assert converted.value is not None
    assert (converted.value.amount, converted.value.currency) == (Decimal("120.00"), "EUR")
    [credit] = converted.credits
    assert (credit.step_id, credit.share) == ("s2", 1.0)
    assert credit.revenue is not None and credit.revenue.amount == Decimal("120.00")

    # A second purchase converts nothing more.
    await service.publish(purchase(who, "80.00", days=7))
    assert len(conversions(await published(service))) == 1
    found = await stats(service, campaign_id)
    assert (found["enrolled"], found["sent"], found["touched"]) == (2, 4, 2)
    assert found["converted"] == 1
    assert Decimal(found["revenue"]) == Decimal("120.00")
    assert found["conversion_rate"] == 0.5
    assert (step(found, "s2")["converted"], Decimal(step(found, "s2")["revenue"])) == (
        1,
        Decimal("120.00"),
    )
    assert step(found, "s1")["converted"] == 0


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("first_touch", {"s1": "100.00"}),
        ("last_touch", {"s2": "100.00"}),
        ("linear", {"s1": "66.67", "s2": "33.33"}),
    ],
)
async def test_revenue_is_credited_to_the_first_the_last_or_every_touch_by_the_model(
    service: Campaigns, model: str, expected: dict[str, str]
) -> None:
    segment_id = await service.segment(EMAIL_CONSENT)
    campaign_id = await service.launch(
        segment_id, steps=TWO_STEPS, goal=PURCHASE, attribution_model=model
    )
    who = contact()
    await service.publish(consent(who, granted=True))
    await both_steps_sent(service, who)

    await service.publish(
        click(who, campaign_id, "s1", hours=1),
        click(who, campaign_id, "s1", hours=2),
        click(who, campaign_id, "s2", days=1, hours=1),
        purchase(who, "100.00", days=2),
    )

    events = await service.campaign_events(lambda es: bool(conversions(es)))
    [converted] = conversions(events)
    assert converted.attribution_model == model
    credited = {c.step_id: c.revenue.amount for c in converted.credits if c.revenue}
    assert credited == {s: Decimal(amount) for s, amount in expected.items()}
    assert sum(credited.values()) == Decimal("100.00")
    assert converted.attributed_step_id == max(expected, key=lambda s: Decimal(expected[s]))
    if model == "linear":
        shares = {c.step_id: c.share for c in converted.credits}
        assert shares == {"s1": pytest.approx(2 / 3), "s2": pytest.approx(1 / 3)}
    found = await stats(service, campaign_id)
    by_step = {s["step_id"]: Decimal(s["revenue"]) for s in found["steps"]}
    assert by_step == {"s1": Decimal(0), "s2": Decimal(0)} | {
        s: Decimal(amount) for s, amount in expected.items()
    }


async def test_a_purchase_below_the_goals_minimum_value_is_not_a_conversion(
    service: Campaigns,
) -> None:
    segment_id = await service.segment(EMAIL_CONSENT)
    goal = {**PURCHASE, "min_value": 50}
    campaign_id = await service.launch(segment_id, steps=TWO_STEPS, goal=goal)
    who = contact()
    await service.publish(consent(who, granted=True))
    await service.wait_enrolments(who, lambda es: len(es) == 1)

    await service.publish(purchase(who, "49.99", hours=1))
    assert (await stats(service, campaign_id))["converted"] == 0
    [enrolment] = await service.enrolments(who)
    assert enrolment["status"] == "active"

    await service.publish(purchase(who, "50.00", hours=2))
    [converted] = conversions(await service.campaign_events(lambda es: bool(conversions(es))))
    assert converted.value is not None and converted.value.amount == Decimal("50.00")
    [enrolment] = await service.wait_enrolments(who, lambda es: es[0]["status"] == "exited")
    assert enrolment["exit_reason"] == "converted"


async def test_lift_is_the_treated_conversion_rate_minus_the_holdouts(
    service: Campaigns,
) -> None:
    segment_id = await service.segment(EMAIL_CONSENT)
    campaign_id = await service.launch(
        segment_id,
        steps=[{"id": "s1", "channel": "email", "template_ref": "offer"}],
        goal=PURCHASE,
        holdout_share=0.5,
    )
    everyone = [contact() for _ in range(40)]
    await service.publish(*(consent(who, granted=True) for who in everyone))

    arms: dict[str, list[str]] = {"treated": [], "holdout": []}
    for who in everyone:
        [enrolment] = await service.wait_enrolments(who, lambda es: len(es) == 1)
        arms[enrolment["arm"]].append(who)
    treated, holdout = arms["treated"], arms["holdout"]
    assert len(treated) >= 4 and len(holdout) >= 4, arms

    async def decided() -> dict[str, Any] | None:
        found = await stats(service, campaign_id)
        s1 = step(found, "s1")
        return found if s1["sent"] + s1["held_back"] == len(everyone) else None

    found = await eventually(decided, timeout=30)
    assert (found["enrolled"], found["holdout"], found["sent"]) == (40, len(holdout), len(treated))
    assert step(found, "s1")["held_back"] == len(holdout)

    buyers = treated[: len(treated) // 2] + holdout[: len(holdout) // 4]
    await service.publish(*(purchase(who, "30.00", days=1) for who in buyers))

    found = await stats(service, campaign_id)
    treated_rate = (len(treated) // 2) / len(treated)
    holdout_rate = (len(holdout) // 4) / len(holdout)
    assert found["arms"]["treated"]["conversion_rate"] == pytest.approx(treated_rate)
    assert found["arms"]["holdout"]["conversion_rate"] == pytest.approx(holdout_rate)
    assert found["conversion_rate"] == pytest.approx(treated_rate)
    assert found["lift"] == pytest.approx(treated_rate - holdout_rate)
    assert found["converted"] == len(treated) // 2
    assert Decimal(found["revenue"]) == Decimal("30.00") * (len(treated) // 2)


async def test_a_purchase_delivered_twice_converts_once(service: Campaigns) -> None:
    segment_id = await service.segment(EMAIL_CONSENT)
    campaign_id = await service.launch(segment_id, steps=TWO_STEPS, goal=PURCHASE)
    who = contact()
    await service.publish(consent(who, granted=True))
    await service.wait_enrolments(who, lambda es: len(es) == 1)

    bought = purchase(who, "120.00", hours=1)
    await service.publish(bought)
    # The copy and then a later event of the contact, on the same partition: once the later
    # one is applied, the copy has been handled.
    later = resolved("page_view", who, time=T0 + timedelta(hours=2))
    await service.publish(bought, later)

    assert len(conversions(await published(service))) == 1
    found = await stats(service, campaign_id)
    assert found["converted"] == 1
    assert Decimal(found["revenue"]) == Decimal("120.00")


async def test_a_purchase_right_after_the_entering_event_converts_however_they_are_batched(
    replicas: Replicas[CampaignsSettings, Campaigns],
) -> None:
    service = await replicas.start()
    segment_id = await service.segment({"type": "did", "kind": "page_view", "within_days": 7})
    campaign_id = await service.launch(segment_id, steps=TWO_STEPS, goal=PURCHASE)
    who = contact()
    await service.publish(consent(who, granted=True, time=T0 - timedelta(hours=1)))

    # Both wait on the topic while no process runs, so the next one reads them in one batch.
    await replicas.stop(service)
    visit = resolved("page_view", who)
    bought = purchase(who, "40.00", hours=1)
    await service.publish_on(service.settings.interactions_topic, [visit, bought])
    service = await replicas.start()
    await service.wait_applied(visit.id, bought.id)

    [enrolment] = await service.enrolments(who)
    assert enrolment["entered_at"] == T0.isoformat().replace("+00:00", "Z")
    assert enrolment["exit_reason"] == "converted"
    found = await stats(service, campaign_id)
    assert (found["converted"], Decimal(found["revenue"])) == (1, Decimal("40.00"))
