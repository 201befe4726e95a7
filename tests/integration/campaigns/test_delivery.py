"""When steps go out, through HTTP and Kafka against the running service: frequency caps held
across workers, quiet hours on the contact's wall clock across a daylight-saving night, a
step sent once across restarts and replicas, holdout arms stable across re-entries, and
transactional steps that ignore caps and quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crm_campaigns.handlers.context import derived_id
from crm_campaigns.settings import CampaignsSettings
from crm_contracts import CloudEvent
from crm_contracts import campaigns as cp
from tests.integration.campaigns.conftest import (
    Campaigns,
    consent,
    contact,
    created,
    score_changed,
)
from tests.support.harness import T0, Replicas, of_type
from tests.support.kafka import eventually

HIGH_CHURN = {"type": "churn_band", "bands": ["high"]}
DAY = 86400
CAP_ONE_A_DAY = {"max_sends": 1, "window_seconds": DAY}


def iso(at: datetime) -> str:
    """A moment as the API writes it."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def entering(who: str, *, at: datetime = T0) -> list[CloudEvent]:
    """The events that put a contact, consenting to marketing email, in HIGH_CHURN."""
    return [consent(who, granted=True, time=at), score_changed(who, band="high", time=at)]


def step_of(event: CloudEvent) -> cp.CampaignStepDue:
    return event.data_as(cp.CampaignStepDue)


async def idle(service: Campaigns) -> None:
    """Wait until no enrolment is due by the service's clock and every event written has
    been published (so the topic holds all there is to see)."""

    async def settled() -> bool:
        rows = await service.fetch(
            "SELECT (SELECT count(*) FROM enrolments WHERE status = 'active' AND NOT held "
            "AND due_at <= $1) + (SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL) AS n",
            service.clock(),
        )
        return bool(rows[0]["n"] == 0)

    await eventually(settled, timeout=30)


async def all_steps_due(service: Campaigns) -> list[CloudEvent]:
    """Every step_due on the campaigns topic once the timers are idle, duplicates included."""
    await idle(service)
    sent = await service.fetch("SELECT event_id FROM sends WHERE outcome = 'sent'")
    ids = {r["event_id"] for r in sent}
    events = await service.campaign_events(
        lambda es: ids <= {e.id for e in of_type(es, cp.CAMPAIGN_STEP_DUE)}
    )
    return of_type(events, cp.CAMPAIGN_STEP_DUE)


def per_contact(events: list[CloudEvent]) -> dict[str, list[CloudEvent]]:
    found: dict[str, list[CloudEvent]] = {}
    for event in events:
        found.setdefault(step_of(event).contact_id, []).append(event)
    return found


async def enrol_all(service: Campaigns, people: list[str], *, campaigns: int) -> None:
    for who in people:
        await service.wait_enrolments(who, lambda es: len(es) == campaigns)


# ---- frequency caps


async def test_a_frequency_cap_holds_when_two_campaigns_fall_due_at_once_on_two_workers(
    replicas: Replicas[CampaignsSettings, Campaigns],
) -> None:
    # One due step per round on each worker, rounds back to back, and one contact due at a
    # time: the two workers race for that contact's two steps.
    first = await replicas.start(due_batch=1, step_tick_ms=10)
    await replicas.start(due_batch=1, step_tick_ms=10)
    await first.put("/v1/frequency-caps/email", CAP_ONE_A_DAY, status=200)
    segment_id = await first.segment(HIGH_CHURN)
    hour_later = [{"id": "s1", "channel": "email", "template_ref": "t-1", "wait_seconds": 3600}]
    for _ in range(2):
        await first.launch(segment_id, steps=hour_later)
    people = [contact() for _ in range(20)]
    # Contact i enters i seconds after T0: its two steps are due at due[who].
    entered = {who: T0 + timedelta(seconds=i) for i, who in enumerate(people)}
    due = {who: at + timedelta(hours=1) for who, at in entered.items()}
    await first.publish(*(e for who, at in entered.items() for e in entering(who, at=at)))
    await enrol_all(first, people, campaigns=2)

    for who in people:
        first.clock.set(due[who])
        await idle(first)
    sent = per_contact(await all_steps_due(first))
    assert sorted(sent) == sorted(people)
    assert {who: len(events) for who, events in sent.items()} == dict.fromkeys(people, 1)
    for who in people:
        enrolments = await first.enrolments(who)
        waiting = [e for e in enrolments if e["status"] == "active"]
        assert [e["due_at"] for e in waiting] == [iso(due[who] + timedelta(days=1))]

    # The cap defers the second step to the moment the first leaves the window; it is not lost.
    first.clock.set(due[people[0]] + timedelta(days=1, seconds=-1))
    assert all(len(events) == 1 for events in per_contact(await all_steps_due(first)).values())
    for who in people:
        first.clock.set(due[who] + timedelta(days=1))
        await idle(first)
    sent = per_contact(await all_steps_due(first))
    for who in people:
        assert [e.time for e in sent[who]] == [due[who], due[who] + timedelta(days=1)]
        enrolments = await first.enrolments(who)
        assert {step_of(e).campaign_id for e in sent[who]} == {e["campaign_id"] for e in enrolments}
        assert [e["exit_reason"] for e in enrolments] == ["completed", "completed"]


# ---- quiet hours

# Saturday 27 March 2027, the night Berlin and London spring forward (at 01:00 UTC).
SATURDAY_NOON = datetime(2027, 3, 27, 12, 0, tzinfo=UTC)
# 23:00 CET in Berlin, 22:00 GMT in London: both inside 21:00-08:00.
DUE = datetime(2027, 3, 27, 22, 0, tzinfo=UTC)
BERLIN_EIGHT = datetime(2027, 3, 28, 6, 0, tzinfo=UTC)  # 08:00 CEST
LONDON_EIGHT = datetime(2027, 3, 28, 7, 0, tzinfo=UTC)  # 08:00 BST


async def test_a_step_due_in_quiet_hours_across_a_daylight_saving_night_goes_out_at_eight_local(
    service: Campaigns,
) -> None:
    service.clock.set(SATURDAY_NOON)
    segment_id = await service.segment(HIGH_CHURN)
    await service.launch(
        segment_id,
        quiet_hours={"start": "21:00", "end": "08:00"},
        time_zone="Europe/Berlin",
        steps=[{"id": "s1", "channel": "email", "template_ref": "t-1", "wait_seconds": 36000}],
    )
    berlin, london, unknown = contact(), contact(), contact()
    await service.publish(
        created(berlin, timezone="Europe/Berlin", time=SATURDAY_NOON),
        created(london, timezone="Europe/London", time=SATURDAY_NOON),
        # No zone of its own: the campaign's, Berlin.
        created(unknown, time=SATURDAY_NOON),
        *(e for who in (berlin, london, unknown) for e in entering(who, at=SATURDAY_NOON)),
    )
    await enrol_all(service, [berlin, london, unknown], campaigns=1)

    service.clock.set(DUE)
    expected = {berlin: BERLIN_EIGHT, london: LONDON_EIGHT, unknown: BERLIN_EIGHT}
    for who, at in expected.items():
        [deferred] = await service.wait_enrolments(who, lambda es: es[0]["due_at"] != iso(DUE))
        assert deferred["due_at"] == iso(at)

    service.clock.set(BERLIN_EIGHT - timedelta(seconds=1))
    assert await all_steps_due(service) == []
    service.clock.set(BERLIN_EIGHT)
    sent = per_contact(await all_steps_due(service))
    assert sorted(sent) == sorted([berlin, unknown])
    assert [e.time for e in sent[berlin] + sent[unknown]] == [BERLIN_EIGHT, BERLIN_EIGHT]

    service.clock.set(LONDON_EIGHT - timedelta(seconds=1))
    assert london not in per_contact(await all_steps_due(service))
    service.clock.set(LONDON_EIGHT)
    [step] = per_contact(await all_steps_due(service))[london]
    assert step.time == LONDON_EIGHT


# ---- once, whatever the restarts and replicas


async def ledger_ids(service: Campaigns) -> dict[tuple[str, str], str]:
    rows = await service.fetch(
        "SELECT enrolment_id, step_id, event_id FROM sends WHERE outcome = 'sent'"
    )
    return {(r["enrolment_id"], r["step_id"]): r["event_id"] for r in rows}


def assert_each_step_once(events: list[CloudEvent], ledger: dict[tuple[str, str], str]) -> None:
    """One step_due per enrolment and step, with the id the ledger holds, derived from them."""
    keys = [(step_of(e).enrolment_id, step_of(e).step_id) for e in events]
    assert sorted(keys) == sorted(ledger)
    for event in events:
        key = (step_of(event).enrolment_id, step_of(event).step_id)
        assert event.id == ledger[key] == derived_id("due", *key)


async def test_a_restart_at_the_moment_a_step_is_due_sends_it_once(
    replicas: Replicas[CampaignsSettings, Campaigns],
) -> None:
    # One due step per round, so the stop is likely to fall between rounds of one moment.
    service = await replicas.start(due_batch=1)
    segment_id = await service.segment(HIGH_CHURN)
    hour_later = [{"id": "s1", "channel": "email", "template_ref": "t-1", "wait_seconds": 3600}]
    await service.launch(segment_id, steps=hour_later)
    people = [contact() for _ in range(10)]
    await service.publish(*(e for who in people for e in entering(who)))
    await enrol_all(service, people, campaigns=1)

    service.clock.advance(hours=1)
    await replicas.stop(service)
    restarted = await replicas.start(due_batch=1)
    events = await all_steps_due(restarted)
    assert sorted(per_contact(events)) == sorted(people)
    assert_each_step_once(events, await ledger_ids(restarted))


async def test_two_replicas_running_at_the_moment_a_step_is_due_send_it_once(
    replicas: Replicas[CampaignsSettings, Campaigns],
) -> None:
    first = await replicas.start(due_batch=1)
    await replicas.start(due_batch=1)
    segment_id = await first.segment(HIGH_CHURN)
    hour_later = [{"id": "s1", "channel": "email", "template_ref": "t-1", "wait_seconds": 3600}]
    await first.launch(segment_id, steps=hour_later)
    people = [contact() for _ in range(10)]
    await first.publish(*(e for who in people for e in entering(who)))
    await enrol_all(first, people, campaigns=1)

    first.clock.advance(hours=1)
    events = await all_steps_due(first)
    assert sorted(per_contact(events)) == sorted(people)
    assert_each_step_once(events, await ledger_ids(first))


# ---- holdout


async def test_holdout_arms_are_stable_across_re_entries_and_held_out_contacts_get_nothing(
    service: Campaigns,
) -> None:
    segment_id = await service.segment(HIGH_CHURN)
    await service.launch(
        segment_id,
        holdout_share=0.5,
        reentry_days=1,
        steps=[
            {"id": "s1", "channel": "email", "template_ref": "t-1"},
            {"id": "s2", "channel": "email", "template_ref": "t-2", "wait_seconds": 3600},
        ],
    )
    people = [contact() for _ in range(40)]

    async def journey(at: datetime, entries: int) -> None:
        """Enter the segment at `at` and wait until each contact completed its way."""
        service.clock.set(at)
        await service.publish(*(score_changed(who, band="high", time=at) for who in people))
        await enrol_all(service, people, campaigns=entries)
        service.clock.set(at + timedelta(hours=1))
        for who in people:
            await service.wait_enrolments(who, lambda es: all(e["status"] == "exited" for e in es))

    await service.publish(*(consent(who, granted=True) for who in people))
    await journey(T0, entries=1)
    later = T0 + timedelta(hours=2)
    await service.publish(*(score_changed(who, band="low", time=later) for who in people))
    await journey(T0 + timedelta(days=1, hours=2), entries=2)

    arms: dict[str, str] = {}
    for who in people:
        first, second = await service.enrolments(who)
        assert (first["entry"], second["entry"]) == (1, 2)
        assert first["arm"] == second["arm"]
        assert [first["exit_reason"], second["exit_reason"]] == ["completed", "completed"]
        arms[who] = first["arm"]
    treated = {who for who, arm in arms.items() if arm == "treated"}
    held_out = {who for who, arm in arms.items() if arm == "holdout"}
    assert treated and held_out

    sent = per_contact(await all_steps_due(service))
    assert set(sent) == treated
    for who in treated:
        assert [step_of(e).step_id for e in sent[who]] == ["s1", "s2", "s1", "s2"]
    # Held-out steps are in the ledger as such: their journey went through every step.
    rows = await service.fetch(
        "SELECT contact_id, count(*) AS n FROM sends WHERE outcome = 'holdout' GROUP BY contact_id"
    )
    assert {r["contact_id"]: r["n"] for r in rows} == dict.fromkeys(held_out, 4)


# ---- transactional


def one_step(step_id: str, *, wait_seconds: int) -> list[dict[str, Any]]:
    return [
        {"id": step_id, "channel": "email", "template_ref": step_id, "wait_seconds": wait_seconds}
    ]


async def launch_pair(
    service: Campaigns, *, offer_after: int, receipt_after: int, **transactional: Any
) -> None:
    """With a cap of one email a day, a marketing campaign (step `offer`) and a transactional
    one (step `receipt`, `transactional` its other fields) on HIGH_CHURN."""
    await service.put("/v1/frequency-caps/email", CAP_ONE_A_DAY, status=200)
    segment_id = await service.segment(HIGH_CHURN)
    await service.launch(segment_id, steps=one_step("offer", wait_seconds=offer_after))
    await service.launch(
        segment_id,
        transactional=True,
        purpose="transactional",
        steps=one_step("receipt", wait_seconds=receipt_after),
        **transactional,
    )


async def test_a_transactional_step_goes_out_over_the_cap_and_in_quiet_hours(
    service: Campaigns,
) -> None:
    # 09:00 UTC, the test's now, is quiet.
    quiet = {"start": "08:00", "end": "20:00"}
    await launch_pair(service, offer_after=0, receipt_after=60, quiet_hours=quiet)
    who = contact()
    await service.publish(*entering(who))
    [offer] = await service.steps_due(who)
    assert step_of(offer).step_id == "offer"

    service.clock.advance(seconds=60)
    sent = await service.steps_due(who)
    assert [(step_of(e).step_id, e.time) for e in sent] == [
        ("offer", T0),
        ("receipt", T0 + timedelta(seconds=60)),
    ]


async def test_a_transactional_step_does_not_use_up_the_marketing_cap(
    service: Campaigns,
) -> None:
    await launch_pair(service, offer_after=60, receipt_after=0)
    who = contact()
    await service.publish(*entering(who))
    [receipt] = await service.steps_due(who)
    assert step_of(receipt).step_id == "receipt"

    service.clock.advance(seconds=60)
    sent = await service.steps_due(who)
    assert [(step_of(e).step_id, e.time) for e in sent] == [
        ("receipt", T0),
        ("offer", T0 + timedelta(seconds=60)),
    ]
