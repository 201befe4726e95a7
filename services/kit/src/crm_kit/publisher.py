"""The events of one transaction, queued and written to the outbox together.

    out = Publisher(settings.source, correlation_id=correlation_id)
    out.publish(topic, "crm.contact.updated", data, key=contact_id, cause=event)
    ...
    await out.flush(conn)                      # in the use case's transaction

Time (DESIGN.md, pattern 7): an event caused by another carries the cause's time unless
`time` is given; without a cause (an agent's request) it is the moment of the request.
Causation and correlation ids come from `cause`; without one, from `correlation_id` (the
request's). `at` puts an event before those queued since that index, so that what a use case
decided first is published first however its code is ordered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from crm_contracts import CloudEvent, KafkaRecord, new_event
from crm_kit.outbox import OutboxMessage, enqueue, event_message


@dataclass
class Publisher:
    """Events queued by one use case, for the outbox of its transaction."""

    source: str
    correlation_id: str | None = None
    messages: list[OutboxMessage] = field(default_factory=list)

    def publish(
        self,
        topic: str,
        type: str,
        data: BaseModel,
        *,
        key: str,
        cause: CloudEvent | None = None,
        at: int | None = None,
        time: datetime | None = None,
        id: str | None = None,
    ) -> CloudEvent:
        """Queue an event; `at` puts it before the messages queued since that index.

        `time` defaults to the cause's time, or now without a cause (see the module).
        """
        event = new_event(
            type,
            data,
            source=self.source,
            cause=cause,
            correlationid=None if cause is not None else self.correlation_id,
            time=time if time is not None else (cause.time if cause is not None else None),
            id=id,
        )
        self._queue(event_message(topic, event, key=key), at)
        return event

    def tombstone(self, topic: str, *, key: str) -> None:
        """Queue a null value for `key` (it removes the key from a compacted topic)."""
        self._queue(OutboxMessage(topic, KafkaRecord(key=key.encode(), value=None, headers=[])))

    def add(self, message: OutboxMessage, *, at: int | None = None) -> None:
        """Queue a message built elsewhere (`crm_kit.subjects.erasure_completed`)."""
        self._queue(message, at)

    def _queue(self, message: OutboxMessage, at: int | None = None) -> None:
        if at is None:
            self.messages.append(message)
        else:
            self.messages.insert(at, message)

    async def flush(self, conn: asyncpg.Connection) -> None:
        """Write the queued messages to the outbox (one statement) and forget them."""
        await enqueue(conn, self.messages)
        self.messages = []
