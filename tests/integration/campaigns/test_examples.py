"""The example campaigns the service ships, loaded at start: each enrols the contacts it is
for, within a second of the event; a restart does not create them again."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from crm_campaigns import holdout
from crm_campaigns.domain import Arm
from crm_campaigns.settings import CampaignsSettings
from crm_contracts import campaigns as cp
from tests.integration.campaigns.conftest import (
    Campaigns,
    case_opened,
    consent,
    contact,
    resolved,
    score_changed,
)
from tests.support.harness import T0, Replicas
from tests.support.kafka import eventually

SEGMENTS = {
    "seg-churn-risk-high",
    "seg-first-purchase",
    "seg-lapsed",
    "seg-new-signups",
    "seg-platinum",
}
CAMPAIGNS = {"cmp-retention", "cmp-cross-sell", "cmp-win-back", "cmp-welcome", "cmp-vip"}

ExampleReplicas = Replicas[CampaignsSettings, Campaigns]


async def with_examples(replicas: ExampleReplicas) -> Campaigns:
    """A process that loads the examples, once they are there (launched, evaluated)."""
    service = await replicas.start(load_examples=True)

    async def loaded() -> bool:
        campaigns = await service.ok("/v1/campaigns")
        segments = await service.ok("/v1/segments")
        return {c["id"] for c in campaigns} >= CAMPAIGNS and not any(
            s["backfilling"] for s in segments
        )

    await eventually(loaded, timeout=30)
    return service


def treated_contact(campaign_id: str, share: float) -> str:
    """A new contact id in the campaign's treated arm (the holdout is sent nothing)."""
    while True:
        who = contact()
        if holdout.arm_of(campaign_id, who, share) == Arm.TREATED:
            return who


def in_campaign(campaign_id: str) -> Any:
    return lambda es: [e for e in es if e["campaign_id"] == campaign_id]


def examples_rounds(service: Campaigns) -> int:
    """Rounds of the process's examples job that finished (committed): the first one loads
    whatever examples were not created before."""
    [job] = [job for job in service.app.state.runtime.jobs if job.name == "examples"]
    return int(job.rounds)


async def test_the_five_examples_are_created_and_active(replicas: ExampleReplicas) -> None:
    service = await with_examples(replicas)
    campaigns = await service.ok("/v1/campaigns")
    assert {c["id"]: c["status"] for c in campaigns} == dict.fromkeys(CAMPAIGNS, "active")
    assert {s["id"] for s in await service.ok("/v1/segments")} == SEGMENTS
    targets = {c["id"]: c["definition"]["segment_id"] for c in campaigns}
    assert targets["cmp-retention"] == "seg-churn-risk-high"
    assert targets["cmp-vip"] == "seg-platinum"


async def test_churn_risk_turning_high_enrols_in_retention_within_a_second(
    replicas: ExampleReplicas,
) -> None:
    service = await with_examples(replicas)
    who = treated_contact("cmp-retention", 0.1)
    await service.publish(consent(who, granted=True))

    change = score_changed(who, band="high")
    started = time.monotonic()
    await service.publish_on(service.settings.scores_topic, [change])
    [enrolment] = await service.wait_enrolments(who, in_campaign("cmp-retention"), timeout=10)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"enrolled {elapsed:.3f}s after the score change was published"
    assert enrolment["arm"] == "treated"
    [offer] = await service.steps_due(who)
    assert offer.data_as(cp.CampaignStepDue).step_id == "offer"

    # A complaint opened meanwhile holds the reminder until the case is resolved.
    _, opened = case_opened(who, time=T0 + timedelta(days=1))
    await service.publish(opened)
    service.clock.advance(days=3, hours=1)
    [held] = await service.wait_enrolments(who, lambda es: es[0]["held"])
    assert held["next_step_id"] == "reminder"
    assert len(await service.steps_due(who)) == 1


async def test_a_signup_enrols_in_the_welcome_series(replicas: ExampleReplicas) -> None:
    service = await with_examples(replicas)
    who = contact()
    await service.publish(consent(who, granted=True), resolved("signup", who, stage="prospect"))
    await service.wait_enrolments(who, in_campaign("cmp-welcome"))
    [welcome] = await service.steps_due(who)  # at once
    assert welcome.data_as(cp.CampaignStepDue).template_ref == "welcome-1"
    [enrolment] = in_campaign("cmp-welcome")(await service.enrolments(who))
    assert enrolment["next_step_id"] == "getting-started"


async def test_a_contact_reaching_platinum_enrols_in_vip(replicas: ExampleReplicas) -> None:
    service = await with_examples(replicas)
    who = contact()
    await service.publish(consent(who, granted=True), score_changed(who, tier="platinum"))
    [enrolment] = await service.wait_enrolments(who, in_campaign("cmp-vip"))
    assert enrolment["status"] == "active"


async def test_a_restart_does_not_create_the_examples_again(replicas: ExampleReplicas) -> None:
    service = await with_examples(replicas)
    # By hand: win-back completed, cross-sell paused and renamed.
    response = await service.send("POST", "/v1/campaigns/cmp-win-back/complete")
    assert response.status_code == 200, response.text
    response = await service.send("POST", "/v1/campaigns/cmp-cross-sell/pause")
    assert response.status_code == 200, response.text
    cross_sell = await service.ok("/v1/campaigns/cmp-cross-sell")
    renamed = {**cross_sell["definition"], "name": "Cross-sell, our way"}
    await service.put("/v1/campaigns/cmp-cross-sell", renamed, status=200)
    await replicas.stop(service)

    again = await replicas.start(load_examples=True)

    # Asked of the process, not of Postgres' table statistics: a backend sends those only
    # after 10 s idle, which this wait used to sit out.
    async def examples_job_ran() -> bool:
        return examples_rounds(again) >= 1

    await eventually(examples_job_ran, timeout=30)
    campaigns = {c["id"]: c for c in await again.ok("/v1/campaigns")}
    assert set(campaigns) == CAMPAIGNS
    assert campaigns["cmp-win-back"]["status"] == "completed"
    assert campaigns["cmp-cross-sell"]["status"] == "paused"
    assert campaigns["cmp-cross-sell"]["definition"]["name"] == "Cross-sell, our way"
    assert {s["id"] for s in await again.ok("/v1/segments")} == SEGMENTS
