"""Topic → event type dispatch: a table from each input topic's event types to their handler.

    resolve = with_context(handlers.resolve_interactions, ctx)
    related = with_context(handlers.record_related_events, ctx)
    dispatch = Dispatch({
        settings.interactions_raw_topic: {it.INTERACTION_RECORDED: resolve},
        settings.cases_topic: dict.fromkeys(cs.EVENTS, related),
    })
    runtime.add_consumer("events", dispatch.topics, dispatch)

A `Dispatch` is a `BatchHandler`: the consumer runner opens the transaction and claims the
events in the inbox, then the dispatch checks that every event's type belongs on the topic it
came from, and calls each handler once with its events, in the order they came. Handlers are
called in the order they first appear in the table, so a service decides, once, what it does
first in a batch (contacts: interactions, then related events, then privacy).

An event whose type is not in its topic's table is dead-lettered by the pipeline with
`x-error-reason: unexpected_type` (the batch is split down to it; the rest is applied).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import asyncpg

from crm_contracts import CloudEvent
from crm_kit.consumer import AfterCommit, Delivery, PermanentEventError

# Applies events of the types it is registered for, in the runner's transaction; may return a
# function to run once that transaction committed.
EventHandler = Callable[[asyncpg.Connection, Sequence[CloudEvent]], Awaitable[AfterCommit | None]]
C = TypeVar("C")


def with_context(
    handler: Callable[[asyncpg.Connection, Sequence[CloudEvent], C], Awaitable[AfterCommit | None]],
    ctx: C,
) -> EventHandler:
    """A use case `handler(conn, events, ctx)` as an entry of the table."""

    async def handle(conn: asyncpg.Connection, events: Sequence[CloudEvent]) -> AfterCommit | None:
        return await handler(conn, events, ctx)

    return handle


async def ignored(conn: asyncpg.Connection, events: Sequence[CloudEvent]) -> None:
    """The entry of an event type that belongs on its topic but means nothing to this
    service (cases and contact.updated): such events are committed past without being
    decoded or claimed in the inbox, and counted as `ignored`. A record of that type in
    structured mode is decoded and handed here, and nothing is done with it."""
    return None


class Dispatch:
    """Deliveries to the handler of their topic and type; a type out of place is refused."""

    def __init__(self, table: Mapping[str, Mapping[str, EventHandler]]) -> None:
        self._table = {topic: dict(types) for topic, types in table.items()}
        self._ignored = {
            (topic, type)
            for topic, types in self._table.items()
            for type, handler in types.items()
            if handler is ignored
        }
        self._order: list[EventHandler] = []
        for types in self._table.values():
            for handler in types.values():
                if handler not in self._order and handler is not ignored:
                    self._order.append(handler)

    def ignores(self, topic: str, type: str) -> bool:
        """Whether events of this type on this topic mean nothing to the service."""
        return (topic, type) in self._ignored

    @property
    def topics(self) -> list[str]:
        """The topics of the table, in its order: what the consumer subscribes to."""
        return list(self._table)

    def handler_of(self, delivery: Delivery) -> EventHandler:
        """The handler of a delivery; PermanentEventError `unexpected_type` when there is none."""
        handler = self._table.get(delivery.topic, {}).get(delivery.event.type)
        if handler is None:
            raise PermanentEventError(
                f"{delivery.event.type} does not belong on {delivery.topic}",
                reason="unexpected_type",
            )
        return handler

    async def __call__(
        self, conn: asyncpg.Connection, deliveries: Sequence[Delivery]
    ) -> AfterCommit | None:
        """Check every delivery, then call each handler once with its events."""
        batches: dict[EventHandler, list[CloudEvent]] = {}
        for delivery in deliveries:
            batches.setdefault(self.handler_of(delivery), []).append(delivery.event)
        after = [
            done
            for handler in self._order
            if handler in batches and (done := await handler(conn, batches[handler])) is not None
        ]
        return _all(after) if after else None


def _all(functions: Sequence[AfterCommit]) -> AfterCommit:
    def run() -> None:
        for function in functions:
            function()

    return run
