"""One unit of work over some contacts: their projection, their segment memberships and
their enrolments. Every use case that changes who is in a segment or a campaign goes
through `Journeys`, which keeps the three in step, announces what changed, and writes all of
it with one statement per table (`flush`).

    work = await Journeys.load(conn, ctx, out, contact_ids)
    work.view(contact_id).stage = ...; work.touch(contact_id, at=event.time, cause=event)
    work.settle()            # segments evaluated once per touched contact; entries, exits
    await work.flush(conn)

Membership is evaluated from the projection as of the time of the last event that touched
the contact (or the timer's now), never by rebuilding a segment. A segment answer that will
change by time alone is stored with the moment it changes (`changes_at`), and the segment
timer evaluates exactly those contacts then.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import asyncpg

from crm_campaigns import holdout, segments
from crm_campaigns.definitions import CampaignDefinition
from crm_campaigns.domain import (
    Campaign,
    CampaignStatus,
    ContactView,
    EnrolmentStatus,
    EntryMode,
)
from crm_campaigns.handlers.context import Context, Publisher, derived_id
from crm_campaigns.repository import attribution as attribution_rows
from crm_campaigns.repository import campaigns as campaign_rows
from crm_campaigns.repository import enrolments as enrolment_rows
from crm_campaigns.repository import segments as segment_rows
from crm_campaigns.repository import views as view_rows
from crm_campaigns.repository.enrolments import Enrolment
from crm_campaigns.repository.segments import Membership
from crm_contracts import CloudEvent
from crm_contracts import campaigns as cp


@dataclass(frozen=True, slots=True)
class Segment:
    """A segment's rule, parsed once per unit of work."""

    id: str
    rule: segments.Rule
    backfilling: bool


@dataclass(slots=True)
class _Touched:
    at: datetime
    cause: CloudEvent | None


async def load_segments(conn: asyncpg.Connection, ctx: Context) -> list[Segment]:
    """Every segment, read now; a rule is parsed again only when its version is new."""
    cache = ctx.definitions.rules
    known = cache.known()
    rows = await segment_rows.segment_stamps(conn, {id: stamp for id, (stamp, _) in known.items()})
    rules = cache.refresh(
        known,
        ((row.id, (row.version, row.updated_at), row.rule) for row in rows),
        lambda _, rule: segments.parse_rule(rule),
    )
    return [Segment(row.id, rules[row.id], row.backfilling) for row in rows]


async def load_campaigns(conn: asyncpg.Connection, ctx: Context) -> dict[str, Campaign]:
    """The campaigns contacts can be in: active, paused (their enrolments wait); read now, a
    definition parsed again only when its version is new."""
    cache = ctx.definitions.campaigns
    known = cache.known()
    rows = await campaign_rows.campaign_stamps(
        conn,
        statuses=(CampaignStatus.ACTIVE, CampaignStatus.PAUSED),
        known={id: stamp for id, (stamp, _) in known.items()},
    )
    return cache.refresh(
        known,
        (
            (row.id, (row.updated_at, row.status), row if row.definition is not None else None)
            for row in rows
        ),
        lambda id, row: CampaignDefinition.model_validate(row.definition).to_campaign(
            id=id, status=row.status
        ),
    )


class Journeys:
    """Changes to some contacts within one transaction, and what they publish."""

    def __init__(
        self,
        ctx: Context,
        out: Publisher,
        *,
        segments: Sequence[Segment],
        campaigns: dict[str, Campaign],
        views: dict[str, ContactView],
        memberships: dict[tuple[str, str], Membership],
        enrolments: Iterable[Enrolment],
        converted: set[str],
        touches: dict[str, list[attribution_rows.TouchRow]] | None = None,
    ) -> None:
        self.ctx = ctx
        self.out = out
        self.segments = list(segments)
        self.campaigns = campaigns
        self.views = views
        self.memberships = memberships
        self.enrolments: dict[str, Enrolment] = {}
        self._by_contact: dict[str, set[str]] = {}
        for enrolment in enrolments:
            self._index(enrolment)
        self.converted = converted
        self._changed_views: set[str] = set()
        self._changed_memberships: set[tuple[str, str]] = set()
        self._changed_enrolments: set[str] = set()
        self._touched: dict[str, _Touched] = {}
        self.touches: list[attribution_rows.TouchRow] = []
        # Every touch of the loaded enrolments, stored or new, oldest first.
        self.touches_of: dict[str, list[attribution_rows.TouchRow]] = touches or {}
        self.conversions: list[attribution_rows.ConversionRow] = []

    @classmethod
    async def load(
        cls,
        conn: asyncpg.Connection,
        ctx: Context,
        out: Publisher,
        contact_ids: Iterable[str],
        *,
        segments: Sequence[Segment] | None = None,
    ) -> Journeys:
        """These contacts' views, memberships and enrolments, locked, with the segments and
        campaigns in force (a handful of statements whatever the number of contacts)."""
        ids = sorted(set(contact_ids))
        views = await view_rows.views(conn, ids)
        memberships = await segment_rows.memberships_of(conn, ids)
        enrolments = await enrolment_rows.enrolments_of(conn, ids)
        enrolment_ids = [e.id for e in enrolments]
        converted = await attribution_rows.converted(conn, enrolment_ids)
        touches = await attribution_rows.touches_of(conn, enrolment_ids)
        return cls(
            ctx,
            out,
            segments=segments if segments is not None else await load_segments(conn, ctx),
            campaigns=await load_campaigns(conn, ctx),
            views=views,
            memberships=memberships,
            enrolments=enrolments,
            converted=converted,
            touches=touches,
        )

    # ---- reading

    def view(self, contact_id: str) -> ContactView:
        """The contact's view, to be changed (a new one for a contact not seen before)."""
        view = self.views.get(contact_id)
        if view is None:
            view = self.views[contact_id] = ContactView(contact_id=contact_id)
        self._changed_views.add(contact_id)
        return view

    def known(self, contact_id: str) -> ContactView | None:
        return self.views.get(contact_id)

    def enrolments_of(self, contact_id: str, campaign_id: str | None = None) -> list[Enrolment]:
        """The contact's enrolments (in one campaign), oldest first."""
        mine = (self.enrolments[e] for e in self._by_contact.get(contact_id, ()))
        return sorted(
            (e for e in mine if campaign_id is None or e.campaign_id == campaign_id),
            key=lambda e: (e.entered_at, e.entry),
        )

    def active_of(self, contact_id: str) -> list[Enrolment]:
        return [e for e in self.enrolments_of(contact_id) if e.active]

    # ---- changes

    def touch(self, contact_id: str, *, at: datetime, cause: CloudEvent | None) -> None:
        """The contact changed as of `at`: its segments are evaluated again in `settle`."""
        held = self._touched.get(contact_id)
        if held is None or at >= held.at:
            self._touched[contact_id] = _Touched(at, cause)

    def settle(self) -> None:
        """Evaluate every segment for every touched contact, once, and act on the changes."""
        touched, self._touched = self._touched, {}
        for contact_id, t in touched.items():
            self.evaluate(contact_id, as_of=t.at, cause=t.cause)

    def evaluate(
        self,
        contact_id: str,
        *,
        as_of: datetime,
        cause: CloudEvent | None,
        only: Sequence[Segment] | None = None,
    ) -> None:
        """The contact's answer for each segment (`only` these); entries and exits follow."""
        view = self.views.get(contact_id) or ContactView(contact_id=contact_id)
        for segment in only if only is not None else self.segments:
            answer = segments.evaluate(segment.rule, view, as_of)
            key = (segment.id, contact_id)
            held = self.memberships.get(key)
            was = held is not None and held.member
            since = (held.since if held and was else as_of) if answer.member else None
            if held is None and not answer.member and answer.changes_at is None:
                continue  # no row, and none to write: the common answer for most segments
            new = Membership(segment.id, contact_id, answer.member, since, answer.changes_at)
            if held is None or (held.member, held.since, held.changes_at) != (
                new.member,
                new.since,
                new.changes_at,
            ):
                self.memberships[key] = new
                self._changed_memberships.add(key)
            if answer.member != was:
                self._membership_changed(segment, contact_id, answer.member, as_of, cause)

    def _membership_changed(
        self,
        segment: Segment,
        contact_id: str,
        member: bool,
        at: datetime,
        cause: CloudEvent | None,
    ) -> None:
        data = cp.SegmentEntered if member else cp.SegmentLeft
        self.out.campaign_event(
            cp.CAMPAIGN_SEGMENT_ENTERED if member else cp.CAMPAIGN_SEGMENT_LEFT,
            data(segment_id=segment.id, contact_id=contact_id, cause_event_id=_id(cause)),
            key=contact_id,
            time=at,
            cause=cause,
        )
        for campaign in self.campaigns.values():
            if campaign.segment_id != segment.id:
                continue
            if member and campaign.entry_mode == EntryMode.ON_ENTRY:
                self.enrol(campaign, contact_id, at=at, cause=cause)
            elif not member and campaign.exit_on_segment_leave:
                for enrolment in self.enrolments_of(contact_id, campaign.id):
                    if enrolment.active:
                        self.exit(enrolment, cp.ExitReason.LEFT_SEGMENT, at=at, cause=cause)

    def enrol(
        self, campaign: Campaign, contact_id: str, *, at: datetime, cause: CloudEvent | None
    ) -> Enrolment | None:
        """Enter the contact into an active campaign, unless its entry rules say no: not
        before the start nor after the end, never while enrolled, again only after
        `reentry_days` (and never without them)."""
        if campaign.status != CampaignStatus.ACTIVE or not campaign.steps:
            return None
        if (campaign.starts_at and at < campaign.starts_at) or (
            campaign.ends_at and at >= campaign.ends_at
        ):
            return None
        mine = self.enrolments_of(contact_id, campaign.id)
        if any(e.active for e in mine):
            return None
        if mine:
            if campaign.reentry_days is None:
                return None
            if at < mine[-1].entered_at + timedelta(days=campaign.reentry_days):
                return None
        entry = max((e.entry for e in mine), default=0) + 1
        first = campaign.steps[0]
        enrolment = Enrolment(
            id=derived_id("enr", campaign.id, contact_id, str(entry)),
            campaign_id=campaign.id,
            contact_id=contact_id,
            origin_contact_id=contact_id,
            entry=entry,
            arm=holdout.arm_of(campaign.id, contact_id, campaign.holdout_share),
            status=EnrolmentStatus.ACTIVE,
            entered_at=at,
            cause_event_id=_id(cause),
            next_step_id=first.id,
            due_at=at + timedelta(seconds=first.wait_seconds),
            held=False,
            exited_at=None,
            exit_reason=None,
        )
        self._save(enrolment)
        self.out.campaign_event(
            cp.CAMPAIGN_CONTACT_ENROLLED,
            cp.CampaignContactEnrolled(
                campaign_id=campaign.id,
                contact_id=contact_id,
                enrolment_id=enrolment.id,
                segment_id=campaign.segment_id,
                cause_event_id=_id(cause),
                arm=cp.Arm(enrolment.arm.value),
            ),
            key=contact_id,
            time=at,
            cause=cause,
        )
        return enrolment

    def exit(
        self,
        enrolment: Enrolment,
        reason: cp.ExitReason,
        *,
        at: datetime,
        cause: CloudEvent | None,
    ) -> None:
        """The contact leaves the campaign; nothing more is sent to it."""
        if not enrolment.active:
            return
        self._save(
            replace(
                enrolment,
                status=EnrolmentStatus.EXITED,
                exited_at=at,
                exit_reason=reason.value,
                due_at=None,
                held=False,
            )
        )
        self.out.campaign_event(
            cp.CAMPAIGN_EXITED,
            cp.CampaignExited(
                campaign_id=enrolment.campaign_id,
                contact_id=enrolment.contact_id,
                enrolment_id=enrolment.id,
                reason=reason,
                cause_event_id=_id(cause),
            ),
            key=enrolment.contact_id,
            time=at,
            cause=cause,
        )

    def add_touch(self, touch: attribution_rows.TouchRow) -> None:
        self.touches.append(touch)
        self.touches_of.setdefault(touch.enrolment_id, []).append(touch)

    def change(self, enrolment: Enrolment, **changes: object) -> Enrolment:
        """An enrolment with some fields changed (next step, due time, hold)."""
        changed = replace(enrolment, **changes)  # type: ignore[arg-type]
        self._save(changed)
        return changed

    def _save(self, enrolment: Enrolment) -> None:
        self._index(enrolment)
        self._changed_enrolments.add(enrolment.id)

    def _index(self, enrolment: Enrolment) -> None:
        held = self.enrolments.get(enrolment.id)
        if held is not None and held.contact_id != enrolment.contact_id:
            self._by_contact[held.contact_id].discard(enrolment.id)
        self.enrolments[enrolment.id] = enrolment
        self._by_contact.setdefault(enrolment.contact_id, set()).add(enrolment.id)

    async def flush(self, conn: asyncpg.Connection) -> None:
        """Write every change (one statement per table) and the queued events."""
        await view_rows.save_views(conn, [self.views[c] for c in sorted(self._changed_views)])
        await segment_rows.save_memberships(
            conn, [self.memberships[k] for k in sorted(self._changed_memberships)]
        )
        await enrolment_rows.save_enrolments(
            conn, [self.enrolments[e] for e in sorted(self._changed_enrolments)]
        )
        await attribution_rows.record_touches(conn, self.touches)
        await attribution_rows.record_conversions(conn, self.conversions)
        await self.out.flush(conn)
        self._changed_views.clear()
        self._changed_memberships.clear()
        self._changed_enrolments.clear()
        self.touches, self.conversions = [], []


def _id(event: CloudEvent | None) -> str | None:
    return event.id if event is not None else None
