"""Subjects: the contact ids a service keeps data about, and what contacts said of them.

contacts decides merges and erasures (DESIGN.md, patterns 5 and 6); every service that keeps
data about contacts remembers them here, in its own database (`kit_merged_subjects`,
`kit_erased_subjects`, a kit migration), so that a late event for a merged id counts for its
survivor and one for an erased id is dropped:

    now = await subjects.current(conn, contact_ids)     # one statement for a whole batch
    target = now.survivor_of(contact_id)
    if now.is_erased(contact_id): ...                    # keep nothing

    contact.merged             fold the merged ids' data into the survivor, then
                               remember_merge(conn, merged_ids, survivor)
    contact.unmerged           give the restored id its data back, forget_merge(conn, restored)
    contact.erased             ids = [contact_id, *await merged_into(conn, contact_id)]: delete
                               their data, remember_erased(conn, ids)
    erasure_requested          the same, and queue erasure_completed(event, data, ...)

Merges are kept one step deep: a second merge re-points what pointed at the merged id, so
`current` needs no recursion. Each function is one statement on the caller's connection, in
the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from crm_contracts import CloudEvent, new_event
from crm_contracts import privacy as pv
from crm_kit.outbox import OutboxMessage, event_message


@dataclass(frozen=True, slots=True)
class Subjects:
    """What is known of some ids: the survivor of each merged one, and which are erased."""

    survivors: Mapping[str, str]  # merged id -> survivor, for the ids asked that were merged
    erased: frozenset[str]  # of the ids asked and their survivors, those erased

    def survivor_of(self, subject_id: str) -> str:
        """The id data about `subject_id` belongs to now (itself unless merged)."""
        return self.survivors.get(subject_id, subject_id)

    def is_erased(self, subject_id: str) -> bool:
        """Whether `subject_id`, or the survivor it was merged into, was erased."""
        return subject_id in self.erased or self.survivor_of(subject_id) in self.erased


async def current(conn: asyncpg.Connection, subject_ids: Iterable[str]) -> Subjects:
    """The survivor of each id and which of the ids and survivors are erased (one statement)."""
    rows = await conn.fetch(
        """
        SELECT i.id, m.survivor_id, e.subject_id IS NOT NULL AS erased,
            s.subject_id IS NOT NULL AS survivor_erased
        FROM unnest($1::text[]) AS i(id)
        LEFT JOIN kit_merged_subjects m ON m.merged_id = i.id
        LEFT JOIN kit_erased_subjects e ON e.subject_id = i.id
        LEFT JOIN kit_erased_subjects s ON s.subject_id = m.survivor_id
        WHERE m.merged_id IS NOT NULL OR e.subject_id IS NOT NULL
        """,
        list(set(subject_ids)),
    )
    survivors = {r["id"]: r["survivor_id"] for r in rows if r["survivor_id"] is not None}
    erased = {r["id"] for r in rows if r["erased"]}
    erased.update(r["survivor_id"] for r in rows if r["survivor_erased"])
    return Subjects(survivors, frozenset(erased))


async def remember_merge(
    conn: asyncpg.Connection, merged_ids: Sequence[str], survivor_id: str
) -> None:
    """Point merged ids, and those merged into them before, at the survivor (a current id)."""
    await conn.execute(
        """
        INSERT INTO kit_merged_subjects (merged_id, survivor_id)
        SELECT m, $2::text FROM unnest($1::text[]) AS m WHERE m <> $2::text
        UNION
        SELECT merged_id, $2::text FROM kit_merged_subjects
        WHERE survivor_id = ANY($1::text[]) AND merged_id <> $2::text
        ON CONFLICT (merged_id) DO UPDATE SET survivor_id = EXCLUDED.survivor_id
        """,
        list(merged_ids),
        survivor_id,
    )


async def forget_merge(conn: asyncpg.Connection, merged_id: str) -> None:
    """Forget that an id was merged (an unmerge): its events are its own again."""
    await conn.execute("DELETE FROM kit_merged_subjects WHERE merged_id = $1", merged_id)


async def forget_merges(conn: asyncpg.Connection) -> None:
    """Forget every merge (a rebuild, which reads them again); erased ids stay erased."""
    await conn.execute("TRUNCATE kit_merged_subjects")


async def merged_into(conn: asyncpg.Connection, survivor_id: str) -> list[str]:
    """The ids merged into `survivor_id`, in order."""
    rows = await conn.fetch(
        "SELECT merged_id FROM kit_merged_subjects WHERE survivor_id = $1 ORDER BY merged_id",
        survivor_id,
    )
    return [row["merged_id"] for row in rows]


async def remember_erased(conn: asyncpg.Connection, subject_ids: Sequence[str]) -> None:
    """Remember these ids as erased and forget their merges, either way."""
    await conn.execute(
        """
        WITH unmerged AS (
            DELETE FROM kit_merged_subjects
            WHERE merged_id = ANY($1::text[]) OR survivor_id = ANY($1::text[])
        )
        INSERT INTO kit_erased_subjects (subject_id)
        SELECT DISTINCT unnest($1::text[])
        ON CONFLICT DO NOTHING
        """,
        list(subject_ids),
    )


def erasure_completed(
    request: CloudEvent | None,
    data: pv.ErasureRequested,
    *,
    service: str,
    source: str,
    topic: str,
    records_erased: int | None,
    time: datetime | None = None,
    correlation_id: str | None = None,
) -> OutboxMessage:
    """A service's answer to an erasure request, for the outbox: `privacy.erasure_completed`
    keyed by the contact, caused by `request` (its trace ids), at `time` (default: now).

    contacts answers a request it made itself: no `request` event, the correlation id of the
    call that asked for it."""
    event = new_event(
        pv.PRIVACY_ERASURE_COMPLETED,
        pv.ErasureCompleted(
            request_id=data.request_id,
            contact_id=data.contact_id,
            service=service,
            records_erased=records_erased,
        ),
        source=source,
        cause=request,
        correlationid=None if request is not None else correlation_id,
        time=time,
    )
    return event_message(topic, event, key=data.contact_id)
