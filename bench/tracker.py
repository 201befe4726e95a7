"""Timing each event from the moment it was published to the moment its effects come out.

A librdkafka consumer (confluent-kafka, in a thread of its own) reads the output topics from
their beginning with no consumer group (assigned partitions: nothing to join) and notes, per
event, when the first record carrying its correlation id arrived. The send time comes from the
simulator's `on_sent` hook, on the same monotonic clock. Lag is counted the same way: events
published minus events seen come out; the embedded broker's end offsets are not trusted.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from crm_stack.simulate.journeys import SimEvent, sequence_number

NAN = math.nan


def percentiles(values: Sequence[float] | np.ndarray, scale: float = 1000.0) -> dict[str, float]:
    """p50/p95/p99/max (and the count) of seconds, in milliseconds."""
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if data.size == 0:
        return {"count": 0}
    p50, p95, p99 = np.percentile(data, [50, 95, 99])
    return {
        "count": int(data.size),
        "p50": round(float(p50) * scale, 1),
        "p95": round(float(p95) * scale, 1),
        "p99": round(float(p99) * scale, 1),
        "max": round(float(data.max()) * scale, 1),
    }


class _Times:
    """Seconds per event sequence number, NaN until known; grows under a lock."""

    def __init__(self) -> None:
        self.values = array("d")
        self.count = 0
        self._lock = threading.Lock()

    def first(self, n: int, value: float) -> None:
        if n >= len(self.values):
            with self._lock:
                if n >= len(self.values):
                    self.values.extend([NAN] * (n + 1 - len(self.values) + 65536))
        if math.isnan(self.values[n]):
            self.values[n] = value
            self.count += 1

    def window(self, lo: int, hi: int) -> np.ndarray:
        out = np.full(hi - lo, NAN)
        data = np.frombuffer(self.values, dtype=float)[lo:hi]
        out[: data.size] = data
        return out


@dataclass(frozen=True)
class Outputs:
    """The topics whose records mark an event's way through a pipeline."""

    resolved: str
    scored: str
    counted: tuple[str, ...] = ()  # further topics whose records of the stream are counted


class Tracker:
    """Send and arrival times of one simulated stream (one seed) through one pipeline."""

    def __init__(self, bootstrap: str, outputs: Outputs, seed: int) -> None:
        self.seed = seed
        self.outputs = outputs
        self.sent = _Times()
        self.resolved = _Times()
        self.scored = _Times()
        self.person = array("i")
        self.late = bytearray()
        self.contact_of: dict[int, str] = {}  # simulated person -> contact id, from resolved keys
        self.records = dict.fromkeys((outputs.resolved, outputs.scored, *outputs.counted), 0)
        self._bootstrap = bootstrap
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.ready = threading.Event()

    # -- the sending side -------------------------------------------------------------------
    def on_sent(self, event: SimEvent, at: float) -> None:
        """The simulator's hook: event `n` was handed to the producer (or POSTed) at `at`."""
        self.sent.first(event.n, at)
        while len(self.person) <= event.n:
            self.person.append(-1)
            self.late.append(0)
        self.person[event.n] = event.person
        self.late[event.n] = event.late

    # -- the receiving side -----------------------------------------------------------------
    def start(self) -> None:
        """Start reading the output topics from their beginning.

        Two consumers: one with a 10 ms fetch wait on the two topics that are timed, one
        with 250 ms on the topics that are only counted. On the embedded broker every
        fetch of every partition costs CPU even when nothing is new (measured: a consumer
        of 60 idle partitions polling every 10 ms takes ~15-20 % of a core from the broker),
        so the instrument keeps its own share small.
        """
        groups: list[tuple[tuple[str, ...], int]] = [
            ((self.outputs.resolved, self.outputs.scored), 10)
        ]
        if self.outputs.counted:
            groups.append((self.outputs.counted, 250))
        ready = []
        for topics, wait in groups:
            event = threading.Event()
            ready.append(event)
            thread = threading.Thread(
                target=self._run, args=(topics, wait, event), name="bench-tracker", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        if not all(event.wait(60) for event in ready):
            raise TimeoutError("the tracker's consumers did not get their partitions")
        self.ready.set()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, topics: Sequence[str], wait_ms: int, ready: threading.Event) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": f"bench-tracker-{uuid.uuid4().hex[:8]}",  # never joined: assign()
                "enable.auto.commit": False,
                "fetch.wait.max.ms": wait_ms,
                "fetch.min.bytes": 1,
            }
        )
        try:
            assignment = []
            for topic in topics:
                meta = consumer.list_topics(topic, timeout=30).topics[topic]
                assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
            consumer.assign(assignment)
            ready.set()
            while not self._stop.is_set():
                messages = consumer.consume(num_messages=2000, timeout=0.05)
                now = time.monotonic()
                for message in messages:
                    if message.error() is None:
                        self._arrived(message, now)
        finally:
            consumer.close()

    def _arrived(self, message: object, now: float) -> None:
        headers = message.headers() or ()  # type: ignore[attr-defined]
        correlation = next((v for k, v in headers if k == "ce_correlationid"), None)
        if correlation is None:
            return
        n = sequence_number(correlation.decode(), self.seed)
        if n is None:
            return
        topic = message.topic()  # type: ignore[attr-defined]
        self.records[topic] += 1
        if topic == self.outputs.resolved:
            self.resolved.first(n, now)
            key = message.key()  # type: ignore[attr-defined]
            if key and n < len(self.person) and self.person[n] >= 0:
                self.contact_of.setdefault(self.person[n], key.decode())
        elif topic == self.outputs.scored:
            self.scored.first(n, now)

    # -- figures ----------------------------------------------------------------------------
    def counts(self, lo: int, hi: int) -> tuple[int, int]:
        """(events sent, events resolved) among sequence numbers lo..hi."""
        sent = self.sent.window(lo, hi)
        resolved = self.resolved.window(lo, hi)
        return int((~np.isnan(sent)).sum()), int((~np.isnan(resolved) & ~np.isnan(sent)).sum())

    def latencies(self, lo: int, hi: int) -> dict[str, dict[str, float]]:
        """raw -> resolved and raw -> score change, in ms, for events lo..hi."""
        sent = self.sent.window(lo, hi)
        return {
            "raw_to_resolved_ms": percentiles(self.resolved.window(lo, hi) - sent),
            "raw_to_score_change_ms": percentiles(self.scored.window(lo, hi) - sent),
        }

    def wait_resolved(self, lo: int, hi: int, timeout: float) -> bool:
        """Wait until every event sent in lo..hi came out resolved (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent, resolved = self.counts(lo, hi)
            if resolved >= sent:
                return True
            time.sleep(0.2)
        return False
