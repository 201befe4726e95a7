"""One unit of work over some cases: every change a use case makes to a case goes through
`Casework`, which keeps the case's SLA clocks, its activity and its events in step, and
writes all of it with one statement per table (`flush`).

    work = await Casework.load(conn, ctx, out, case_ids=[...], contact_ids=[...])
    case = work.open(...) / work.move(case, CaseStatus.PENDING, at) / work.agent_response(...)
    await work.flush(conn)

Clocks (DESIGN.md's cases section; `crm_cases.sla`): opening starts first response and
resolution (cycle 1); an agent's response meets first response and the running next
response; a customer's reply awaiting an answer starts a next-response cycle; each status
pauses or resumes each metric per its policy's pause rule; resolving or closing meets them
all; a reopen starts a new resolution cycle; a priority change re-targets every unmet clock
from its original start. A clock found overdue is breached at once, and the breach is
recorded durably (one per case, metric and cycle) before its event is announced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import asyncpg

from crm_cases import calendar as cal
from crm_cases import domain, sla
from crm_cases.domain import Case
from crm_cases.handlers.context import Context, Publisher, new_id
from crm_cases.repository import cases as case_rows
from crm_cases.repository import sla as sla_rows
from crm_cases.repository.cases import Activity
from crm_cases.repository.sla import Breach, StoredClock
from crm_cases.sla import Metric, Target
from crm_contracts import CloudEvent
from crm_contracts import cases as cs
from crm_contracts.cases import CasePriority, CaseStatus
from crm_kit.errors import Conflict


@dataclass(frozen=True)
class Policy:
    """The SLA policy of one priority: a target per metric, counted on one calendar."""

    priority: CasePriority
    name: str
    calendar_id: str
    targets: Mapping[Metric, Target]


def parse_targets(document: Mapping[str, Mapping[str, object]]) -> dict[Metric, Target]:
    """Targets as stored: {metric: {"seconds": n, "pauses_in": [status, ...]}}."""
    out = {}
    for metric, target in document.items():
        seconds = target["seconds"]
        pauses = target.get("pauses_in", [])
        assert isinstance(seconds, int) and isinstance(pauses, list)
        out[Metric(metric)] = Target(seconds=seconds, pauses_in=frozenset(str(p) for p in pauses))
    return out


@dataclass(frozen=True)
class Rules:
    """The policies and calendars in force for a unit of work."""

    policies: Mapping[CasePriority, Policy]
    calendars: Mapping[str, cal.Calendar]

    def policy(self, priority: CasePriority) -> Policy:
        return self.policies[priority]

    def calendar(self, calendar_id: str) -> cal.Calendar:
        return self.calendars[calendar_id]


async def load_rules(conn: asyncpg.Connection) -> Rules:
    """Every policy and calendar (two small statements)."""
    calendars = {
        row["id"]: cal.parse_calendar(
            {"time_zone": row["time_zone"], "hours": row["hours"], "holidays": row["holidays"]}
        )
        for row in await sla_rows.calendars(conn)
    }
    policies = {
        CasePriority(row["priority"]): Policy(
            priority=CasePriority(row["priority"]),
            name=row["name"],
            calendar_id=row["calendar_id"],
            targets=parse_targets(row["targets"]),
        )
        for row in await sla_rows.policies(conn)
    }
    return Rules(policies, calendars)


class InvalidTransition(Conflict):
    """A status change the case's status does not allow."""

    def __init__(self, current: CaseStatus, to: CaseStatus) -> None:
        allowed = [s.value for s in domain.TRANSITIONS[current]]
        super().__init__(
            f"A {current.value} case cannot become {to.value}; allowed: "
            f"{', '.join(allowed) or 'none'}.",
            reason="invalid-transition",
            extensions={"case_status": current.value, "allowed": allowed},
        )


class Casework:
    """Changes to some cases within one transaction, and what they publish."""

    def __init__(
        self,
        ctx: Context,
        rules: Rules,
        out: Publisher,
        cases: Mapping[str, Case],
        clocks: Iterable[StoredClock],
    ) -> None:
        self.ctx = ctx
        self.rules = rules
        self.out = out
        self.cases: dict[str, Case] = dict(cases)
        self.clocks: dict[tuple[str, str, int], StoredClock] = {c.key: c for c in clocks}
        self._changed_cases: set[str] = set()
        self._changed_clocks: set[tuple[str, str, int]] = set()
        self._activity: list[Activity] = []
        self._breaches: list[tuple[int, Breach, Case]] = []

    @classmethod
    async def load(
        cls,
        conn: asyncpg.Connection,
        ctx: Context,
        out: Publisher,
        *,
        case_ids: Sequence[str] = (),
        contact_ids: Sequence[str] = (),
    ) -> Casework:
        """The cases named and the open cases of the contacts named, locked, with their
        clocks and the rules in force."""
        cases = await case_rows.cases_by_id(conn, case_ids) if case_ids else {}
        if contact_ids:
            cases.update({c.id: c for c in await case_rows.open_cases_of(conn, contact_ids)})
        clocks = await sla_rows.clocks_of(conn, list(cases)) if cases else []
        return cls(ctx, await load_rules(conn), out, cases, clocks)

    # ---- reading

    def open_case_of(self, contact_id: str, category: str | None) -> Case | None:
        """The contact's oldest open case of this category, if any."""
        for case in self.cases.values():
            if case.contact_id == contact_id and case.is_open and case.category == category:
                return case
        return None

    def clocks_of(self, case: Case) -> list[StoredClock]:
        return [c for key, c in self.clocks.items() if key[0] == case.id]

    def current_clock(self, case: Case, metric: Metric) -> StoredClock | None:
        """The latest cycle of a metric."""
        mine = [c for c in self.clocks_of(case) if c.clock.metric == metric]
        return max(mine, key=lambda c: c.clock.cycle) if mine else None

    def sla_of(self, case: Case) -> cs.Sla:
        """The due times of a case's running clocks (latest cycle of each metric)."""

        def due(metric: Metric) -> datetime | None:
            stored = self.current_clock(case, metric)
            if stored is None or stored.clock.stopped_at is not None:
                return None
            return stored.clock.due_at

        return cs.Sla(
            first_response_due_at=due(Metric.FIRST_RESPONSE),
            next_response_due_at=due(Metric.NEXT_RESPONSE),
            resolution_due_at=due(Metric.RESOLUTION),
        )

    # ---- changes

    def open(
        self,
        *,
        contact_id: str,
        subject: str,
        at: datetime,
        queue: str,
        priority: CasePriority,
        priority_set_by: str = "value",
        description: str | None = None,
        channel: str | None = None,
        category: str | None = None,
        cause: CloudEvent | None = None,
        linked_case_id: str | None = None,
        assignee: str | None = None,
    ) -> Case:
        """A new case, its first-response and resolution clocks, `case.opened`."""
        case = Case(
            id=new_id("case"),
            contact_id=contact_id,
            origin_contact_id=contact_id,
            subject=subject,
            description=description,
            channel=channel,
            category=category,
            queue=queue,
            priority=priority,
            priority_set_by=priority_set_by,
            status=CaseStatus.NEW,
            assignee=assignee,
            opened_at=at,
            last_customer_at=at if cause is not None else None,
            linked_case_id=linked_case_id,
            cause_event_id=cause.id if cause is not None else None,
        )
        self.cases[case.id] = case
        self.mark(case)
        self._start(case, Metric.FIRST_RESPONSE, 1, at)
        self._start(case, Metric.RESOLUTION, 1, at)
        self.out.case_event(
            cs.CASE_OPENED,
            cs.CaseOpened(
                case_id=case.id,
                contact_id=contact_id,
                title=subject,
                queue=queue,
                priority=priority,
                status=case.status,
                category=category,
                channel=channel,
                sla=self.sla_of(case),
                cause_event_id=case.cause_event_id,
                description=description,
                linked_case_id=linked_case_id,
                assignee=assignee,
            ),
            contact_id=contact_id,
            time=at,
            cause=cause,
        )
        if cause is not None:
            self.note(case, "customer", at, event_id=cause.id, channel=channel)
        self._check(case, at)
        return case

    def move(
        self,
        case: Case,
        to: CaseStatus,
        at: datetime,
        *,
        cause: CloudEvent | None = None,
        reason: str | None = None,
        resolved_by: str | None = None,
        resolution: str | None = None,
    ) -> None:
        """An agent's or a rule's status change; InvalidTransition when not allowed. A
        resolved case moved to open is a reopen."""
        if case.status == to:
            return
        if not domain.transition_allowed(case.status, to):
            raise InvalidTransition(case.status, to)
        if case.status == CaseStatus.RESOLVED and to == CaseStatus.OPEN:
            self.reopen(case, at, cause=cause, reason=reason)
            return
        self._set_status(case, to, at, cause=cause, reason=reason)
        if to == CaseStatus.RESOLVED:
            self._resolved(case, at, cause=cause, resolved_by=resolved_by, resolution=resolution)
        elif to == CaseStatus.CLOSED:
            self._closed(case, at, cause=cause, resolution=resolution)

    def agent_response(
        self, case: Case, at: datetime, *, agent_id: str, cause: CloudEvent, channel: str | None
    ) -> None:
        """An agent answered the customer: first and next response are met (a breach
        already due stands); a new case is now open. An answer delivered late, after a
        message of the customer's that came after it, does not answer that message."""
        self._check(case, at)
        for metric in (Metric.FIRST_RESPONSE, Metric.NEXT_RESPONSE):
            stored = self.current_clock(case, metric)
            if (
                stored is not None
                and stored.clock.stopped_at is None
                and stored.clock.started_at <= at
            ):
                self._put(stored, sla.stop(stored.clock, self._at(stored, at), self._cal(stored)))
        last_customer = case.last_customer_at
        wrote_after = last_customer is not None and last_customer > max(at, case.opened_at)
        if case.first_response_at is None:
            case.first_response_at = at
            if wrote_after and last_customer is not None:
                # What customer_reply would have done had this answer come in order.
                case.customer_replied_after_response = True
                latest = self.current_clock(case, Metric.NEXT_RESPONSE)
                cycle = 1 if latest is None else latest.clock.cycle + 1
                self._start(case, Metric.NEXT_RESPONSE, cycle, last_customer)
        case.last_agent_at = max(at, case.last_agent_at or at)
        if not wrote_after:
            case.awaiting_agent = False
        if case.assignee is None:
            case.assignee = agent_id
        self.mark(case)
        self.note(case, "agent", at, author=agent_id, event_id=cause.id, channel=channel)
        if case.status == CaseStatus.NEW:
            self._set_status(case, CaseStatus.OPEN, at, cause=cause, reason="agent responded")

    def customer_reply(
        self, case: Case, at: datetime, *, cause: CloudEvent, channel: str | None
    ) -> None:
        """The customer wrote on an open case: it awaits an answer (a next-response cycle
        once the first answer was given); a pending case is open again. A message that an
        answer already applied came after (delivered late) was answered by it."""
        self.note(case, "customer", at, event_id=cause.id, channel=channel)
        case.last_customer_at = max(at, case.last_customer_at or at)
        # A message delivered late, after an answer that came after it, was answered: the
        # result is the one of the ordered events (DESIGN.md, pattern 7).
        answered_at = case.last_agent_at if case.last_agent_at and case.last_agent_at > at else None
        if case.first_response_at is not None and at > case.first_response_at:
            case.customer_replied_after_response = True
            running = self.current_clock(case, Metric.NEXT_RESPONSE)
            if running is None or running.clock.stopped_at is not None:
                cycle = 1 if running is None else running.clock.cycle + 1
                self._start(case, Metric.NEXT_RESPONSE, cycle, at)
                if answered_at is not None:
                    self._met_at(case, Metric.NEXT_RESPONSE, answered_at)
        if answered_at is None:
            case.awaiting_agent = True
        self.mark(case)
        if case.status == CaseStatus.PENDING and answered_at is None:
            self._set_status(case, CaseStatus.OPEN, at, cause=cause, reason="customer replied")
        self._check(case, at)

    def reopen(
        self, case: Case, at: datetime, *, cause: CloudEvent | None, reason: str | None = None
    ) -> None:
        """A resolved case is open again: a new resolution cycle; never first-contact
        resolved any more."""
        before = case.status
        case.status = CaseStatus.OPEN
        case.reopened += 1
        case.fcr = False
        case.resolved_at = None
        case.awaiting_agent = True
        self.mark(case)
        resolution = self.current_clock(case, Metric.RESOLUTION)
        self._start(
            case, Metric.RESOLUTION, 1 if resolution is None else resolution.clock.cycle + 1, at
        )
        self.out.case_event(
            cs.CASE_REOPENED,
            cs.CaseReopened(
                case_id=case.id,
                contact_id=case.contact_id,
                reason=reason,
                cause_event_id=cause.id if cause is not None else None,
                from_status=before,
            ),
            contact_id=case.contact_id,
            time=at,
            cause=cause,
        )
        self._check(case, at)

    def reprioritise(
        self,
        case: Case,
        priority: CasePriority,
        at: datetime,
        *,
        set_by: str,
        cause: CloudEvent | None = None,
        reason: str | None = None,
    ) -> None:
        """A new priority re-selects the policy: every unmet clock is re-targeted from its
        original start (a tighter target may be overdue at once: breached now)."""
        case.priority_set_by = set_by
        self.mark(case)
        if priority == case.priority:
            return
        before = case.priority
        case.priority = priority
        policy = self.rules.policy(priority)
        for stored in self.clocks_of(case):
            if stored.clock.stopped_at is not None or stored.clock.metric not in policy.targets:
                continue
            target = policy.targets[stored.clock.metric]
            clock = stored.clock
            if stored.calendar_id != policy.calendar_id:
                clock = sla.recalendar(
                    clock,
                    self._at(stored, at),
                    self._cal(stored),
                    self.rules.calendar(policy.calendar_id),
                )
            calendar = self.rules.calendar(policy.calendar_id)
            clock = sla.retarget(clock, target, self._at(stored, at), calendar)
            # The new policy's pause rule holds from now: a clock it pauses in this status
            # pauses, one it no longer pauses runs.
            clock = sla.on_status(clock, case.status.value, self._at(stored, at), target, calendar)
            self._put(replace(stored, calendar_id=policy.calendar_id), clock)
        self.out.case_event(
            cs.CASE_PRIORITY_CHANGED,
            cs.CasePriorityChanged(
                case_id=case.id,
                contact_id=case.contact_id,
                from_priority=before,
                to_priority=priority,
                reason=reason,
                cause_event_id=cause.id if cause is not None else None,
                sla=self.sla_of(case),
            ),
            contact_id=case.contact_id,
            time=at,
            cause=cause,
        )
        self._check(case, at)

    def note(
        self,
        case: Case,
        kind: str,
        at: datetime,
        *,
        author: str | None = None,
        event_id: str | None = None,
        channel: str | None = None,
        body: str | None = None,
        internal: bool = False,
    ) -> None:
        """Something that happened on the case, for whoever picks it up."""
        self._activity.append(
            Activity(case.id, kind, at, author, event_id, channel, body, internal)
        )

    def breach_due(self, case: Case, now: datetime) -> None:
        """The timer's part: breach what is overdue by `now`."""
        self._check(case, now)

    # ---- writing

    async def flush(self, conn: asyncpg.Connection) -> None:
        """Write changed cases, clocks, activity and new breaches, then the events: a
        breach's event only if its record is new (once per case, metric and cycle)."""
        await case_rows.save_cases(conn, [self.cases[i] for i in self._changed_cases])
        await sla_rows.save_clocks(conn, [self.clocks[k] for k in self._changed_clocks])
        await case_rows.add_activity(conn, self._activity)
        new = await sla_rows.record_breaches(conn, [b for _, b, _ in self._breaches])
        # Insert each breach event where it was found, last first so earlier places hold.
        for place, breach, case in reversed(self._breaches):
            if (breach.case_id, breach.metric, breach.cycle) not in new:
                continue
            self.out.case_event(
                cs.CASE_SLA_BREACHED,
                cs.CaseSlaBreached(
                    case_id=case.id,
                    contact_id=case.contact_id,
                    sla_kind=cs.SlaKind(breach.metric),
                    due_at=breach.due_at,
                    queue=breach.queue,
                    priority=CasePriority(breach.priority),
                    assignee=case.assignee,
                    cycle=breach.cycle,
                    breached_at=breach.detected_at,
                ),
                contact_id=case.contact_id,
                time=breach.due_at,
                id=breach.event_id,
                at=place,
            )
        self._changed_cases.clear()
        self._changed_clocks.clear()
        self._activity = []
        self._breaches = []
        await self.out.flush(conn)

    # ---- inside

    def mark(self, case: Case) -> None:
        """The case changed: write it back at flush."""
        self._changed_cases.add(case.id)

    def _cal(self, stored: StoredClock) -> cal.Calendar:
        return self.rules.calendar(stored.calendar_id)

    @staticmethod
    def _at(stored: StoredClock, at: datetime) -> datetime:
        """Never before the clock's last change: a late event cannot run a clock backwards."""
        floor = stored.clock.running_since or stored.clock.started_at
        return max(at, floor)

    def _put(self, stored: StoredClock, clock: sla.Clock) -> None:
        updated = replace(stored, clock=clock)
        self.clocks[updated.key] = updated
        self._changed_clocks.add(updated.key)

    def _start(self, case: Case, metric: Metric, cycle: int, at: datetime) -> None:
        policy = self.rules.policy(case.priority)
        target = policy.targets.get(metric)
        if target is None:
            return  # this policy sets no target for the metric
        calendar = self.rules.calendar(policy.calendar_id)
        clock = sla.start(metric, cycle, at, target, calendar, case.status.value)
        self._put(StoredClock(case.id, policy.calendar_id, clock), clock)

    def _set_status(
        self,
        case: Case,
        to: CaseStatus,
        at: datetime,
        *,
        cause: CloudEvent | None,
        reason: str | None,
    ) -> None:
        before = case.status
        case.status = to
        self.mark(case)
        policy = self.rules.policy(case.priority)
        for stored in self.clocks_of(case):
            target = policy.targets.get(stored.clock.metric)
            if stored.clock.stopped_at is None and target is not None:
                clock = sla.on_status(
                    stored.clock, to.value, self._at(stored, at), target, self._cal(stored)
                )
                self._put(stored, clock)
        self.out.case_event(
            cs.CASE_STATUS_CHANGED,
            cs.CaseStatusChanged(
                case_id=case.id,
                contact_id=case.contact_id,
                from_status=before,
                to_status=to,
                reason=reason,
            ),
            contact_id=case.contact_id,
            time=at,
            cause=cause,
        )
        self._check(case, at)

    def _met_at(self, case: Case, metric: Metric, at: datetime) -> None:
        """The metric's running clock was met at `at`; a breach due by then stands."""
        self._check(case, at)
        stored = self.current_clock(case, metric)
        if stored is not None and stored.clock.stopped_at is None:
            self._put(stored, sla.stop(stored.clock, self._at(stored, at), self._cal(stored)))

    def _stop_all(self, case: Case, at: datetime) -> None:
        self._check(case, at)  # what was already late is a breach, even if met now
        for stored in self.clocks_of(case):
            if stored.clock.stopped_at is None:
                self._put(stored, sla.stop(stored.clock, self._at(stored, at), self._cal(stored)))

    def _resolved(
        self,
        case: Case,
        at: datetime,
        *,
        cause: CloudEvent | None,
        resolved_by: str | None,
        resolution: str | None,
    ) -> None:
        self._stop_all(case, at)
        case.resolved_at = at
        case.resolved_by = resolved_by or case.assignee
        case.resolution = resolution or "resolved"
        case.fcr = domain.first_contact_resolution(
            replied_after_response=case.customer_replied_after_response,
            reopened=case.reopened,
            responded=case.first_response_at is not None,
        )
        self.out.case_event(
            cs.CASE_RESOLVED,
            cs.CaseResolved(
                case_id=case.id,
                contact_id=case.contact_id,
                resolution=case.resolution,
                resolved_by=case.resolved_by,
                first_response_at=case.first_response_at,
                first_contact_resolution=case.fcr,
            ),
            contact_id=case.contact_id,
            time=at,
            cause=cause,
        )

    def _closed(
        self, case: Case, at: datetime, *, cause: CloudEvent | None, resolution: str | None
    ) -> None:
        self._stop_all(case, at)
        case.closed_at = at
        if resolution is not None:
            case.resolution = resolution
        self.out.case_event(
            cs.CASE_CLOSED,
            cs.CaseClosed(case_id=case.id, contact_id=case.contact_id, resolution=case.resolution),
            contact_id=case.contact_id,
            time=at,
            cause=cause,
        )

    def _check(self, case: Case, at: datetime) -> None:
        """Breach every clock of the case that is overdue at `at`."""
        for stored in self.clocks_of(case):
            if not sla.overdue(stored.clock, at):
                continue
            due = stored.clock.due_at
            assert due is not None
            metric = stored.clock.metric
            self._put(stored, sla.breach(stored.clock, at))
            breach = Breach(
                case_id=case.id,
                metric=metric.value,
                cycle=stored.clock.cycle,
                due_at=due,
                detected_at=at,
                event_id=sla.breach_event_id(case.id, metric, stored.clock.cycle),
                queue=case.queue,
                priority=case.priority.value,
            )
            self._breaches.append((len(self.out.messages), breach, case))
