"""Frequency caps per channel, across every campaign."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from crm_campaigns.api.dependencies import Reader, Writer
from crm_campaigns.repository import sends as send_rows
from crm_contracts.base import Channel
from crm_kit.api import Input
from crm_kit.errors import NotFound
from crm_kit.problems import problem_responses
from crm_kit.runtime import ConnectionDep, SnapshotDep

router = APIRouter(tags=["frequency caps"])


class CapIn(Input):
    """At most `max_sends` non-transactional steps per contact on the channel in any rolling
    window of `window_seconds`; a step over it waits until one is allowed."""

    max_sends: Annotated[int, Field(ge=1, le=1000)]
    window_seconds: Annotated[int, Field(ge=60, le=int(timedelta(days=366).total_seconds()))]


class CapOut(BaseModel):
    """A channel's frequency cap."""

    channel: Channel
    max_sends: int
    window_seconds: int


@router.get("/frequency-caps", response_model=list[CapOut])
async def list_caps(principal: Reader, conn: SnapshotDep) -> list[CapOut]:
    """Every channel's cap (a channel not listed is not capped)."""
    return [
        CapOut(channel=Channel(c.channel), max_sends=c.max_sends, window_seconds=c.window_seconds)
        for c in (await send_rows.caps(conn)).values()
    ]


@router.put("/frequency-caps/{channel}", response_model=CapOut)
async def put_cap(channel: Channel, body: CapIn, principal: Writer, conn: ConnectionDep) -> CapOut:
    """Set a channel's cap; it counts the sends already made."""
    await send_rows.set_cap(conn, send_rows.Cap(channel.value, body.max_sends, body.window_seconds))
    return CapOut(channel=channel, max_sends=body.max_sends, window_seconds=body.window_seconds)


@router.delete("/frequency-caps/{channel}", status_code=204, responses=problem_responses(404))
async def delete_cap(channel: Channel, principal: Writer, conn: ConnectionDep) -> None:
    """Lift a channel's cap."""
    if not await send_rows.delete_cap(conn, channel.value):
        raise NotFound("This channel has no cap.", reason="cap-not-found")
