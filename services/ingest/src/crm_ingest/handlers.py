"""Use cases of ingest: publish a channel's events, authenticate it, manage its API keys."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from crm_contracts import encode_binary
from crm_ingest import domain, repository
from crm_ingest.domain import AcceptedEvent, ApiKey, EventCheck, RejectedEvent
from crm_kit import metrics
from crm_kit.errors import NotFound
from crm_kit.logs import log_context

SERVICE = "ingest"
# last_used_at is a hint for operators (which keys are still in use), not an audit trail.
TOUCH_EVERY_SECONDS = 60.0
_PREFIX_ATTEMPTS = 3

log = logging.getLogger(__name__)

EVENTS = metrics.counter(
    "crm_ingest_events_total",
    "Events received from channels over HTTP, by outcome: accepted (the broker has them), "
    "rejected (invalid, or not the key's source), failed (the broker did not acknowledge).",
    ["outcome"],
)


class BrokerUnavailableError(Exception):
    """The broker did not acknowledge every accepted event in time."""


async def ingest_events(
    *,
    producer: AIOKafkaProducer,
    topic: str,
    raw_events: Sequence[Any],
    channel: ApiKey,
    ack_timeout_seconds: float,
) -> list[EventCheck]:
    """Check each event, publish the accepted ones in binary mode and wait for the broker to
    acknowledge all of them; `BrokerUnavailableError` if it does not."""
    checks = domain.check_events(raw_events, allowed_source=channel.source)
    accepted = [check for check in checks if isinstance(check, AcceptedEvent)]
    rejected = [check for check in checks if isinstance(check, RejectedEvent)]
    for refused in rejected:
        with log_context(event_id=refused.id):
            log.info(
                "event rejected",
                extra={
                    "index": refused.index,
                    "reason": refused.reason,
                    "paths": [issue.path for issue in refused.errors],
                },
            )
    EVENTS.labels("rejected").inc(len(rejected))
    if accepted:
        try:
            await _publish(producer, topic, accepted, timeout=ack_timeout_seconds)
        except BrokerUnavailableError:
            EVENTS.labels("failed").inc(len(accepted))
            raise
        EVENTS.labels("accepted").inc(len(accepted))
        metrics.record_event_published(service=SERVICE, topic=topic, count=len(accepted))
    for item in accepted:
        with log_context(event_id=item.id, correlation_id=item.event.correlationid):
            log.info("event accepted", extra={"index": item.index, "topic": topic})
    log.info(
        "events received",
        extra={"accepted": len(accepted), "rejected": len(rejected), "topic": topic},
    )
    return checks


async def _publish(
    producer: AIOKafkaProducer, topic: str, accepted: Sequence[AcceptedEvent], *, timeout: float
) -> None:
    # Send everything first, then wait for all acknowledgements: the records of one request
    # travel in a few batches instead of one round trip each.
    try:
        async with asyncio.timeout(timeout):
            futures = []
            for item in accepted:
                record = encode_binary(item.event, key=item.key)
                futures.append(
                    await producer.send(
                        topic, value=record.value, key=record.key, headers=record.headers
                    )
                )
            results = await asyncio.gather(*futures, return_exceptions=True)
    except (KafkaError, TimeoutError) as exc:
        log.warning(
            "broker did not acknowledge", extra={"error_type": type(exc).__name__, "topic": topic}
        )
        raise BrokerUnavailableError(str(exc) or type(exc).__name__) from exc
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        log.warning(
            "broker refused events",
            extra={
                "failed": len(failures),
                "error_type": type(failures[0]).__name__,
                "topic": topic,
            },
        )
        raise BrokerUnavailableError(str(failures[0]) or type(failures[0]).__name__)


async def authenticate_channel(*, pool: asyncpg.Pool, key: str) -> ApiKey | None:
    """The active API key `key` is, or None (malformed, unknown or revoked)."""
    prefix = domain.api_key_prefix(key)
    if prefix is None:
        return None
    async with pool.acquire() as conn:
        found = await repository.find_api_key(conn, prefix=prefix)
        if found is None:
            return None
        api_key, key_hash = found
        if not domain.api_key_matches(key, key_hash) or not api_key.active:
            return None
        await repository.touch_api_key(conn, key_id=api_key.id, every_seconds=TOUCH_EVERY_SECONDS)
    return api_key


async def create_api_key(
    *, pool: asyncpg.Pool, source: str, description: str, created_by: str
) -> tuple[ApiKey, str]:
    """A new active key for `source`, and the key itself (the only time it is known)."""
    domain.check_source(source)
    for attempt in range(_PREFIX_ATTEMPTS):
        new = domain.generate_api_key()
        try:
            async with pool.acquire() as conn:
                api_key = await repository.insert_api_key(
                    conn,
                    source=source,
                    prefix=new.prefix,
                    key_hash=new.key_hash,
                    description=description,
                    created_by=created_by,
                )
        except repository.DuplicatePrefixError:
            if attempt + 1 == _PREFIX_ATTEMPTS:
                raise
            continue
        log.info(
            "api key created",
            extra={"api_key_id": str(api_key.id), "prefix": api_key.prefix, "source": source},
        )
        return api_key, new.key
    raise AssertionError("unreachable")


async def list_api_keys(
    *, pool: asyncpg.Pool, source: str | None, include_revoked: bool, limit: int, offset: int
) -> list[ApiKey]:
    """Keys of one source (or all), oldest first, without their secrets."""
    async with pool.acquire() as conn:
        return await repository.list_api_keys(
            conn, source=source, include_revoked=include_revoked, limit=limit, offset=offset
        )


async def get_api_key(*, pool: asyncpg.Pool, key_id: UUID) -> ApiKey:
    """One key, without its secret; NotFound if there is no such key."""
    async with pool.acquire() as conn:
        api_key = await repository.get_api_key(conn, key_id=key_id)
    if api_key is None:
        raise _no_such_key(key_id)
    return api_key


async def revoke_api_key(*, pool: asyncpg.Pool, key_id: UUID) -> ApiKey:
    """Revoke a key at once (idempotent); NotFound if there is no such key."""
    async with pool.acquire() as conn:
        api_key = await repository.revoke_api_key(conn, key_id=key_id)
    if api_key is None:
        raise _no_such_key(key_id)
    log.info("api key revoked", extra={"api_key_id": str(api_key.id), "prefix": api_key.prefix})
    return api_key


def _no_such_key(key_id: UUID) -> NotFound:
    return NotFound(f"There is no API key {key_id}.")
