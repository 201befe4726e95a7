"""Enrolments: contacts' ways through campaigns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from crm_campaigns.domain import Arm, EnrolmentStatus
from crm_kit.rows import records


@dataclass(slots=True)
class Enrolment:
    """One contact's way through one campaign."""

    id: str
    campaign_id: str
    contact_id: str
    origin_contact_id: str
    entry: int
    arm: Arm
    status: EnrolmentStatus
    entered_at: datetime
    cause_event_id: str | None
    next_step_id: str | None
    due_at: datetime | None
    held: bool
    exited_at: datetime | None
    exit_reason: str | None

    @property
    def active(self) -> bool:
        return self.status == EnrolmentStatus.ACTIVE


COLUMNS = tuple(f.name for f in fields(Enrolment))
_SELECT = ", ".join(COLUMNS)
_UPDATES = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "id")


def enrolment_of(row: asyncpg.Record) -> Enrolment:
    values = {name: row[name] for name in COLUMNS}
    values["arm"] = Arm(values["arm"])
    values["status"] = EnrolmentStatus(values["status"])
    return Enrolment(**values)


async def enrolments_of(
    conn: asyncpg.Connection, contact_ids: Iterable[str], *, lock: bool = True
) -> list[Enrolment]:
    """Every enrolment of these contacts, oldest first; locked for the caller's transaction
    unless `lock=False`."""
    rows = await conn.fetch(
        f"SELECT {_SELECT} FROM enrolments WHERE contact_id = ANY($1::text[]) "
        "ORDER BY entered_at, id" + (" FOR UPDATE" if lock else ""),
        sorted(set(contact_ids)),
    )
    return [enrolment_of(row) for row in rows]


async def enrolment(conn: asyncpg.Connection, enrolment_id: str) -> Enrolment | None:
    row = await conn.fetchrow(f"SELECT {_SELECT} FROM enrolments WHERE id = $1", enrolment_id)
    return enrolment_of(row) if row else None


async def due(conn: asyncpg.Connection, *, now: datetime, limit: int) -> list[Enrolment]:
    """Active enrolments of active campaigns with a step due by `now`, not held, locked;
    other rounds (other replicas) pass them by. `NO KEY UPDATE`: a touch or conversion
    recorded meanwhile for one of them (a foreign key) does not wait for the round."""
    rows = await conn.fetch(
        f"SELECT {', '.join('e.' + c for c in COLUMNS)} FROM enrolments e "
        "JOIN campaigns c ON c.id = e.campaign_id AND c.status = 'active' "
        "WHERE e.status = 'active' AND NOT e.held AND e.due_at <= $1 "
        "ORDER BY e.due_at, e.id LIMIT $2 FOR NO KEY UPDATE OF e SKIP LOCKED",
        now,
        limit,
    )
    return [enrolment_of(row) for row in rows]


async def active_in(conn: asyncpg.Connection, campaign_id: str) -> list[Enrolment]:
    """The active enrolments of a campaign, locked."""
    rows = await conn.fetch(
        f"SELECT {_SELECT} FROM enrolments WHERE campaign_id = $1 AND status = 'active' "
        "ORDER BY id FOR UPDATE",
        campaign_id,
    )
    return [enrolment_of(row) for row in rows]


async def save_enrolments(conn: asyncpg.Connection, changed: Sequence[Enrolment]) -> None:
    """Insert or update these enrolments (exits first, so that a re-entry in the same batch
    finds no active enrolment in its way)."""
    if not changed:
        return
    ordered = sorted(changed, key=lambda e: e.status == EnrolmentStatus.ACTIVE)
    for group in ([e for e in ordered if not e.active], [e for e in ordered if e.active]):
        if group:
            await conn.execute(
                f"INSERT INTO enrolments ({_SELECT}) SELECT {_SELECT} "
                "FROM jsonb_populate_recordset(NULL::enrolments, $1::jsonb) "
                f"ON CONFLICT (id) DO UPDATE SET {_UPDATES}",
                records(group),
            )


async def restore_enrolments(conn: asyncpg.Connection, restored_id: str, survivor_id: str) -> None:
    """An unmerge: the survivor's enrolments that were the restored contact's are its again."""
    await conn.execute(
        "UPDATE enrolments SET contact_id = origin_contact_id "
        "WHERE contact_id = $1 AND origin_contact_id = $2",
        survivor_id,
        restored_id,
    )
