"""All SQL of the scoring service (asyncpg; the caller owns the transaction)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from crm_scoring.aggregates import Aggregates, CaseMark, Crossing
from crm_scoring.domain import Fact, ScoreCard

_FACT_COLUMNS = (
    "fact_id, contact_id, kind, occurred_at, channel, amount, currency, csat, nps, case_id, detail"
)
_CONTACT_COLUMNS = (
    "contact_id, model_version, as_of, evaluated_at, engagement, engagement_band, recency, "
    "frequency, monetary, value_tier, clv, currency, churn_risk, churn_band, reasons, "
    "cause_event_id, published, aggregates"
)
SORTABLE_SCORES = {
    "engagement": "engagement",
    "clv": "clv",
    "churn_risk": "churn_risk",
    "recency": "recency",
    "frequency": "frequency",
    "monetary": "monetary",
}


@dataclass(frozen=True, slots=True)
class NewFact:
    """A fact to insert, with the contact it counts for and the one its event named."""

    fact: Fact
    contact_id: str
    origin_contact_id: str
    event_id: str


@dataclass(frozen=True, slots=True)
class StoredContact:
    """A row of scoring_contacts."""

    contact_id: str
    model_version: str
    as_of: datetime
    evaluated_at: datetime
    card: ScoreCard
    currency: str
    reasons: list[dict[str, Any]]
    cause_event_id: str | None
    published: ScoreCard | None
    aggregates: Aggregates | None = None  # None: rebuilt from the facts when next scored


def card_to_json(card: ScoreCard) -> dict[str, Any]:
    """A score card as JSON (clv as a string)."""
    return {
        "engagement": card.engagement,
        "engagement_band": card.engagement_band,
        "recency": card.recency,
        "frequency": card.frequency,
        "monetary": card.monetary,
        "value_tier": card.value_tier,
        "clv": str(card.clv),
        "churn_risk": card.churn_risk,
        "churn_band": card.churn_band,
    }


def card_from_json(data: dict[str, Any]) -> ScoreCard:
    """The inverse of `card_to_json`."""
    return ScoreCard(
        engagement=int(data["engagement"]),
        engagement_band=str(data["engagement_band"]),
        recency=int(data["recency"]),
        frequency=int(data["frequency"]),
        monetary=int(data["monetary"]),
        value_tier=str(data["value_tier"]),
        clv=Decimal(str(data["clv"])),
        churn_risk=float(data["churn_risk"]),
        churn_band=str(data["churn_band"]),
    )


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def aggregates_to_json(agg: Aggregates) -> dict[str, Any]:
    """Aggregates as JSON: floats as their repr and decimals as strings, so nothing is lost."""
    return {
        "as_of": agg.as_of.isoformat(),
        "anchor": agg.anchor.isoformat(),
        "engagement": repr(agg.engagement),
        "engagement_then": repr(agg.engagement_then),
        "signals": {name: repr(total) for name, total in agg.signals.items()},
        "purchases": agg.purchases,
        "revenue": str(agg.revenue),
        "first_purchase": _iso(agg.first_purchase),
        "last_purchase": _iso(agg.last_purchase),
        "window_purchases": agg.window_purchases,
        "window_net": str(agg.window_net),
        "latest": _iso(agg.latest),
        "cases": {
            case_id: [m.at.isoformat(), m.fact_id, _iso(m.open_since)]
            for case_id, m in agg.cases.items()
        },
    }


def aggregates_from_json(data: dict[str, Any]) -> Aggregates:
    """The inverse of `aggregates_to_json`."""
    return Aggregates(
        as_of=datetime.fromisoformat(data["as_of"]),
        anchor=datetime.fromisoformat(data["anchor"]),
        engagement=float(data["engagement"]),
        engagement_then=float(data["engagement_then"]),
        signals={name: float(total) for name, total in data["signals"].items()},
        purchases=int(data["purchases"]),
        revenue=Decimal(data["revenue"]),
        first_purchase=_time(data["first_purchase"]),
        last_purchase=_time(data["last_purchase"]),
        window_purchases=int(data["window_purchases"]),
        window_net=Decimal(data["window_net"]),
        latest=_time(data["latest"]),
        cases={
            case_id: CaseMark(datetime.fromisoformat(at), fact_id, _time(since))
            for case_id, (at, fact_id, since) in data["cases"].items()
        },
    )


def _contact(row: asyncpg.Record) -> StoredContact:
    card = ScoreCard(
        engagement=row["engagement"],
        engagement_band=row["engagement_band"],
        recency=row["recency"],
        frequency=row["frequency"],
        monetary=row["monetary"],
        value_tier=row["value_tier"],
        clv=row["clv"],
        churn_risk=row["churn_risk"],
        churn_band=row["churn_band"],
    )
    published = row["published"]
    return StoredContact(
        contact_id=row["contact_id"],
        model_version=row["model_version"],
        as_of=row["as_of"],
        evaluated_at=row["evaluated_at"],
        card=card,
        currency=row["currency"],
        reasons=list(row["reasons"] or []),
        cause_event_id=row["cause_event_id"],
        published=card_from_json(published) if published is not None else None,
        aggregates=aggregates_from_json(row["aggregates"]) if row["aggregates"] else None,
    )


def _fact(row: asyncpg.Record) -> Fact:
    return Fact(
        fact_id=row["fact_id"],
        kind=row["kind"],
        occurred_at=row["occurred_at"],
        channel=row["channel"],
        amount=row["amount"],
        currency=row["currency"],
        csat=row["csat"],
        nps=row["nps"],
        case_id=row["case_id"],
        detail=row["detail"],
    )


async def lock_contacts(conn: asyncpg.Connection, contact_ids: Iterable[str]) -> None:
    """Serialise work on these contacts until the transaction ends (one order: no deadlocks)."""
    ids = sorted(set(contact_ids))
    if ids:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(h) FROM "
            "(SELECT DISTINCT hashtextextended(i, 7) AS h FROM unnest($1::text[]) AS i) AS t "
            "ORDER BY h",
            ids,
        )


async def try_lock(conn: asyncpg.Connection, key: int) -> bool:
    """A transaction-level advisory lock, if free."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", key))


async def insert_facts(conn: asyncpg.Connection, facts: Sequence[NewFact]) -> set[str]:
    """Insert facts; return the ids inserted (a fact already known is left out)."""
    if not facts:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO scoring_facts (fact_id, contact_id, origin_contact_id, kind, occurred_at,
            channel, amount, currency, csat, nps, case_id, detail, event_id)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
            $6::text[], $7::numeric[], $8::text[], $9::smallint[], $10::smallint[], $11::text[],
            $12::text[], $13::text[])
        ON CONFLICT (fact_id) DO NOTHING
        RETURNING fact_id
        """,
        [n.fact.fact_id for n in facts],
        [n.contact_id for n in facts],
        [n.origin_contact_id for n in facts],
        [n.fact.kind for n in facts],
        [n.fact.occurred_at for n in facts],
        [n.fact.channel for n in facts],
        [n.fact.amount for n in facts],
        [n.fact.currency for n in facts],
        [n.fact.csat for n in facts],
        [n.fact.nps for n in facts],
        [n.fact.case_id for n in facts],
        [n.fact.detail for n in facts],
        [n.event_id for n in facts],
    )
    return {row["fact_id"] for row in rows}


async def facts_of(conn: asyncpg.Connection, contact_ids: Iterable[str]) -> dict[str, list[Fact]]:
    """Every fact of each contact."""
    ids = list(set(contact_ids))
    out: dict[str, list[Fact]] = {i: [] for i in ids}
    rows = await conn.fetch(
        f"SELECT {_FACT_COLUMNS} FROM scoring_facts WHERE contact_id = ANY($1::text[])", ids
    )
    for row in rows:
        out[row["contact_id"]].append(_fact(row))
    return out


_F_COLUMNS = ", ".join(f"f.{c.strip()}" for c in _FACT_COLUMNS.split(","))


async def facts_crossing(
    conn: asyncpg.Connection, ranges: Sequence[tuple[str, Crossing]]
) -> dict[str, list[Fact]]:
    """For each contact, its facts in the ranges of its crossing (one statement for all):
    later than `after`, leaving the RFM window, passing the lookback edge."""
    out: dict[str, list[Fact]] = {contact_id: [] for contact_id, _ in ranges}
    if not ranges:
        return out
    rows = await conn.fetch(
        f"""
        SELECT {_FACT_COLUMNS} FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[],
            $4::timestamptz[], $5::timestamptz[], $6::timestamptz[]) AS u(c, af, wf, wt, lf, lt)
        CROSS JOIN LATERAL (
            SELECT {_F_COLUMNS} FROM scoring_facts f
            WHERE f.contact_id = u.c AND f.occurred_at > u.af
            UNION ALL
            SELECT {_F_COLUMNS} FROM scoring_facts f
            WHERE f.contact_id = u.c AND f.occurred_at >= u.wf AND f.occurred_at < u.wt
                AND f.kind IN ('purchase', 'refund')
            UNION ALL
            SELECT {_F_COLUMNS} FROM scoring_facts f
            WHERE f.contact_id = u.c AND f.occurred_at > u.lf AND f.occurred_at <= u.lt
        ) AS crossed
        """,
        [contact_id for contact_id, _ in ranges],
        [r.after for _, r in ranges],
        [r.window_from for _, r in ranges],
        [r.window_to for _, r in ranges],
        [r.lookback_from for _, r in ranges],
        [r.lookback_to for _, r in ranges],
    )
    for row in rows:
        out[row["contact_id"]].append(_fact(row))
    return out


async def facts_from_origin(
    conn: asyncpg.Connection, *, contact_id: str, origin_id: str
) -> list[Fact]:
    """The facts counting for `contact_id` whose events were for `origin_id`."""
    rows = await conn.fetch(
        f"SELECT {_FACT_COLUMNS} FROM scoring_facts "
        "WHERE contact_id = $1 AND origin_contact_id = $2",
        contact_id,
        origin_id,
    )
    return [_fact(row) for row in rows]


async def contacts(
    conn: asyncpg.Connection, contact_ids: Iterable[str]
) -> dict[str, StoredContact]:
    """The stored scores of those contacts that have some."""
    rows = await conn.fetch(
        f"SELECT {_CONTACT_COLUMNS} FROM scoring_contacts WHERE contact_id = ANY($1::text[])",
        list(set(contact_ids)),
    )
    return {row["contact_id"]: _contact(row) for row in rows}


async def contact(conn: asyncpg.Connection, contact_id: str) -> StoredContact | None:
    """The stored scores of one contact."""
    return (await contacts(conn, [contact_id])).get(contact_id)


async def save_contacts(conn: asyncpg.Connection, rows: Sequence[StoredContact]) -> None:
    """Insert or replace the scores of these contacts (one statement)."""
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO scoring_contacts (contact_id, model_version, as_of, evaluated_at, engagement,
            engagement_band, recency, frequency, monetary, value_tier, clv, currency, churn_risk,
            churn_band, reasons, cause_event_id, published, aggregates)
        SELECT c, v, a, e, eng, eb, r, f, m, t, clv, cur, cr, cb, rs::jsonb, ce, p::jsonb,
            ag::jsonb
        FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[],
            $5::smallint[], $6::text[], $7::smallint[], $8::smallint[], $9::smallint[],
            $10::text[], $11::numeric[], $12::text[], $13::float8[], $14::text[], $15::text[],
            $16::text[], $17::text[], $18::text[])
            AS u(c, v, a, e, eng, eb, r, f, m, t, clv, cur, cr, cb, rs, ce, p, ag)
        ON CONFLICT (contact_id) DO UPDATE SET
            model_version = EXCLUDED.model_version, as_of = EXCLUDED.as_of,
            evaluated_at = EXCLUDED.evaluated_at, engagement = EXCLUDED.engagement,
            engagement_band = EXCLUDED.engagement_band, recency = EXCLUDED.recency,
            frequency = EXCLUDED.frequency, monetary = EXCLUDED.monetary,
            value_tier = EXCLUDED.value_tier, clv = EXCLUDED.clv, currency = EXCLUDED.currency,
            churn_risk = EXCLUDED.churn_risk, churn_band = EXCLUDED.churn_band,
            reasons = EXCLUDED.reasons, cause_event_id = EXCLUDED.cause_event_id,
            published = EXCLUDED.published, aggregates = EXCLUDED.aggregates
        """,
        [r.contact_id for r in rows],
        [r.model_version for r in rows],
        [r.as_of for r in rows],
        [r.evaluated_at for r in rows],
        [r.card.engagement for r in rows],
        [r.card.engagement_band for r in rows],
        [r.card.recency for r in rows],
        [r.card.frequency for r in rows],
        [r.card.monetary for r in rows],
        [r.card.value_tier for r in rows],
        [r.card.clv for r in rows],
        [r.currency for r in rows],
        [r.card.churn_risk for r in rows],
        [r.card.churn_band for r in rows],
        [json.dumps(r.reasons) for r in rows],
        [r.cause_event_id for r in rows],
        [json.dumps(card_to_json(r.published)) if r.published else None for r in rows],
        [json.dumps(aggregates_to_json(r.aggregates)) if r.aggregates else None for r in rows],
    )


async def add_history(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, datetime, str]]
) -> None:
    """Record published changes: (contact_id, event_id, as_of, ScoreChanged data as JSON text)."""
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO scoring_history (contact_id, event_id, as_of, change)
        SELECT c, e, a, ch::jsonb
        FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS u(c, e, a, ch)
        """,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )


async def move_facts(conn: asyncpg.Connection, from_ids: Sequence[str], to_id: str) -> None:
    """Fold the facts of `from_ids` into `to_id` (a merge)."""
    await conn.execute(
        "UPDATE scoring_facts SET contact_id = $2 WHERE contact_id = ANY($1::text[])",
        list(from_ids),
        to_id,
    )


async def split_facts(conn: asyncpg.Connection, survivor_id: str, restored_id: str) -> None:
    """Give a restored contact back the facts whose events were for it (an unmerge)."""
    await conn.execute(
        "UPDATE scoring_facts SET contact_id = $2 WHERE contact_id = $1 AND origin_contact_id = $2",
        survivor_id,
        restored_id,
    )


async def delete_contacts(conn: asyncpg.Connection, contact_ids: Sequence[str]) -> None:
    """Drop the scores of contacts that no longer exist on their own."""
    await conn.execute(
        "DELETE FROM scoring_contacts WHERE contact_id = ANY($1::text[])", list(contact_ids)
    )


async def facts_from_elsewhere(
    conn: asyncpg.Connection, origin_ids: Sequence[str]
) -> dict[str, list[Fact]]:
    """Facts whose events were for these contacts but now count for another (a survivor)."""
    rows = await conn.fetch(
        f"SELECT {_FACT_COLUMNS} FROM scoring_facts "
        "WHERE origin_contact_id = ANY($1::text[]) AND NOT contact_id = ANY($1::text[])",
        list(origin_ids),
    )
    out: dict[str, list[Fact]] = {}
    for row in rows:
        out.setdefault(row["contact_id"], []).append(_fact(row))
    return out


async def erase(conn: asyncpg.Connection, contact_ids: Sequence[str]) -> int:
    """Delete everything kept about these contacts; the number of rows deleted."""
    ids = list(contact_ids)
    facts = await conn.execute(
        "DELETE FROM scoring_facts WHERE contact_id = ANY($1::text[]) "
        "OR origin_contact_id = ANY($1::text[])",
        ids,
    )
    scores = await conn.execute(
        "DELETE FROM scoring_contacts WHERE contact_id = ANY($1::text[])", ids
    )
    history = await conn.execute(
        "DELETE FROM scoring_history WHERE contact_id = ANY($1::text[])", ids
    )
    return sum(int(status.split()[-1]) for status in (facts, scores, history))


async def stale_contacts(
    conn: asyncpg.Connection, *, older_than: datetime, model_version: str, limit: int
) -> list[str]:
    """Contacts scored before `older_than` or with another model version, oldest first."""
    rows = await conn.fetch(
        """
        SELECT contact_id FROM scoring_contacts
        WHERE as_of < $1 OR model_version <> $2
        ORDER BY as_of, contact_id
        LIMIT $3
        """,
        older_than,
        model_version,
        limit,
    )
    return [row["contact_id"] for row in rows]


async def contacts_with_facts(conn: asyncpg.Connection, *, after: str, limit: int) -> list[str]:
    """Ids of contacts that have facts, in order, a page at a time."""
    rows = await conn.fetch(
        "SELECT DISTINCT contact_id FROM scoring_facts WHERE contact_id > $1 "
        "ORDER BY contact_id LIMIT $2",
        after,
        limit,
    )
    return [row["contact_id"] for row in rows]


async def reset_for_rebuild(conn: asyncpg.Connection, inbox_consumer: str) -> None:
    """Forget facts, scores and the inbox; keep the history (merges: `subjects.forget_merges`)."""
    await conn.execute("TRUNCATE scoring_facts")
    await conn.execute("DELETE FROM scoring_contacts")
    await conn.execute("DELETE FROM kit_inbox WHERE consumer = $1", inbox_consumer)


async def history(
    conn: asyncpg.Connection, contact_id: str, *, limit: int, before_id: int | None
) -> list[asyncpg.Record]:
    """Published changes of a contact, newest first."""
    return list(
        await conn.fetch(
            """
            SELECT id, event_id, as_of, recorded_at, change FROM scoring_history
            WHERE contact_id = $1 AND ($2::bigint IS NULL OR id < $2)
            ORDER BY id DESC LIMIT $3
            """,
            contact_id,
            before_id,
            limit,
        )
    )


async def top(
    conn: asyncpg.Connection, *, score: str, descending: bool, limit: int
) -> list[asyncpg.Record]:
    """Contacts with the highest (or lowest) value of a score."""
    column = SORTABLE_SCORES[score]  # a fixed column name, never caller text
    direction = "DESC" if descending else "ASC"
    return list(
        await conn.fetch(
            f"SELECT contact_id, {column} AS value, value_tier, churn_band, engagement_band, "
            f"as_of FROM scoring_contacts ORDER BY {column} {direction}, contact_id LIMIT $1",
            limit,
        )
    )


async def histogram(
    conn: asyncpg.Connection, *, score: str, low: float, high: float, buckets: int
) -> tuple[int, list[int]]:
    """How many contacts fall in each of `buckets` equal ranges of a score."""
    column = SORTABLE_SCORES[score]
    rows = await conn.fetch(
        f"SELECT width_bucket({column}::float8, $1, $2, $3) AS b, count(*) AS n "
        "FROM scoring_contacts GROUP BY b",
        low,
        high,
        buckets,
    )
    counts = [0] * buckets
    total = 0
    for row in rows:
        index = min(max(int(row["b"]), 1), buckets) - 1  # the top edge falls in the last bucket
        counts[index] += row["n"]
        total += row["n"]
    return total, counts


async def count_by(conn: asyncpg.Connection, column: str) -> dict[str, int]:
    """Contacts per value of a band column."""
    if column not in ("value_tier", "churn_band", "engagement_band"):
        raise ValueError(column)
    rows = await conn.fetch(
        f"SELECT {column} AS k, count(*) AS n FROM scoring_contacts GROUP BY {column}"
    )
    return {row["k"]: row["n"] for row in rows}


async def max_clv(conn: asyncpg.Connection) -> float:
    """The largest CLV (the top of the CLV histogram)."""
    return float(await conn.fetchval("SELECT coalesce(max(clv), 0) FROM scoring_contacts"))
