"""Is a dependency reachable now? Real round trips with short timeouts, for probes and consumers.

    database = DatabaseCheck(pool, timeout=2.0)       # a fresh `SELECT 1`
    broker = BrokerCheck(producer, timeout=2.0)       # a metadata request to the cluster
    ready = await Cached(broker, max_age=1.0).reachable()

A consumer asks the uncached checks after a failure, to tell "the database is down, wait"
from "this event fails on its own". `/readyz` asks cached ones, so that a probe every second
costs at most one round trip per dependency and never waits longer than the timeout.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaProducer


class Check(Protocol):
    """A dependency that can be asked whether it answers."""

    name: str

    async def reachable(self) -> bool:
        """True when the dependency answered within the check's timeout."""
        ...


class DatabaseCheck:
    """Postgres answers `SELECT 1` on a pooled connection within `timeout` seconds."""

    name = "database"

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 2.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def reachable(self) -> bool:
        """True when a connection could be had and answered."""
        try:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                return bool(await conn.fetchval("SELECT 1", timeout=self._timeout) == 1)
        except Exception:
            return False


class BrokerCheck:
    """The Kafka cluster answers a metadata request within `timeout` seconds.

    Asked over the producer's own connections: what it checks is what the service sends
    with. A frozen broker keeps its TCP connections open and never answers, so knowing
    some brokers (the client's cached metadata) says nothing; a round trip does.
    """

    name = "broker"

    def __init__(self, producer: AIOKafkaProducer, *, timeout: float = 2.0) -> None:
        self._producer = producer
        self._timeout = timeout

    async def reachable(self) -> bool:
        """True when a broker of the cluster answered."""
        try:
            async with asyncio.timeout(self._timeout):
                metadata = await self._producer.client.fetch_all_metadata()
        except Exception:
            return False
        return bool(metadata.brokers())


class Cached:
    """A check answered from its last result for `max_age` seconds; one round trip at a time."""

    def __init__(self, check: Check, *, max_age: float) -> None:
        self.name = check.name
        self._check = check
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._result = False
        self._checked_at: float | None = None

    def _fresh(self) -> bool:
        return self._checked_at is not None and time.monotonic() - self._checked_at < self._max_age

    async def reachable(self) -> bool:
        """The last result if recent enough, else a new round trip."""
        if self._fresh():
            return self._result
        async with self._lock:  # probes arriving together share one round trip
            if not self._fresh():
                self._result = await self._check.reachable()
                self._checked_at = time.monotonic()
            return self._result
