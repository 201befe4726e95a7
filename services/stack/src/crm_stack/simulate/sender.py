"""Send a simulated stream at a steady rate: most straight to Kafka, a share over ingest's HTTP.

The generator decides what happens; the sender only paces, encodes and counts. Kafka events go
through librdkafka (confluent-kafka: its C producer leaves the Python thread free to pace),
binary or structured CloudEvents as each event says; HTTP events are batched per source (as a
channel's outbox would) and posted to ingest with that source's API key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from confluent_kafka import KafkaException, Producer

from crm_stack.simulate.journeys import Route, SimEvent, Source

RAW_TOPIC = "crm.interactions.raw.v1"
HEADER_ATTRIBUTES = ("specversion", "id", "source", "type", "time")
HTTP_BATCH = 100  # events per POST at most
HTTP_FLUSH_SECONDS = 0.05
HTTP_IN_FLIGHT = 8


Headers = list[tuple[str, str | bytes | None]]


def binary_record(event: SimEvent) -> tuple[bytes, Headers]:
    """Binary mode: `ce_*` headers, the data as JSON."""
    headers: Headers = [(f"ce_{a}", str(event.event[a]).encode()) for a in HEADER_ATTRIBUTES]
    headers.append(("content-type", b"application/json"))
    return json.dumps(event.event["data"], separators=(",", ":")).encode(), headers


def structured_record(event: SimEvent) -> tuple[bytes, Headers]:
    """Structured mode: the whole event as JSON."""
    value = json.dumps(event.event, separators=(",", ":")).encode()
    return value, [("content-type", b"application/cloudevents+json")]


@dataclass
class SendStats:
    """What a run sent, and how fast."""

    target_rate: float
    sent: int = 0
    kafka: int = 0
    http: int = 0
    http_rejected: int = 0
    errors: int = 0
    duplicates: int = 0
    late: int = 0
    elapsed: float = 0.0
    by_step: dict[str, int] = field(default_factory=dict)

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        """The progress line."""
        return (
            f"sent {self.sent:,} in {self.elapsed:.1f}s: {self.achieved_rate:,.1f}/s "
            f"(target {self.target_rate:,.0f}) | kafka {self.kafka:,} http {self.http:,} | "
            f"duplicates {self.duplicates:,} late {self.late:,} | errors "
            f"{self.errors + self.http_rejected:,}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The figures, for JSON."""
        return {
            "target_rate_per_s": self.target_rate,
            "achieved_rate_per_s": round(self.achieved_rate, 1),
            "sent": self.sent,
            "kafka": self.kafka,
            "http": self.http,
            "http_rejected": self.http_rejected,
            "errors": self.errors,
            "duplicates": self.duplicates,
            "late": self.late,
            "seconds": round(self.elapsed, 2),
            "by_step": dict(sorted(self.by_step.items())),
        }


OnSent = Callable[[SimEvent, float], None]


class Sender:
    """Paces events to Kafka and ingest; call `run` as often as needed, then `close`."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str = RAW_TOPIC,
        ingest_url: str | None = None,
        api_keys: dict[str, str] | None = None,
        on_sent: OnSent | None = None,
    ) -> None:
        self.topic = topic
        self.ingest_url = ingest_url
        self.api_keys = api_keys or {}
        self.on_sent = on_sent
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "linger.ms": 2,
                "enable.idempotence": False,  # the embedded broker has no idempotent producers
                "queue.buffering.max.messages": 1_000_000,
                "client.id": "crmctl-simulate",
            }
        )
        self._http: httpx.AsyncClient | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(HTTP_IN_FLIGHT)
        self._stats = SendStats(0.0)
        self._closed = False

    @property
    def current(self) -> SendStats:
        """The figures of the run in progress, or of the last one."""
        return self._stats

    async def run(
        self,
        events: Iterator[SimEvent],
        *,
        rate: float,
        duration: float | None = None,
        count: int | None = None,
        progress: Callable[[SendStats], None] | None = None,
        stop: asyncio.Event | None = None,
    ) -> SendStats:
        """Send at `rate` events/s for `duration` seconds or `count` events, whichever first."""
        if duration is None and count is None:
            raise ValueError("give a duration or a count")
        stats = self._stats = SendStats(rate)
        batches: dict[str, list[SimEvent]] = {}
        started = time.monotonic()
        last_flush = last_progress = started
        limit = count if count is not None else float("inf")
        while stats.sent < limit and not (stop and stop.is_set()):
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            due = min(limit, int((now - started) * rate) + 1)
            while stats.sent < due:
                event = next(events, None)
                if event is None:
                    limit = stats.sent
                    break
                self._send(event, batches, stats)
            self._producer.poll(0)
            if now - last_flush >= HTTP_FLUSH_SECONDS:
                await self._flush_http(batches)
                last_flush = now
            stats.elapsed = now - started
            if progress and now - last_progress >= 1.0:
                progress(stats)
                last_progress = now
            await asyncio.sleep(0.002)
        await self._flush_http(batches)
        stats.elapsed = time.monotonic() - started
        await self.drain()
        if progress:
            progress(stats)
        return stats

    def _send(self, event: SimEvent, batches: dict[str, list[SimEvent]], stats: SendStats) -> None:
        stats.sent += 1
        stats.duplicates += event.duplicate
        stats.late += event.late and not event.duplicate
        stats.by_step[event.step] = stats.by_step.get(event.step, 0) + 1
        if event.route is Route.HTTP and self.ingest_url:
            stats.http += 1
            batch = batches.setdefault(event.source, [])
            batch.append(event)
            if len(batch) >= HTTP_BATCH:
                self._post(event.source, batches.pop(event.source))
            return
        stats.kafka += 1
        encode = structured_record if event.route is Route.KAFKA_STRUCTURED else binary_record
        value, headers = encode(event)
        if self.on_sent:
            self.on_sent(event, time.monotonic())
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=value,
                    key=event.key.encode(),
                    headers=headers,
                    on_delivery=self._delivered,
                )
                return
            except BufferError:
                self._producer.poll(0.01)  # the local queue is full: let librdkafka catch up

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._stats.errors += 1

    async def _flush_http(self, batches: dict[str, list[SimEvent]]) -> None:
        for source in list(batches):
            self._post(source, batches.pop(source))

    def _post(self, source: str, events: list[SimEvent]) -> None:
        if not events:
            return
        task = asyncio.create_task(self._post_batch(source, events))
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _post_batch(self, source: str, events: list[SimEvent]) -> None:
        assert self.ingest_url is not None
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.ingest_url, timeout=30)
        async with self._slots:
            now = time.monotonic()
            if self.on_sent:
                for event in events:
                    self.on_sent(event, now)
            try:
                response = await self._http.post(
                    "/v1/events",
                    content=json.dumps([e.event for e in events]).encode(),
                    headers={
                        "X-API-Key": self.api_keys.get(source, ""),
                        "content-type": "application/cloudevents-batch+json",
                    },
                )
            except httpx.HTTPError:
                self._stats.errors += len(events)
                return
        if response.status_code in (202, 207, 422):
            self._stats.http_rejected += int(response.json().get("rejected", 0))
        else:
            self._stats.errors += len(events)

    async def drain(self) -> None:
        """Wait until every event handed over was acknowledged (or failed)."""
        if self._posts:
            await asyncio.gather(*self._posts, return_exceptions=True)
        await asyncio.to_thread(self._producer.flush, 30)

    async def close(self) -> None:
        """Flush and close the clients."""
        with contextlib.suppress(KafkaException):
            await self.drain()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._producer.close)


async def create_api_keys(ingest_url: str, token: str) -> dict[str, str]:
    """One ingest API key per simulated source, created over ingest's key API."""
    keys: dict[str, str] = {}
    async with httpx.AsyncClient(
        base_url=ingest_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as http:
        for source in Source:
            response = await http.post(
                "/v1/api-keys", json={"source": source.value, "description": "crmctl simulate"}
            )
            response.raise_for_status()
            keys[source.value] = response.json()["key"]
    return keys
