"""Journeys through HTTP and Kafka: a contact enters a segment, is enrolled, its steps go out
when due; a complaint holds them; a withdrawn consent stops them."""

from __future__ import annotations

from datetime import timedelta

from crm_contracts import campaigns as cp
from tests.integration.campaigns.conftest import (
    Campaigns,
    case_opened,
    case_resolved,
    consent,
    contact,
    resolved,
    score_changed,
)
from tests.support.harness import T0, of_type

HIGH_CHURN = {
    "type": "all",
    "rules": [
        {"type": "churn_band", "bands": ["high"]},
        {"type": "not", "rule": {"type": "open_case", "category": "complaint"}},
    ],
}
TWO_STEPS = [
    {"id": "offer", "channel": "email", "template_ref": "retention-offer"},
    {
        "id": "reminder",
        "channel": "email",
        "template_ref": "retention-reminder",
        "wait_seconds": 259200,
    },
]


async def test_high_churn_risk_enrols_and_a_complaint_holds_the_next_step_until_resolved(
    service: Campaigns,
) -> None:
    segment_id = await service.segment(HIGH_CHURN)
    campaign_id = await service.launch(segment_id, steps=TWO_STEPS)
    who = contact()
    await service.publish(consent(who, granted=True), score_changed(who, band="high"))

    [enrolment] = await service.wait_enrolments(who, lambda es: len(es) == 1)
    assert enrolment["campaign_id"] == campaign_id
    assert enrolment["entered_at"] == T0.isoformat().replace("+00:00", "Z")
    [offer] = await service.steps_due(who)
    due = offer.data_as(cp.CampaignStepDue)
    assert (due.step_id, due.channel, due.template_ref) == ("offer", "email", "retention-offer")

    case_id, opened = case_opened(who, time=T0 + timedelta(days=1))
    await service.publish(opened)
    service.clock.advance(days=3)
    [held] = await service.wait_enrolments(who, lambda es: es[0]["held"])
    assert held["next_step_id"] == "reminder"
    assert len(await service.steps_due(who)) == 1

    # The held step goes out when the complaint is resolved, not before.
    await service.publish(case_resolved(who, case_id, time=T0 + timedelta(days=3, hours=1)))
    [waiting] = await service.wait_enrolments(who, lambda es: not es[0]["held"])
    assert waiting["due_at"] == "2026-11-26T10:00:00Z"
    service.clock.advance(hours=1)
    await service.wait_enrolments(who, lambda es: es[0]["status"] == "exited")
    sent = await service.steps_due(who)
    assert [s.data_as(cp.CampaignStepDue).step_id for s in sent] == ["offer", "reminder"]
    events = await service.campaign_events(lambda es: bool(of_type(es, cp.CAMPAIGN_EXITED)))
    [exited] = of_type(events, cp.CAMPAIGN_EXITED)
    assert exited.data_as(cp.CampaignExited).reason == cp.ExitReason.COMPLETED


async def test_a_withdrawn_consent_stops_a_due_step(service: Campaigns) -> None:
    segment_id = await service.segment(HIGH_CHURN)
    await service.launch(segment_id, steps=TWO_STEPS)
    who = contact()
    await service.publish(consent(who, granted=True), score_changed(who, band="high"))
    assert len(await service.steps_due(who)) == 1

    # A late, older consent_given does not undo the newer withdrawal.
    await service.publish(
        consent(who, granted=False, time=T0 + timedelta(hours=2)),
        consent(who, granted=True, time=T0 + timedelta(hours=1)),
    )
    [enrolment] = await service.wait_enrolments(who, lambda es: es[0]["status"] == "exited")
    assert enrolment["exit_reason"] == "consent_withdrawn"
    service.clock.advance(days=4)
    assert len(await service.steps_due(who)) == 1


async def test_a_signup_that_gives_consent_is_sent_its_first_step_before_contacts_confirms_it(
    service: Campaigns,
) -> None:
    segment_id = await service.segment({"type": "did", "kind": "signup", "within_days": 30})
    await service.launch(segment_id)
    who = contact()
    email = {"purpose": "marketing", "channel": "email", "granted": True}
    await service.publish(resolved("signup", who, consent=email))
    [due] = await service.steps_due(who)
    assert due.data_as(cp.CampaignStepDue).step_id == "s1"
    [enrolment] = await service.enrolments(who)
    assert enrolment["exit_reason"] == "completed"
