"""Use cases: apply a batch of events, re-evaluate as time passes, read for the API.

`apply_events` runs inside ONE transaction the caller opened: inbox claims, facts, scores,
history and the outbox rows of the events it publishes commit together or not at all.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from crm_contracts import CloudEvent
from crm_contracts import cases as cs
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_contracts import privacy as pv
from crm_contracts.base import Money
from crm_contracts.scores import (
    SCORE_CHANGED,
    SCORE_CURRENT,
    ChurnBand,
    ScoreChanged,
    ScoreCurrent,
    ScoreName,
    ScoreReason,
    Scores,
    ValueTier,
)
from crm_kit import inbox, metrics, subjects
from crm_kit.publisher import Publisher
from crm_scoring import repository as repo
from crm_scoring.aggregates import (
    Aggregates,
    advance,
    aggregate,
    crossing,
    explain_folded,
    fold_changes,
)
from crm_scoring.domain import (
    Change,
    Fact,
    Reason,
    ScoreCard,
    describe,
    explain,
    fact_from_case_event,
    fact_from_interaction,
    score,
    should_publish,
)
from crm_scoring.model import ScoringModel
from crm_scoring.settings import ScoringSettings

log = logging.getLogger(__name__)

REEVALUATION_LOCK = 7_404_471_204  # arbitrary, constant: "a re-evaluation step runs"

CHANGES_PUBLISHED = metrics.counter(
    "crm_scoring_changes_published_total",
    "crm.score.changed events written to the outbox, by trigger (event, time, merge).",
    ["trigger"],
)
CONTACTS_SCORED = metrics.counter(
    "crm_scoring_contacts_scored_total", "Contact scores recomputed, by trigger.", ["trigger"]
)


@dataclass
class Context:
    """What the handlers need besides a connection: model, settings, clock."""

    model: ScoringModel
    settings: ScoringSettings
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    publish: bool = True  # off while rebuilding: the changes were published the first time


@dataclass
class Outcome:
    """What a batch did; `events` holds what it publishes until written to the outbox."""

    events: Publisher
    applied: int = 0
    duplicates: int = 0
    published: int = 0
    published_by: Counter[str] = field(default_factory=Counter)
    scored_by: Counter[str] = field(default_factory=Counter)

    def count(self) -> None:
        """Add this outcome to the metrics (call after the transaction committed)."""
        for trigger, n in self.published_by.items():
            CHANGES_PUBLISHED.labels(trigger).inc(n)
        for trigger, n in self.scored_by.items():
            CONTACTS_SCORED.labels(trigger).inc(n)


# -- conversions to the published language -----------------------------------------------


_SCORES_MEMO_SIZE = 4096
_scores_memo: dict[tuple[Any, ...], Scores] = {}


def to_scores(card: ScoreCard, currency: str) -> Scores:
    """A score card as the contract's Scores."""
    # Validating the models is most of the cost of a published change, and many contacts
    # share their scores (and a change's old scores were its contact's last new ones), so
    # the frozen models are reused. The key spells the numbers as they print: 120.5 ==
    # 120.50, 0.0 == -0.0 and 1 == 1.0, but their JSON differs.
    key = (
        repr(card.engagement),
        repr(card.recency),
        repr(card.frequency),
        repr(card.monetary),
        card.value_tier,
        str(card.clv),
        repr(card.churn_risk),
        card.churn_band,
        currency,
    )
    scores = _scores_memo.get(key)
    if scores is None:
        if len(_scores_memo) >= _SCORES_MEMO_SIZE:
            _scores_memo.clear()
        scores = _scores_memo[key] = Scores(
            engagement=card.engagement,
            recency=card.recency,
            frequency=card.frequency,
            monetary=card.monetary,
            value_tier=ValueTier(card.value_tier),
            clv=Money(amount=card.clv, currency=currency),
            churn_risk=card.churn_risk,
            churn_band=ChurnBand(card.churn_band),
        )
    return scores


def to_reasons(reasons: Sequence[Reason]) -> list[ScoreReason]:
    """Domain reasons as the contract's ScoreReason."""
    return [
        ScoreReason(text=r.text, score=ScoreName(r.score), contribution=r.contribution)
        for r in reasons
    ]


def _reason_json(reasons: Sequence[Reason]) -> list[dict[str, Any]]:
    return [{"text": r.text, "score": r.score, "contribution": r.contribution} for r in reasons]


# -- scoring one contact ------------------------------------------------------------------


@dataclass
class _Work:
    """A contact to re-score in this transaction."""

    contact_id: str
    changes: list[Change] = field(default_factory=list)
    cause: CloudEvent | None = None
    removed_facts: list[Fact] = field(default_factory=list)  # gone now, there before


@dataclass
class _Evaluation:
    """A contact's new scores, the aggregates behind them, and how to explain the change."""

    card: ScoreCard
    aggregates: Aggregates
    explain: Callable[[ScoreCard | None, ScoreCard | None], list[Reason]]


def _moment(item: _Work, as_of: datetime | None, now: datetime) -> datetime:
    # Live: now, or the newest fact's time if later; a re-evaluation: the moment asked for.
    return as_of or max([now, *(f.occurred_at for c in item.changes for f in c.added)])


def _usable(
    item: _Work, stored: repo.StoredContact | None, moment: datetime, model: ScoringModel
) -> Aggregates | None:
    """The stored aggregates if they can be moved to `moment` (else: rebuilt from facts)."""
    if stored is None or stored.aggregates is None or stored.model_version != model.version:
        return None
    if stored.aggregates.as_of > moment or any(c.removed for c in item.changes):
        return None
    return stored.aggregates


def _evaluate(
    item: _Work,
    moment: datetime,
    usable: Aggregates | None,
    facts: Sequence[Fact],
    model: ScoringModel,
) -> _Evaluation:
    """Score one contact: from its stored aggregates and the facts that crossed an edge
    since, or (no usable aggregates) from all its facts."""
    added = {f.fact_id for change in item.changes for f in change.added}
    if any(change.removed for change in item.changes):
        return _evaluate_facts(item, moment, facts, added, model)
    before_facts = [f for f in facts if f.fact_id not in added]
    if usable is None:
        before = aggregate(before_facts, moment, model)
    else:
        before = usable.copy()
        advance(before, moment, before_facts, model)
    folded = fold_changes(before, item.changes, model)
    return _Evaluation(
        folded.card,
        folded.aggregates,
        lambda previous, published: explain_folded(
            folded, previous=previous, published=published, model=model
        ),
    )


def _evaluate_facts(
    item: _Work, moment: datetime, facts: Sequence[Fact], added: set[str], model: ScoringModel
) -> _Evaluation:
    # Facts were removed (an unmerge, an erasure): score from all of them, as aggregates
    # cannot take a fact out again.
    return _Evaluation(
        score(facts, moment, model),
        aggregate(facts, moment, model),
        lambda previous, published: explain(
            facts_before=[f for f in facts if f.fact_id not in added] + item.removed_facts,
            changes=item.changes,
            as_of=moment,
            model=model,
            previous=previous,
            published=published,
        ),
    )


async def _rescore(
    conn: asyncpg.Connection,
    ctx: Context,
    work: Sequence[_Work],
    *,
    trigger: str,
    as_of: datetime | None = None,
    out: Outcome,
) -> None:
    """Recompute, store and (when material) publish the scores of these contacts.

    A handful of statements whatever the number of contacts and the length of their
    histories: their stored scores and aggregates, the facts that crossed a window edge
    since (all facts only for contacts without usable aggregates), one upsert, one insert.
    """
    if not work:
        return
    stored = await repo.contacts(conn, [w.contact_id for w in work])
    now = ctx.clock()
    moments = {w.contact_id: _moment(w, as_of, now) for w in work}
    usable = {
        w.contact_id: _usable(w, stored.get(w.contact_id), moments[w.contact_id], ctx.model)
        for w in work
    }
    ranges = [(c, crossing(agg, moments[c], ctx.model)) for c, agg in usable.items() if agg]
    facts = await repo.facts_crossing(conn, ranges)
    rebuild = [c for c, agg in usable.items() if agg is None]
    if rebuild:
        facts.update(await repo.facts_of(conn, rebuild))
    rows: list[repo.StoredContact] = []
    history: list[tuple[str, str, datetime, str]] = []
    for item in work:
        cid = item.contact_id
        evaluation = _evaluate(item, moments[cid], usable[cid], facts[cid], ctx.model)
        rows.append(
            _record(
                ctx, item, stored.get(cid), evaluation, moments[cid], now, trigger, out, history
            )
        )
    await repo.save_contacts(conn, rows)
    await repo.add_history(conn, history)


def _record(
    ctx: Context,
    item: _Work,
    previous: repo.StoredContact | None,
    evaluation: _Evaluation,
    moment: datetime,
    now: datetime,
    trigger: str,
    out: Outcome,
    history: list[tuple[str, str, datetime, str]],
) -> repo.StoredContact:
    """Decide whether the change is material; if so, explain and publish it; the new row."""
    model, new = ctx.model, evaluation.card
    published = previous.published if previous else None
    material = should_publish(published, new, model, time_only=not item.changes)
    publish = ctx.publish and material
    # Reasons explain published changes (and are kept for the API).
    reasons = evaluation.explain(previous.card if previous else None, published) if material else []
    cause_id = item.cause.id if item.cause else f"scoring.reevaluation:{moment.isoformat()}"
    if publish:
        change_event = _publish_change(
            ctx, out.events, item, published, new, reasons, cause_id, moment
        )
        # The JSON of `model_dump(mode="json")` in one serialisation (nulls kept, as before).
        change_json = change_event.data_as(ScoreChanged).model_dump_json()
        history.append((item.contact_id, change_event.id, moment, change_json))
        out.published += 1
        out.published_by[trigger] += 1
    out.scored_by[trigger] += 1
    return repo.StoredContact(
        contact_id=item.contact_id,
        model_version=model.version,
        as_of=moment,
        evaluated_at=now,
        card=new,
        currency=model.currency,
        reasons=_reason_json(reasons) if material or previous is None else previous.reasons,
        cause_event_id=cause_id,
        published=new if publish or (not ctx.publish) else published,
        aggregates=evaluation.aggregates,
    )


def _publish_change(
    ctx: Context,
    events: Publisher,
    item: _Work,
    published: ScoreCard | None,
    new: ScoreCard,
    reasons: Sequence[Reason],
    cause_id: str,
    moment: datetime,
) -> CloudEvent:
    """Queue `score.changed` and the latest scores on the compacted topic; the change."""
    # A decision: its time is the moment the scores are for (DESIGN.md, pattern 7), which
    # is now (or the newest fact's time if later) live, and `as_of` in a re-evaluation.
    currency = ctx.model.currency
    data = ScoreChanged.from_scores(
        contact_id=item.contact_id,
        model_version=ctx.model.version,
        old=to_scores(published, currency) if published else None,
        new=to_scores(new, currency),
        reasons=to_reasons(reasons),
        cause_event_id=cause_id,
    )
    change = events.publish(
        ctx.settings.scores_topic,
        SCORE_CHANGED,
        data,
        key=item.contact_id,
        cause=item.cause,
        time=moment,
    )
    current = ScoreCurrent(
        contact_id=item.contact_id,
        model_version=ctx.model.version,
        scores=data.new,
        cause_event_id=data.cause_event_id,
    )
    events.publish(
        ctx.settings.scores_current_topic,
        SCORE_CURRENT,
        current,
        key=item.contact_id,
        cause=change,
        time=moment,
    )
    return change


# -- applying events ----------------------------------------------------------------------

_CASE_TYPES = frozenset(cs.EVENTS)
# The contact and privacy events that change what scoring holds; the others (created, updated,
# identity linked, consent, lifecycle, another service's erasure answer) change nothing here.
ACTS_ON_CONTACTS = frozenset(
    {ct.CONTACT_MERGED, ct.CONTACT_UNMERGED, ct.CONTACT_ERASED, pv.PRIVACY_ERASURE_REQUESTED}
)


def _case_fact(event: CloudEvent) -> tuple[str, Fact] | None:
    data = event.data
    contact_id = getattr(data, "contact_id", None)
    case_id = getattr(data, "case_id", None)
    if not isinstance(contact_id, str) or not isinstance(case_id, str):
        return None
    csat = data.csat if isinstance(data, cs.CaseCsatRecorded) else None
    detail = data.sla_kind.value.replace("_", " ") if isinstance(data, cs.CaseSlaBreached) else None
    fact = fact_from_case_event(
        event_type=event.type,
        source=event.source,
        event_id=event.id,
        occurred_at=event.time,
        case_id=case_id,
        csat=csat,
        detail=detail,
    )
    return None if fact is None else (contact_id, fact)


def _fact_of(event: CloudEvent) -> tuple[str, Fact] | None:
    if event.type == it.INTERACTION_RESOLVED:
        data = event.data_as(it.InteractionResolved)
        fact = fact_from_interaction(data, event.time)
        return None if fact is None else (data.contact_id, fact)
    if event.type in _CASE_TYPES:
        return _case_fact(event)
    return None


def _contacts_named(event: CloudEvent) -> list[str]:
    data = event.data
    if isinstance(data, ct.ContactMerged):
        return [data.survivor_id, *data.merged_ids]
    if isinstance(data, ct.ContactUnmerged):
        return [data.survivor_id, data.contact_id]
    contact_id = getattr(data, "contact_id", None)
    return [contact_id] if isinstance(contact_id, str) else []


async def apply_events(
    conn: asyncpg.Connection, events: Sequence[CloudEvent], ctx: Context
) -> Outcome:
    """Claim a batch of decoded events in the inbox, then apply the new ones (a rebuild)."""
    fresh = await inbox.claim(conn, ctx.settings.inbox_consumer, [(e.source, e.id) for e in events])
    todo: list[CloudEvent] = []
    for event in events:
        key = (event.source, event.id)
        if key in fresh:
            fresh.discard(key)  # a second copy in the same batch is a duplicate too
            todo.append(event)
    out = await apply_claimed_events(conn, todo, ctx)
    out.duplicates = len(events) - len(todo)
    return out


async def apply_claimed_events(
    conn: asyncpg.Connection, todo: Sequence[CloudEvent], ctx: Context
) -> Outcome:
    """Apply events already claimed in the inbox, in the caller's transaction; publish via the
    outbox. The worker's consumer pipeline claims them, as for every kit consumer."""
    out = Outcome(Publisher(ctx.settings.source))
    if not todo:
        return out
    facts = [_fact_of(e) for e in todo]
    named = {
        c
        for e, found in zip(todo, facts, strict=True)
        if found is not None or e.type in ACTS_ON_CONTACTS
        for c in _contacts_named(e)
    }
    now = await subjects.current(conn, named)
    await repo.lock_contacts(conn, named | set(now.survivors.values()))
    pending: list[tuple[CloudEvent, str, Fact]] = []
    for event, found in zip(todo, facts, strict=True):
        if found is not None:
            pending.append((event, found[0], found[1]))
            continue
        if event.type not in ACTS_ON_CONTACTS:
            continue  # no effect on scores (a profile or consent change): the run goes on
        # A merge, unmerge or erasure: first score the facts that came before it.
        await _apply_facts(conn, ctx, pending, out)
        pending = []
        await _apply_contact_event(conn, ctx, event, out)
    await _apply_facts(conn, ctx, pending, out)
    out.applied = len(todo)
    await out.events.flush(conn)
    return out


async def _apply_facts(
    conn: asyncpg.Connection,
    ctx: Context,
    pending: Sequence[tuple[CloudEvent, str, Fact]],
    out: Outcome,
) -> None:
    if not pending:
        return
    now = await subjects.current(conn, [contact for _, contact, _ in pending])
    new_facts: list[repo.NewFact] = []
    cause_of: dict[str, CloudEvent] = {}
    for event, contact, fact in pending:
        if now.is_erased(contact) or fact.fact_id in cause_of:
            continue
        new_facts.append(repo.NewFact(fact, now.survivor_of(contact), contact, event.id))
        cause_of[fact.fact_id] = event
    inserted = await repo.insert_facts(conn, new_facts)
    work: dict[str, _Work] = {}
    for new in new_facts:
        if new.fact.fact_id not in inserted:
            continue  # the same interaction already came under another event id
        item = work.setdefault(new.contact_id, _Work(new.contact_id))
        item.changes.append(Change(describe(new.fact), (new.fact,)))
        item.cause = cause_of[new.fact.fact_id]
    await _rescore(conn, ctx, list(work.values()), trigger="event", out=out)


async def _apply_contact_event(
    conn: asyncpg.Connection, ctx: Context, event: CloudEvent, out: Outcome
) -> None:
    data = event.data
    if isinstance(data, ct.ContactMerged):
        await _merge(conn, ctx, event, data, out)
    elif isinstance(data, ct.ContactUnmerged):
        await _unmerge(conn, ctx, event, data, out)
    elif isinstance(data, ct.ContactErased):
        await _erase(conn, ctx, event, data.contact_id, out)
    elif isinstance(data, pv.ErasureRequested):
        erased = await _erase(conn, ctx, event, data.contact_id, out)
        if ctx.publish:
            out.events.add(
                subjects.erasure_completed(
                    event,
                    data,
                    service="scoring",
                    source=ctx.settings.source,
                    topic=ctx.settings.privacy_topic,
                    records_erased=erased,
                )
            )


async def _merge(
    conn: asyncpg.Connection,
    ctx: Context,
    event: CloudEvent,
    data: ct.ContactMerged,
    out: Outcome,
) -> None:
    now = await subjects.current(conn, [data.survivor_id])
    survivor = now.survivor_of(data.survivor_id)
    merged = [m for m in data.merged_ids if m != survivor]
    if not merged or now.is_erased(data.survivor_id):
        return
    merged_facts = await repo.facts_of(conn, merged)
    await repo.move_facts(conn, merged, survivor)
    await subjects.remember_merge(conn, merged, survivor)
    await repo.delete_contacts(conn, merged)
    if ctx.publish:
        for m in merged:  # a null value on the compacted topic removes the key
            out.events.tombstone(ctx.settings.scores_current_topic, key=m)
    changes = [
        Change(f"merged contact {m}", tuple(merged_facts[m])) for m in merged if merged_facts[m]
    ]
    if not changes and not await repo.contact(conn, survivor):
        return
    work = _Work(survivor, changes or [Change(f"merged contact {merged[0]}")], event)
    await _rescore(conn, ctx, [work], trigger="merge", out=out)


async def _unmerge(
    conn: asyncpg.Connection,
    ctx: Context,
    event: CloudEvent,
    data: ct.ContactUnmerged,
    out: Outcome,
) -> None:
    survivor, restored = data.survivor_id, data.contact_id
    moved = await repo.facts_from_origin(conn, contact_id=survivor, origin_id=restored)
    await repo.split_facts(conn, survivor, restored)
    await subjects.forget_merge(conn, restored)
    work = [
        _Work(
            survivor,
            [Change(f"unmerged contact {restored}", removed=frozenset(f.fact_id for f in moved))],
            event,
            removed_facts=moved,
        ),
        _Work(restored, [Change(f"unmerged from contact {survivor}", tuple(moved))], event),
    ]
    await _rescore(conn, ctx, work, trigger="merge", out=out)


async def _erase(
    conn: asyncpg.Connection, ctx: Context, event: CloudEvent, contact_id: str, out: Outcome
) -> int:
    ids = [contact_id, *await subjects.merged_into(conn, contact_id)]
    # An erased contact that had been merged into another: its events leave the survivor too.
    elsewhere = await repo.facts_from_elsewhere(conn, ids)
    await repo.lock_contacts(conn, elsewhere)
    erased = await repo.erase(conn, ids)
    await subjects.remember_erased(conn, ids)
    if ctx.publish:
        out.events.tombstone(ctx.settings.scores_current_topic, key=contact_id)
    work = [
        _Work(
            survivor,
            [
                Change(
                    "events of an erased contact removed",
                    removed=frozenset(f.fact_id for f in gone),
                )
            ],
            event,
            removed_facts=gone,
        )
        for survivor, gone in elsewhere.items()
    ]
    await _rescore(conn, ctx, work, trigger="merge", out=out)
    log.info("contact erased", extra={"contact_id": contact_id, "rows": erased})
    return erased


# -- time passing -------------------------------------------------------------------------


async def reevaluate(
    pool: asyncpg.Pool, ctx: Context, *, as_of: datetime | None = None
) -> tuple[int, int]:
    """Re-score contacts whose scores are stale (time passed, or another model version).

    Publishes only tier and band changes. Runs a page per transaction under an advisory
    lock, so that of several workers one does each page. Returns (evaluated, published).
    """
    moment = as_of or ctx.clock()
    older_than = moment.timestamp() - ctx.settings.reevaluate_min_age_seconds
    evaluated = published = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            if not await repo.try_lock(conn, REEVALUATION_LOCK):
                break
            ids = await repo.stale_contacts(
                conn,
                older_than=datetime.fromtimestamp(older_than, UTC),
                model_version=ctx.model.version,
                limit=ctx.settings.reevaluate_page_size,
            )
            if not ids:
                break
            await repo.lock_contacts(conn, ids)
            out = Outcome(Publisher(ctx.settings.source))
            await _rescore(
                conn, ctx, [_Work(i) for i in ids], trigger="time", as_of=moment, out=out
            )
            await out.events.flush(conn)
        out.count()
        evaluated += len(ids)
        published += out.published
        if len(ids) < ctx.settings.reevaluate_page_size:
            break
    return evaluated, published


async def rescore_all(pool: asyncpg.Pool, ctx: Context, *, as_of: datetime) -> int:
    """Re-score every contact as of `as_of` and mark it published (the end of a rebuild)."""
    after, total = "", 0
    rebuild_ctx = replace(ctx, publish=False)
    while True:
        async with pool.acquire() as conn, conn.transaction():
            ids = await repo.contacts_with_facts(conn, after=after, limit=500)
            if not ids:
                return total
            await repo.lock_contacts(conn, ids)
            out = Outcome(Publisher(ctx.settings.source))
            await _rescore(
                conn, rebuild_ctx, [_Work(i) for i in ids], trigger="time", as_of=as_of, out=out
            )
            for c in (await repo.contacts(conn, ids)).values():
                current = ScoreCurrent(
                    contact_id=c.contact_id,
                    model_version=c.model_version,
                    scores=to_scores(c.card, c.currency),
                    cause_event_id=c.cause_event_id,
                )
                out.events.publish(
                    ctx.settings.scores_current_topic,
                    SCORE_CURRENT,
                    current,
                    key=c.contact_id,
                    time=c.as_of,
                )
            await out.events.flush(conn)
        total += len(ids)
        after = ids[-1]
