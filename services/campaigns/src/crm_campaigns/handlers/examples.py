"""The example campaigns the service ships (examples/campaigns.json), created and launched
at start: retention when churn risk turns high (not while a complaint is open), cross-sell
after a first purchase, win-back for lapsed customers, a welcome series, VIP treatment for a
new platinum tier. Each is created once: one deleted or changed by hand stays so.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import asyncpg

from crm_campaigns.definitions import CampaignDefinition
from crm_campaigns.handlers import campaigns, segments
from crm_campaigns.handlers.context import Context
from crm_campaigns.repository import examples as example_rows

_loaded: set[int] = set()


def examples() -> dict[str, Any]:
    """The shipped examples: {"segments": [...], "campaigns": [...]}."""
    text = resources.files("crm_campaigns").joinpath("examples/campaigns.json").read_text()
    document: dict[str, Any] = json.loads(text)
    return document


async def load(conn: asyncpg.Connection, ctx: Context) -> list[str]:
    """Create (and launch) the examples not created before; their ids."""
    document = examples()
    done = await example_rows.lock_loaded(conn)
    created = []
    for item in document["segments"]:
        if item["id"] in done:
            continue
        rule = segments.checked_rule(item["rule"])
        await segments.create_segment(
            conn,
            name=item["name"],
            description=item.get("description"),
            rule=rule,
            segment_id=item["id"],
        )
        created.append(item["id"])
    for item in document["campaigns"]:
        if item["id"] in done:
            continue
        definition = CampaignDefinition.model_validate(item["definition"])
        await campaigns.create_campaign(conn, definition, campaign_id=item["id"])
        await campaigns.launch(conn, ctx, item["id"])
        created.append(item["id"])
    await example_rows.record_loaded(conn, created)
    return created


async def load_once(pool: asyncpg.Pool, *, ctx: Context) -> int:
    """The examples job's round: load them in one transaction, the first time only."""
    if id(ctx) in _loaded:
        return 0
    async with pool.acquire() as conn, conn.transaction():
        await load(conn, ctx)
    _loaded.add(id(ctx))
    return 0
