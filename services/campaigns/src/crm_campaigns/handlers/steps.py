"""The step timer: due steps go out once, with consent, within caps, outside quiet hours.

Each round locks the due enrolments it takes (`FOR UPDATE SKIP LOCKED`: replicas share the
work, never the same enrolment) and, for the capped channels, the (contact, channel) pairs,
in one order, so that two campaigns due at once for one contact on two workers are counted
against the cap one after the other. For each due step, in this order:

- the contact has an open complaint case and the campaign pauses on complaints: held until
  the case is resolved;
- no consent for the campaign's purpose on the step's channel, by the latest word the
  contact gave (event time), else the purpose's default: the contact exits,
  `consent_withdrawn`;
- the holdout arm: the step is entered in the ledger as held back, and nothing is sent;
- not transactional, inside the quiet hours of the contact's zone (else the campaign's):
  deferred to their end; over the channel's frequency cap: deferred to the moment a send is
  allowed again;
- else sent: entered in the send ledger (one row per enrolment and step, whatever the
  restarts and replicas) and `campaign.step_due` emitted with an id derived from enrolment
  and step. The next step is due `wait_seconds` later; after the last, the contact exits,
  `completed`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from crm_campaigns import schedule
from crm_campaigns.domain import Arm, Campaign, ContactView, Step
from crm_campaigns.handlers.context import Context, Publisher, derived_id
from crm_campaigns.handlers.events import consented
from crm_campaigns.handlers.journeys import Journeys, load_campaigns
from crm_campaigns.repository import enrolments as enrolment_rows
from crm_campaigns.repository import sends as send_rows
from crm_campaigns.repository import views as view_rows
from crm_campaigns.repository.enrolments import Enrolment
from crm_campaigns.repository.sends import Cap, Send
from crm_contracts import campaigns as cp
from crm_kit.outbox import OutboxMessage


async def send_due(pool: asyncpg.Pool, *, ctx: Context) -> int:
    """One round: the steps due by now, in one transaction; how many were decided."""
    async with pool.acquire() as conn, conn.transaction():
        now = ctx.clock()
        due = await enrolment_rows.due(conn, now=now, limit=ctx.settings.due_batch)
        if not due:
            return 0
        rounds = _Round(ctx, now, await load_campaigns(conn, ctx), await send_rows.caps(conn))
        views = await view_rows.views(conn, {e.contact_id for e in due}, lock=False)
        pairs = rounds.capped_pairs(due)
        await send_rows.lock_capped(conn, pairs)
        rounds.history = await send_rows.sent_since(conn, pairs, since=now - rounds.longest)
        out = Publisher(ctx)
        work = Journeys(
            ctx,
            out,
            segments=[],
            campaigns=rounds.campaigns,
            views=views,
            memberships={},
            enrolments=due,
            converted=set(),
        )
        for enrolment in due:
            rounds.decide(work, enrolment)
        fresh = await send_rows.record_sends(conn, rounds.sends)
        for send, event in rounds.events:
            if (send.enrolment_id, send.step_id) in fresh:
                out.add(event)
        await work.flush(conn)
        return len(due)


class _Round:
    def __init__(
        self, ctx: Context, now: datetime, campaigns: dict[str, Campaign], caps: dict[str, Cap]
    ) -> None:
        self.ctx = ctx
        self.now = now
        self.campaigns = campaigns
        self.caps = caps
        self.longest = max((c.window for c in caps.values()), default=timedelta(0))
        self.history: dict[tuple[str, str], list[datetime]] = {}
        self.sends: list[Send] = []
        self.events: list[tuple[Send, OutboxMessage]] = []

    def capped_pairs(self, due: list[Enrolment]) -> set[tuple[str, str]]:
        pairs = set()
        for enrolment in due:
            campaign = self.campaigns.get(enrolment.campaign_id)
            step = self._step(campaign, enrolment)
            if campaign and step and not campaign.transactional and step.channel in self.caps:
                pairs.add((enrolment.contact_id, step.channel))
        return pairs

    def _step(self, campaign: Campaign | None, enrolment: Enrolment) -> Step | None:
        if campaign is None or enrolment.next_step_id is None:
            return None
        return campaign.step(enrolment.next_step_id)

    def decide(self, work: Journeys, enrolment: Enrolment) -> None:
        campaign = self.campaigns.get(enrolment.campaign_id)
        step = self._step(campaign, enrolment)
        if campaign is None:
            return
        if step is None:
            work.exit(enrolment, cp.ExitReason.COMPLETED, at=self.now, cause=None)
            return
        view = work.known(enrolment.contact_id) or ContactView(contact_id=enrolment.contact_id)
        if campaign.pause_on_complaint and not campaign.transactional and view.has_complaint_open():
            work.change(enrolment, held=True)
            return
        if not consented(self.ctx, view, campaign.purpose, step.channel):
            work.exit(enrolment, cp.ExitReason.CONSENT_WITHDRAWN, at=self.now, cause=None)
            return
        if enrolment.arm == Arm.HOLDOUT:
            self._record(campaign, enrolment, step, outcome="holdout")
            self._advance(work, campaign, enrolment, step)
            return
        if not campaign.transactional:
            later = self._deferred(campaign, view, step, enrolment.contact_id)
            if later is not None:
                work.change(enrolment, due_at=later)
                return
        self._record(campaign, enrolment, step, outcome="sent")
        self._advance(work, campaign, enrolment, step)

    def _deferred(
        self, campaign: Campaign, view: ContactView, step: Step, contact_id: str
    ) -> datetime | None:
        """When the step may go out instead of now: after the quiet hours, or when the cap
        allows one more send; None: now."""
        zone = schedule.zone_of(view.time_zone, campaign.time_zone)
        after_quiet = schedule.defer_for_quiet_hours(self.now, campaign.quiet_hours, zone)
        if after_quiet > self.now:
            return after_quiet
        cap = self.caps.get(step.channel)
        if cap is None:
            return None
        sent = self.history.setdefault((contact_id, step.channel), [])
        return schedule.cap_slot(sent, at=self.now, max_sends=cap.max_sends, window=cap.window)

    def _record(
        self, campaign: Campaign, enrolment: Enrolment, step: Step, *, outcome: str
    ) -> None:
        event_id = derived_id("due", enrolment.id, step.id) if outcome == "sent" else None
        send = Send(
            enrolment_id=enrolment.id,
            step_id=step.id,
            campaign_id=campaign.id,
            contact_id=enrolment.contact_id,
            channel=step.channel,
            outcome=outcome,
            at=self.now,
            event_id=event_id,
        )
        self.sends.append(send)
        if outcome != "sent":
            return
        if not campaign.transactional:
            self.history.setdefault((enrolment.contact_id, step.channel), []).append(self.now)
        out = Publisher(self.ctx)
        out.campaign_event(
            cp.CAMPAIGN_STEP_DUE,
            cp.CampaignStepDue(
                campaign_id=campaign.id,
                contact_id=enrolment.contact_id,
                enrolment_id=enrolment.id,
                step_id=step.id,
                channel=step.channel,
                template_ref=step.template_ref,
                deliver_before=campaign.ends_at,
            ),
            key=enrolment.contact_id,
            time=self.now,
            id=event_id,
        )
        self.events.append((send, out.messages[0]))

    def _advance(
        self, work: Journeys, campaign: Campaign, enrolment: Enrolment, step: Step
    ) -> None:
        following = campaign.step_after(step.id)
        if following is None:
            work.exit(enrolment, cp.ExitReason.COMPLETED, at=self.now, cause=None)
            return
        work.change(
            enrolment,
            next_step_id=following.id,
            due_at=self.now + timedelta(seconds=following.wait_seconds),
        )
