"""Merges and erasures through HTTP and Kafka: a merged contact's enrolments, sends and
consent fold into the survivor's; an erased contact's enrolments exit, its view goes, and
late events about it are dropped."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from crm_contracts import CloudEvent
from crm_contracts import campaigns as cp
from crm_contracts import privacy as pv
from tests.integration.campaigns.conftest import (
    Campaigns,
    consent,
    contact,
    erasure_requested,
    merged,
    resolved,
    score_changed,
)
from tests.support.harness import T0, Replicas

HIGH_CHURN = {"type": "churn_band", "bands": ["high"]}
PLATINUM = {"type": "value_tier", "tiers": ["platinum"]}
SIGNED_UP = {"type": "did", "kind": "signup", "at_least": 1, "within_days": 30}
OFFER_THEN_REMINDER = [
    {"id": "offer", "channel": "email", "template_ref": "offer"},
    {"id": "reminder", "channel": "email", "template_ref": "reminder", "wait_seconds": 259200},
]
VIP_TWO_STEPS = [
    {"id": "vip-1", "channel": "email", "template_ref": "vip-1"},
    {"id": "vip-2", "channel": "email", "template_ref": "vip-2", "wait_seconds": 86400},
]


async def sent_to(service: Campaigns, survivor: str, *others: str) -> list[cp.CampaignStepDue]:
    """Every step_due so far addressed to these contacts, once the step timer is idle for
    the survivor (which holds the merged contacts' enrolments and sends)."""
    await service.steps_due(survivor)
    ids = [survivor, *others]
    rows = await service.fetch(
        "SELECT event_id FROM sends WHERE contact_id = ANY($1::text[]) AND outcome = 'sent'", ids
    )
    wanted = {r["event_id"] for r in rows}
    events = await service.campaign_events(lambda es: wanted <= {e.id for e in es})
    dues = [e.data_as(cp.CampaignStepDue) for e in events if e.type == cp.CAMPAIGN_STEP_DUE]
    return [d for d in dues if d.contact_id in ids]


def by_campaign(enrolments: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in enrolments:
        out.setdefault(e["campaign_id"], []).append(e)
    return out


async def preview(service: Campaigns, rule: dict[str, Any]) -> dict[str, Any]:
    response = await service.send("POST", "/v1/segments/preview", {"rule": rule})
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def erasures_completed(service: Campaigns, request: CloudEvent) -> list[pv.ErasureCompleted]:
    request_id = request.data_as(pv.ErasureRequested).request_id

    def answers(events: list[CloudEvent]) -> list[pv.ErasureCompleted]:
        return [
            e.data_as(pv.ErasureCompleted)
            for e in events
            if e.type == pv.PRIVACY_ERASURE_COMPLETED
            and e.data_as(pv.ErasureCompleted).request_id == request_id
        ]

    events = await service.read_events(service.settings.privacy_topic, lambda es: bool(answers(es)))
    return answers(events)


async def test_a_merge_keeps_one_enrolment_per_campaign_and_sends_no_step_twice(
    service: Campaigns,
) -> None:
    retention = await service.launch(await service.segment(HIGH_CHURN), steps=OFFER_THEN_REMINDER)
    vip = await service.launch(await service.segment(PLATINUM), steps=VIP_TWO_STEPS)
    survivor, other = contact(), contact()
    await service.publish(
        consent(survivor, granted=True),
        score_changed(survivor, band="high"),
        consent(other, granted=True),
        score_changed(other, band="high", tier="platinum"),
    )
    await service.wait_enrolments(other, lambda es: len(es) == 2)
    assert len(await service.steps_due(survivor)) == 1
    assert len(await service.steps_due(other)) == 2  # its offer and its first VIP step
    [own] = await service.enrolments(survivor)
    theirs = by_campaign(await service.enrolments(other))

    await service.publish(merged(survivor, other, time=T0 + timedelta(hours=1)))
    after = by_campaign(
        await service.wait_enrolments(survivor, lambda es: len(es) == 3, timeout=30)
    )
    assert [e["id"] for e in after[retention] if e["status"] == "active"] == [own["id"]]
    [folded] = [e for e in after[retention] if e["id"] == theirs[retention][0]["id"]]
    assert (folded["status"], folded["exit_reason"]) == ("exited", "merged")
    [moved] = after[vip]
    assert (moved["id"], moved["status"], moved["contact_id"]) == (
        theirs[vip][0]["id"],
        "active",
        survivor,
    )
    assert moved["next_step_id"] == "vip-2"
    # The merged id answers with its survivor's enrolments.
    assert {e["id"] for e in await service.enrolments(other)} == {
        e["id"] for es in after.values() for e in es
    }

    service.clock.advance(days=3, hours=1)
    await service.wait_enrolments(
        survivor, lambda es: all(e["status"] == "exited" for e in es), timeout=30
    )
    sent = Counter((d.enrolment_id, d.step_id) for d in await sent_to(service, survivor, other))
    assert sent == Counter(
        {
            (own["id"], "offer"): 1,
            (own["id"], "reminder"): 1,
            (theirs[retention][0]["id"], "offer"): 1,
            (moved["id"], "vip-1"): 1,
            (moved["id"], "vip-2"): 1,
        }
    )
    dues = await sent_to(service, survivor, other)
    assert {d.contact_id for d in dues if d.step_id in ("reminder", "vip-2")} == {survivor}


async def test_after_a_merge_late_events_for_the_merged_id_count_for_the_survivor(
    service: Campaigns,
) -> None:
    retention = await service.launch(await service.segment(HIGH_CHURN), steps=OFFER_THEN_REMINDER)
    survivor, other = contact(), contact()
    # The survivor granted email marketing; the merged contact withdrew it later.
    await service.publish(
        consent(survivor, granted=True, time=T0),
        consent(other, granted=True, time=T0 - timedelta(days=10)),
        consent(other, granted=False, time=T0 + timedelta(hours=1)),
        merged(survivor, other, time=T0 + timedelta(hours=2)),
    )
    # A late score change for the merged id: the survivor enters the segment and the campaign.
    await service.publish(score_changed(other, band="high", time=T0 + timedelta(hours=3)))
    [enrolment] = await service.wait_enrolments(survivor, lambda es: len(es) == 1)
    assert (enrolment["campaign_id"], enrolment["contact_id"]) == (retention, survivor)
    assert enrolment["entered_at"] == "2026-11-23T12:00:00Z"

    # The merged contact's withdrawal, newer than the survivor's grant, wins: nothing is sent.
    service.clock.advance(hours=3)
    [stopped] = await service.wait_enrolments(survivor, lambda es: es[0]["status"] == "exited")
    assert stopped["exit_reason"] == "consent_withdrawn"
    assert await sent_to(service, survivor, other) == []
    members = await preview(service, HIGH_CHURN)
    assert (members["count"], members["sample"]) == (1, [survivor])


async def test_an_erasure_exits_the_contact_forgets_its_view_and_drops_late_events(
    service: Campaigns,
) -> None:
    retention = await service.launch(await service.segment(HIGH_CHURN), steps=OFFER_THEN_REMINDER)
    welcome = await service.launch(await service.segment(SIGNED_UP))
    who = contact()
    await service.publish(consent(who, granted=True), score_changed(who, band="high"))
    await service.wait_enrolments(who, lambda es: len(es) == 1)
    assert len(await service.steps_due(who)) == 1
    assert (await preview(service, HIGH_CHURN))["count"] == 1

    request = erasure_requested(who, time=T0 + timedelta(hours=1))
    await service.publish(request)
    [enrolment] = await service.wait_enrolments(who, lambda es: es[0]["status"] == "exited")
    assert (enrolment["campaign_id"], enrolment["exit_reason"]) == (retention, "erased")
    found = await preview(service, HIGH_CHURN)
    assert (found["count"], found["evaluated"]) == (0, 0)
    [answer] = await erasures_completed(service, request)
    assert (answer.service, answer.contact_id) == ("campaigns", who)

    # A late signup for the erased id would enter the welcome series: it is dropped.
    await service.publish(resolved("signup", who, time=T0 + timedelta(hours=2)))
    assert await service.enrolments(who) == [enrolment]
    assert (await preview(service, SIGNED_UP))["evaluated"] == 0
    service.clock.advance(days=4)
    assert len(await service.steps_due(who)) == 1  # the offer sent before; no reminder

    # The figures hold no personal data and survive.
    stats = await service.ok(f"/v1/campaigns/{retention}/stats")
    assert (stats["enrolled"], stats["sent"]) == (1, 1)
    assert (await service.ok(f"/v1/campaigns/{welcome}/stats"))["enrolled"] == 0


async def test_a_batch_with_an_erasure_and_late_events_for_the_contact_keeps_nothing(
    replicas: Replicas[Any, Campaigns], service: Campaigns
) -> None:
    retention = await service.launch(await service.segment(HIGH_CHURN), steps=OFFER_THEN_REMINDER)
    await service.launch(await service.segment(SIGNED_UP))
    who = contact()
    await service.publish(consent(who, granted=True), score_changed(who, band="high"))
    assert len(await service.steps_due(who)) == 1

    # Stopped, so that the restarted consumer finds every event at once, in one batch.
    await replicas.stop(service)
    request = erasure_requested(who, time=T0 + timedelta(hours=1))
    late = [
        resolved("signup", who, time=T0 + timedelta(hours=2)),
        score_changed(who, band="high", tier="platinum", time=T0 + timedelta(hours=2)),
        consent(who, granted=True, channel="sms", time=T0 + timedelta(hours=2)),
    ]
    await service.publish_on(service.settings.privacy_topic, [request])
    for event in late:
        topic = {
            "interaction": service.settings.interactions_topic,
            "score": service.settings.scores_topic,
            "contact": service.settings.contacts_topic,
        }[event.type.split(".")[1]]
        await service.publish_on(topic, [event])
    service = await replicas.start()
    await service.wait_applied(request.id, *(e.id for e in late))

    enrolments = await service.enrolments(who)
    assert all(e["status"] == "exited" and e["exit_reason"] == "erased" for e in enrolments)
    assert retention in {e["campaign_id"] for e in enrolments}
    assert (await preview(service, {"type": "not", "rule": HIGH_CHURN}))["evaluated"] == 0
    [answer] = await erasures_completed(service, request)
    assert answer.contact_id == who
    service.clock.advance(days=4)
    assert len(await service.steps_due(who)) == 1


async def test_a_batch_that_proves_a_merge_folds_what_follows_into_the_survivor(
    replicas: Replicas[Any, Campaigns], service: Campaigns
) -> None:
    retention = await service.launch(await service.segment(HIGH_CHURN), steps=OFFER_THEN_REMINDER)
    vip = await service.launch(await service.segment(PLATINUM), steps=VIP_TWO_STEPS)
    survivor, other = contact(), contact()
    await service.publish(
        consent(survivor, granted=True),
        score_changed(survivor, band="high"),
        consent(other, granted=True),
    )
    [own] = await service.wait_enrolments(survivor, lambda es: len(es) == 1)
    assert len(await service.steps_due(survivor)) == 1

    # In one batch: the merged contact turns high risk (it would enter retention), the merge,
    # then a late score change for the merged id that makes the survivor platinum.
    await replicas.stop(service)
    before = score_changed(other, band="high", time=T0 + timedelta(hours=1))
    merge = merged(survivor, other, time=T0 + timedelta(hours=2))
    after = score_changed(other, band="high", tier="platinum", time=T0 + timedelta(hours=3))
    await service.publish_on(service.settings.scores_topic, [before])
    await service.publish_on(service.settings.contacts_topic, [merge])
    await service.publish_on(service.settings.scores_topic, [after])
    service = await replicas.start()
    await service.wait_applied(before.id, merge.id, after.id)

    found = by_campaign(await service.enrolments(survivor))
    assert [e["id"] for e in found[retention] if e["status"] == "active"] == [own["id"]]
    assert all(e["exit_reason"] == "merged" for e in found[retention] if e["id"] != own["id"])
    [vip_enrolment] = found[vip]
    assert (vip_enrolment["contact_id"], vip_enrolment["status"]) == (survivor, "active")
    rows = await service.fetch("SELECT count(*) AS n FROM enrolments WHERE contact_id = $1", other)
    assert rows[0]["n"] == 0

    service.clock.advance(hours=3)
    sent = Counter((d.enrolment_id, d.step_id) for d in await sent_to(service, survivor, other))
    assert sent == Counter({(own["id"], "offer"): 1, (vip_enrolment["id"], "vip-1"): 1})
