"""Campaign definitions and their status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from crm_campaigns.definitions import CampaignDefinition
from crm_campaigns.domain import Campaign, CampaignStatus

_COLUMNS = (
    "id, name, status, segment_id, definition, launched_at, completed_at, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class CampaignRow:
    """A campaign as stored."""

    id: str
    name: str
    status: CampaignStatus
    segment_id: str | None
    definition: CampaignDefinition
    launched_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def campaign(self) -> Campaign:
        return self.definition.to_campaign(id=self.id, status=self.status)


@dataclass(frozen=True, slots=True)
class CampaignStamp:
    """A campaign's version as stored; `definition` (unparsed) only when the caller did not
    know this version."""

    id: str
    status: CampaignStatus
    updated_at: datetime
    definition: dict[str, Any] | None


def _row(row: asyncpg.Record) -> CampaignRow:
    return CampaignRow(
        id=row["id"],
        name=row["name"],
        status=CampaignStatus(row["status"]),
        segment_id=row["segment_id"],
        definition=CampaignDefinition.model_validate(row["definition"]),
        launched_at=row["launched_at"],
        completed_at=row["completed_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def campaign(
    conn: asyncpg.Connection, campaign_id: str, *, lock: bool = False
) -> CampaignRow | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM campaigns WHERE id = $1" + (" FOR UPDATE" if lock else ""),
        campaign_id,
    )
    return _row(row) if row else None


async def campaigns(conn: asyncpg.Connection) -> list[CampaignRow]:
    """Every campaign, by id."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM campaigns ORDER BY id")
    return [_row(row) for row in rows]


async def campaign_stamps(
    conn: asyncpg.Connection,
    *,
    statuses: tuple[CampaignStatus, ...],
    known: dict[str, tuple[datetime, CampaignStatus]],
) -> list[CampaignStamp]:
    """The campaigns of these statuses, by id, each with its definition unless `known` holds
    this version (id -> (updated_at, status)); one statement, so one snapshot."""
    rows = await conn.fetch(
        "SELECT c.id, c.status, c.updated_at, CASE WHEN k.id IS NULL THEN c.definition END "
        "AS definition FROM campaigns c "
        "LEFT JOIN unnest($2::text[], $3::timestamptz[], $4::text[]) AS k(id, at, status) "
        "ON k.id = c.id AND k.at = c.updated_at AND k.status = c.status "
        "WHERE c.status = ANY($1::text[]) ORDER BY c.id",
        [s.value for s in statuses],
        list(known),
        [at for at, _ in known.values()],
        [status.value for _, status in known.values()],
    )
    return [
        CampaignStamp(
            id=row["id"],
            status=CampaignStatus(row["status"]),
            updated_at=row["updated_at"],
            definition=row["definition"],
        )
        for row in rows
    ]


async def insert_campaign(
    conn: asyncpg.Connection, *, id: str, definition: CampaignDefinition
) -> CampaignRow | None:
    """A new draft; None when the id is taken."""
    row = await conn.fetchrow(
        "INSERT INTO campaigns (id, name, status, segment_id, definition) "
        "VALUES ($1, $2, 'draft', $3, $4) ON CONFLICT (id) DO NOTHING "
        f"RETURNING {_COLUMNS}",
        id,
        definition.name,
        definition.segment_id,
        definition.document(),
    )
    return _row(row) if row else None


async def update_definition(
    conn: asyncpg.Connection, campaign_id: str, definition: CampaignDefinition
) -> CampaignRow:
    row = await conn.fetchrow(
        "UPDATE campaigns SET name = $2, segment_id = $3, definition = $4, "
        f"updated_at = clock_timestamp() WHERE id = $1 RETURNING {_COLUMNS}",
        campaign_id,
        definition.name,
        definition.segment_id,
        definition.document(),
    )
    return _row(row)


async def set_status(
    conn: asyncpg.Connection, campaign_id: str, status: CampaignStatus, *, at: datetime
) -> CampaignRow:
    """Move a campaign to `status`; launching records the first launch, completing its end."""
    row = await conn.fetchrow(
        "UPDATE campaigns SET status = $2, "
        "launched_at = CASE WHEN $2 = 'active' THEN coalesce(launched_at, $3) "
        "ELSE launched_at END, "
        "completed_at = CASE WHEN $2 = 'completed' THEN $3 ELSE completed_at END, "
        f"updated_at = clock_timestamp() WHERE id = $1 RETURNING {_COLUMNS}",
        campaign_id,
        status.value,
        at,
    )
    return _row(row)


async def ending(conn: asyncpg.Connection, *, now: datetime) -> list[str]:
    """Active or paused campaigns whose end has come, locked (`NO KEY UPDATE`: enrolments
    written meanwhile do not wait); other rounds pass them by."""
    rows = await conn.fetch(
        "SELECT id FROM campaigns WHERE status IN ('active', 'paused') "
        "AND (definition->>'ends_at') IS NOT NULL AND (definition->>'ends_at')::timestamptz <= $1 "
        "ORDER BY id FOR NO KEY UPDATE SKIP LOCKED",
        now,
    )
    return [row["id"] for row in rows]


async def delete_campaign(conn: asyncpg.Connection, campaign_id: str) -> None:
    await conn.execute("DELETE FROM campaigns WHERE id = $1", campaign_id)
