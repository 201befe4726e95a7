"""What campaigns learns from the other services: contact, score, case and interaction
events update the contact projection; interactions also touch, branch and convert
enrolments; then every touched contact's segments are evaluated once (`Journeys.settle`).

A batch is read in a handful of statements (who is merged or erased, the contacts' views,
memberships, enrolments and conversions, the segments and campaigns) and written in a
handful, in the order of the batch (per contact, the partition's).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import asyncpg

from crm_campaigns import attribution, projection
from crm_campaigns.domain import Campaign, ContactView
from crm_campaigns.handlers.context import Context, Publisher
from crm_campaigns.handlers.journeys import Journeys
from crm_campaigns.repository import attribution as attribution_rows
from crm_campaigns.repository.enrolments import Enrolment
from crm_contracts import CloudEvent
from crm_contracts import campaigns as cp
from crm_contracts import cases as cs
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_contracts import scores as sc
from crm_contracts.base import Money
from crm_kit import subjects

# The events of other services that change what campaigns knows of a contact.
CONTACT_TYPES = (
    ct.CONTACT_CREATED,
    ct.CONTACT_UPDATED,
    ct.CONTACT_LIFECYCLE_CHANGED,
    ct.CONTACT_CONSENT_CHANGED,
)
CASE_TYPES = (cs.CASE_OPENED, cs.CASE_RESOLVED, cs.CASE_CLOSED, cs.CASE_REOPENED)
UNSUBSCRIBE = it.InteractionKind.UNSUBSCRIBE.value


async def record_events(
    conn: asyncpg.Connection, events: Sequence[CloudEvent], ctx: Context
) -> None:
    """Apply a batch of contact, score, case and interaction events."""
    now = await subjects.current(conn, {_contact_of(event) for event in events})
    items = [
        (event, now.survivor_of(_contact_of(event)))
        for event in events
        if not now.is_erased(_contact_of(event))
    ]
    if not items:
        return
    out = Publisher(ctx)
    work = await Journeys.load(conn, ctx, out, {contact_id for _, contact_id in items})
    goals = {c.goal.kind for c in work.campaigns.values() if c.goal is not None}
    for event, contact_id in items:
        if _is_goal(event, goals):
            # Who is enrolled by now decides what this interaction converts: the events before
            # it in the batch enter their segments first, as they would one by one.
            work.settle()
        _apply(work, ctx, event, contact_id)
        work.touch(contact_id, at=event.time, cause=event)
    work.settle()
    await work.flush(conn)


def _is_goal(event: CloudEvent, goals: set[str]) -> bool:
    return (
        event.type == it.INTERACTION_RESOLVED
        and event.data_as(it.InteractionResolved).kind in goals
    )


def _contact_of(event: CloudEvent) -> str:
    contact_id = getattr(event.data, "contact_id", None) or event.subject
    assert isinstance(contact_id, str)
    return contact_id


def _apply(work: Journeys, ctx: Context, event: CloudEvent, contact_id: str) -> None:
    view = work.view(contact_id)
    if event.type == it.INTERACTION_RESOLVED:
        _interaction(work, ctx, event, event.data_as(it.InteractionResolved), view)
    elif event.type == sc.SCORE_CHANGED:
        projection.apply_scores(view, event.data_as(sc.ScoreChanged).new)
    elif event.type in CASE_TYPES:
        _case(work, event, view)
    elif event.type == ct.CONTACT_CONSENT_CHANGED:
        consent = event.data_as(ct.ContactConsentChanged)
        changed = projection.apply_consent(
            view,
            purpose=consent.purpose,
            channel=consent.channel.value if consent.channel else None,
            granted=consent.granted,
            at=event.time,
        )
        if changed and not consent.granted:
            _stop_without_consent(work, ctx, event, view)
    elif event.type == ct.CONTACT_CREATED:
        created = event.data_as(ct.ContactCreated)
        view.stage = created.stage.value
        projection.apply_profile(view, created.profile)
    elif event.type == ct.CONTACT_UPDATED:
        projection.apply_profile(view, event.data_as(ct.ContactUpdated).profile)
    elif event.type == ct.CONTACT_LIFECYCLE_CHANGED:
        view.stage = event.data_as(ct.ContactLifecycleChanged).to_stage.value


def _interaction(
    work: Journeys, ctx: Context, event: CloudEvent, data: it.InteractionResolved, view: ContactView
) -> None:
    view.stage = data.stage.value
    projection.apply_touchpoint(view, kind=data.kind, channel=data.channel.value, at=event.time)
    if data.consent is not None:
        _interaction_consent(work, ctx, event, data, view)
    contact_id = view.contact_id
    if data.campaign_id and data.campaign_step_id:
        _touch(work, event, data, contact_id)
    for enrolment in work.active_of(contact_id):
        campaign = work.campaigns.get(enrolment.campaign_id)
        step = (
            campaign.step(enrolment.next_step_id) if campaign and enrolment.next_step_id else None
        )
        unsubscribed = data.kind == UNSUBSCRIBE and campaign and not campaign.transactional
        if unsubscribed and campaign and data.channel.value in campaign.channels:
            work.exit(enrolment, cp.ExitReason.UNSUBSCRIBED, at=event.time, cause=event)
            continue
        if campaign and step and step.branch_kind == data.kind and step.branch_to:
            target = campaign.step(step.branch_to)
            assert target is not None
            work.change(
                enrolment,
                next_step_id=target.id,
                due_at=event.time + timedelta(seconds=target.wait_seconds),
            )
    _convert(work, event, data, contact_id)


def _interaction_consent(
    work: Journeys, ctx: Context, event: CloudEvent, data: it.InteractionResolved, view: ContactView
) -> None:
    """The consent an interaction carries counts at once, by its time: a signup that gives
    consent to email is not sent its welcome email before contacts' `consent_changed` for
    it arrives on the other topic."""
    consent = data.consent
    assert consent is not None
    granted = consent.granted
    if granted is None:
        granted = data.kind == it.InteractionKind.CONSENT_GIVEN.value
    changed = projection.apply_consent(
        view,
        purpose=consent.purpose,
        channel=consent.channel.value if consent.channel else None,
        granted=granted,
        at=event.time,
    )
    if changed and not granted:
        _stop_without_consent(work, ctx, event, view)


def _touch(
    work: Journeys, event: CloudEvent, data: it.InteractionResolved, contact_id: str
) -> None:
    """An interaction naming a campaign step: credited to the contact's latest enrolment in
    that campaign that had begun by then."""
    entered = [
        e for e in work.enrolments_of(contact_id, data.campaign_id) if e.entered_at <= event.time
    ]
    if entered and data.campaign_id and data.campaign_step_id:
        work.add_touch(
            attribution_rows.TouchRow(
                event_id=event.id,
                enrolment_id=entered[-1].id,
                campaign_id=data.campaign_id,
                step_id=data.campaign_step_id,
                contact_id=contact_id,
                kind=data.kind,
                at=event.time,
            )
        )


def _convert(
    work: Journeys, event: CloudEvent, data: it.InteractionResolved, contact_id: str
) -> None:
    """A goal interaction converts the contact's latest enrolment in each campaign whose
    window it falls in, once, also after the contact exited; an active one exits."""
    latest: dict[str, Enrolment] = {}
    for enrolment in work.enrolments_of(contact_id):
        if enrolment.entered_at <= event.time:
            latest[enrolment.campaign_id] = enrolment
    value = float(data.value.amount) if data.value else None
    for campaign_id, enrolment in latest.items():
        campaign = work.campaigns.get(campaign_id)
        if campaign is None or campaign.goal is None or enrolment.id in work.converted:
            continue
        if not attribution.is_conversion(
            campaign.goal,
            kind=data.kind,
            value=value,
            entered_at=enrolment.entered_at,
            at=event.time,
        ):
            continue
        work.converted.add(enrolment.id)
        _record_conversion(work, event, data, campaign, enrolment)
        if enrolment.active:
            work.exit(enrolment, cp.ExitReason.CONVERTED, at=event.time, cause=event)


def _case(work: Journeys, event: CloudEvent, view: ContactView) -> None:
    case_id = getattr(event.data, "case_id", None)
    assert isinstance(case_id, str)
    if event.type == cs.CASE_OPENED:
        projection.open_case(view, case_id, event.data_as(cs.CaseOpened).category)
    elif event.type == cs.CASE_REOPENED:
        projection.reopen_case(view, case_id)
    else:
        projection.close_case(view, case_id)
        if not view.has_complaint_open():
            for enrolment in work.active_of(view.contact_id):
                if enrolment.held:
                    due = max(enrolment.due_at or event.time, event.time)
                    work.change(enrolment, held=False, due_at=due)


def _stop_without_consent(
    work: Journeys, ctx: Context, event: CloudEvent, view: ContactView
) -> None:
    """A withdrawal exits the enrolments whose next step now lacks consent."""
    for enrolment in work.active_of(view.contact_id):
        campaign = work.campaigns.get(enrolment.campaign_id)
        step = (
            campaign.step(enrolment.next_step_id) if campaign and enrolment.next_step_id else None
        )
        if campaign is None or step is None:
            continue
        if not consented(ctx, view, campaign.purpose, step.channel):
            work.exit(enrolment, cp.ExitReason.CONSENT_WITHDRAWN, at=event.time, cause=event)


def consented(ctx: Context, view: ContactView, purpose: str, channel: str) -> bool:
    """Whether the contact may be sent to on this channel for this purpose, by the latest
    word it gave (event time), else the purpose's default."""
    state = view.consent(purpose, channel)
    return state.granted if state is not None else ctx.consent_default(purpose)


def _record_conversion(
    work: Journeys,
    event: CloudEvent,
    data: it.InteractionResolved,
    campaign: Campaign,
    enrolment: Enrolment,
) -> None:
    """The conversion, the credit of each step from the enrolment's touches, and
    `campaign.converted` naming the credited step."""
    touches = [
        attribution.Touch(step_id=t.step_id, at=t.at) for t in work.touches_of.get(enrolment.id, [])
    ]
    revenue = data.value.amount if data.value else None
    credits = attribution.credit(
        touches,
        converted_at=event.time,
        since=enrolment.entered_at,
        model=campaign.attribution_model,
        revenue=float(revenue) if revenue is not None else None,
    )
    step_id = attribution.credited_step(credits)
    currency = data.value.currency if data.value else None
    work.conversions.append(
        attribution_rows.ConversionRow(
            enrolment_id=enrolment.id,
            campaign_id=campaign.id,
            contact_id=enrolment.contact_id,
            event_id=event.id,
            kind=data.kind,
            at=event.time,
            revenue=revenue,
            currency=currency,
            step_id=step_id,
            credits=[
                {"step_id": c.step_id, "share": c.share, "revenue": c.revenue} for c in credits
            ],
        )
    )
    work.out.campaign_event(
        cp.CAMPAIGN_CONVERTED,
        cp.CampaignConverted(
            campaign_id=campaign.id,
            contact_id=enrolment.contact_id,
            enrolment_id=enrolment.id,
            kind=data.kind,
            value=data.value,
            attributed_step_id=step_id,
            cause_event_id=event.id,
            attribution_model=campaign.attribution_model.value,
            credits=[
                cp.StepCredit(
                    step_id=c.step_id,
                    share=c.share,
                    revenue=Money(amount=Decimal(str(c.revenue)), currency=currency)
                    if currency is not None and revenue is not None
                    else None,
                )
                for c in credits
            ],
        ),
        key=enrolment.contact_id,
        time=event.time,
        cause=event,
    )
