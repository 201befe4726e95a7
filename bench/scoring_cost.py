"""Cost growth in scoring: the time to apply one event for a contact with 10, 1,000 and
10,000 earlier facts.

Through the service's own interface, so that it stays true whatever scoring keeps in its
tables: each contact's history goes to `crm.interactions.v1` as resolved interactions (event
times spread over the three years before now; a third purchases), and the bench waits until
scoring consumed all of it. Then single events are published for the contact one at a time,
each after the previous one was consumed, so that each is a batch of its own; the time to
apply it is read from scoring's `crm_consumer_batch_duration_seconds` histogram (the kit's
metric: decode, transaction with inbox, facts, scores and outbox, commit), as the change of
its sum over the change of its count.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from bench.stack import BenchStack
from crm_contracts import contacts as ct
from crm_contracts import encode_binary, new_event, topics
from crm_contracts import interactions as it
from crm_contracts.base import Channel, Money

SERVICE = "scoring"


def resolved(contact: str, when: datetime, index: int) -> Any:
    """A resolved interaction as contacts publishes it."""
    purchase = index % 3 == 0
    data = it.InteractionResolved(
        interaction_id=f"cost-{uuid.uuid4().hex}",
        interaction_source="urn:channel:bench",
        contact_id=contact,
        channel=Channel.WEB if index % 2 else Channel.EMAIL,
        kind="purchase" if purchase else ("page_view" if index % 2 else "email_clicked"),
        value=Money(amount=Decimal("42.50"), currency="EUR") if purchase else None,
        stage=ct.LifecycleStage.REPEAT_CUSTOMER,
        previous_stage=ct.LifecycleStage.REPEAT_CUSTOMER,
        stage_changed=False,
    )
    return new_event(it.INTERACTION_RESOLVED, data, source="urn:crm:contacts", time=when)


class ScoringMetrics:
    """Scoring's consumed count and batch-duration histogram on the resolved topic."""

    def __init__(self, url: str) -> None:
        self.url = url

    def read(self) -> tuple[float, float, float]:
        """(events consumed, batch seconds sum, batch count); retried while scoring is too
        busy applying a long history to answer."""
        for attempt in range(10):
            try:
                with urllib.request.urlopen(self.url + "/metrics", timeout=15) as response:
                    text = response.read().decode()
                break
            except OSError:
                if attempt == 9:
                    raise
                time.sleep(1)
        consumed = total = count = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.labels.get("topic") != topics.INTERACTIONS:
                    continue
                if s.name == "crm_events_consumed_total" and s.labels["outcome"] == "applied":
                    consumed += s.value
                elif s.name == "crm_consumer_batch_duration_seconds_sum":
                    total += s.value
                elif s.name == "crm_consumer_batch_duration_seconds_count":
                    count += s.value
        return consumed, total, count


async def _until_consumed(metrics: ScoringMetrics, target: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await asyncio.to_thread(metrics.read))[0] >= target:
            return True
        await asyncio.sleep(0.02)
    return False


def _publish(producer: Producer, events: list[tuple[str, Any]]) -> None:
    for contact, event in events:
        record = encode_binary(event, key=contact)
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        producer.produce(topics.INTERACTIONS, value=record.value, key=record.key, headers=headers)
        producer.poll(0)
    producer.flush(60)


async def measure(
    stack: BenchStack, *, histories: tuple[int, ...], probes: int, timeout: float
) -> dict[str, Any]:
    """Median time to apply one event, per size of the contact's history."""
    metrics = ScoringMetrics(stack.url(SERVICE))
    producer = Producer({"bootstrap.servers": stack.bootstrap, "acks": "all", "linger.ms": 5})
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    history: list[tuple[str, Any]] = []
    for size in histories:
        contact = f"c-bench-cost-{run}-{size}"
        span = timedelta(days=3 * 365) / max(size, 1)
        history += [
            (contact, resolved(contact, now - timedelta(days=3 * 365) + span * i, i))
            for i in range(size)
        ]
    consumed = (await asyncio.to_thread(metrics.read))[0]
    started = time.monotonic()
    await asyncio.to_thread(_publish, producer, history)
    loaded = await _until_consumed(metrics, consumed + len(history), timeout)
    load_seconds = time.monotonic() - started
    per_size: dict[str, Any] = {}
    for size in histories:
        contact = f"c-bench-cost-{run}-{size}"
        times: list[float] = []
        for i in range(probes):
            before = await asyncio.to_thread(metrics.read)
            await asyncio.to_thread(
                _publish, producer, [(contact, resolved(contact, datetime.now(UTC), size + i))]
            )
            if not await _until_consumed(metrics, before[0] + 1, 30):
                break
            await asyncio.sleep(0.05)  # the histogram is observed right after the count
            after = await asyncio.to_thread(metrics.read)
            if after[2] > before[2]:
                times.append((after[1] - before[1]) / (after[2] - before[2]))
        per_size[str(size)] = {
            "probes": len(times),
            "apply_ms_median": round(statistics.median(times) * 1000, 2) if times else None,
            "apply_ms_max": round(max(times) * 1000, 2) if times else None,
        }
    first, last = per_size[str(histories[0])], per_size[str(histories[-1])]
    growth = (
        round(last["apply_ms_median"] / first["apply_ms_median"], 2)
        if first["apply_ms_median"] and last["apply_ms_median"]
        else None
    )
    return {
        "method": "history on crm.interactions.v1, then single events one at a time; "
        "apply time from scoring's batch-duration histogram",
        "history_loaded": loaded,
        "history_events": len(history),
        "history_load_seconds": round(load_seconds, 1),
        "by_earlier_facts": per_size,
        "histories": list(histories),
        "fewest_facts_ms": first["apply_ms_median"],
        "most_facts_ms": last["apply_ms_median"],
        "growth": growth,
    }
