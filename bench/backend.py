"""The real back end (every service crmctl starts) fed by the simulator.

Latency from a raw interaction published to: its resolved interaction consumed downstream,
its score change consumed downstream (both by correlation id), and the interaction visible
in the contact's 360 view (sampled: the next event of a person whose contact id is known is
polled for in their 360 every 10 ms, 50 ms once it has waited a second, at most three at a
time, so the sampling adds at most ~300 reads/s). Then the sustained throughput, found by
stepping (`bench.load`).

Lag per service is generic: every installed service's `crm_events_consumed_total` (the kit's
metric, per topic) against what the bench knows was produced on the topics it can count:
the raw topic (what the simulator sent), and the records of every other topic that carry
the correlation id of a simulated event (resolved interactions, score changes, contact,
case and campaign events: what the tracker saw come out). A service added later (cases,
campaigns) is picked up from `crmctl status` without a change here.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.load import Load, Stepping, drain_rate, find_sustained
from bench.stack import BenchStack
from bench.tracker import Outputs, Tracker, percentiles
from crm_contracts import topics
from crm_stack.simulate.journeys import SimConfig, SimEvent
from crm_stack.simulate.sender import create_api_keys

Log = Callable[[str], None]


@dataclass(frozen=True)
class BackendPlan:
    """Rates and durations of the real back end's measurements."""

    seed: int
    contacts: int
    warmup_rate: float
    warmup_seconds: float
    latency_rates: tuple[float, ...]
    latency_seconds: tuple[float, ...]  # per rate: a backlog at the high rate costs its drain
    settle_timeout: float
    stepping: Stepping
    samples_360_per_s: float = 5.0


class BackendLag:
    """Events each service is behind, from its metrics and what the bench produced."""

    TRACKED = (topics.INTERACTIONS, topics.SCORES, topics.CONTACTS, topics.CASES, topics.CAMPAIGNS)
    COUNTED = (topics.INTERACTIONS_RAW, *TRACKED)

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.load: Load | None = None
        self._consumes: set[tuple[str, str]] = set()

    def __call__(self) -> dict[str, float]:
        assert self.load is not None
        produced = {topic: float(n) for topic, n in self.load.tracker.records.items()}
        produced[topics.INTERACTIONS_RAW] = self.load.raw_records()
        consumed = self.stack.consumed()
        for service, by_topic in consumed.items():
            self._consumes |= {(service, t) for t in by_topic if t in self.COUNTED}
        lag: dict[str, float] = {}
        for service, topic in self._consumes:
            behind = produced[topic] - consumed.get(service, {}).get(topic, 0.0)
            lag[service] = lag.get(service, 0.0) + max(0.0, behind)
        return lag


@dataclass
class Visibility360:
    """Samples raw published -> visible in the contact's 360 view."""

    base_url: str
    token: str
    tracker: Tracker
    per_second: float
    timeout: float = 30.0
    results: list[float] = field(default_factory=list)
    not_found: int = 0
    enabled: bool = False
    in_flight: int = 3
    _last: float = 0.0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _http: httpx.AsyncClient | None = None

    def on_sent(self, event: SimEvent, at: float) -> None:
        if not self.enabled or len(self._tasks) >= self.in_flight or event.late or event.duplicate:
            return
        if at - self._last < 1 / self.per_second:
            return
        contact = self.tracker.contact_of.get(event.person)
        if contact is None:
            return
        self._last = at
        task = asyncio.get_running_loop().create_task(self._poll(contact, event.id, at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _poll(self, contact: str, event_id: str, sent_at: float) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}
            )
        try:
            while time.monotonic() - sent_at < self.timeout:
                response = await self._http.get(f"/v1/contacts/{contact}/360", timeout=5)
                if response.status_code == 200 and any(
                    e.get("event_id") == event_id for e in response.json().get("timeline", [])
                ):
                    self.results.append(time.monotonic() - sent_at)
                    return
                # 10 ms while it is fresh, then a twentieth of the wait so far (at most
                # 50 ms): the precision stays a few percent without a flood of reads.
                await asyncio.sleep(min(0.05, max(0.01, (time.monotonic() - sent_at) / 20)))
            self.not_found += 1  # resolved to another contact than the person's first one
        except httpx.HTTPError:
            self.not_found += 1

    def take(self) -> dict[str, Any]:
        figures = {**percentiles(self.results), "not_found": self.not_found}
        self.results, self.not_found = [], 0
        return figures

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.aclose()


async def start_load(stack: BenchStack, plan: BackendPlan) -> tuple[Load, Visibility360]:
    """The simulator and tracker for the real back end, with the sampler of 360 visibility."""
    config = SimConfig(seed=plan.seed, contacts=plan.contacts, start=datetime.now(UTC))
    keys = await create_api_keys(stack.url("ingest"), stack.token("apikeys:write"))
    outputs = Outputs(topics.INTERACTIONS, topics.SCORES, BackendLag.TRACKED[2:])
    tracker = Tracker(stack.bootstrap, outputs, plan.seed)
    await asyncio.to_thread(tracker.start)
    lag = BackendLag(stack)
    load = Load.create(
        config=config,
        bootstrap=stack.bootstrap,
        raw_topic=topics.INTERACTIONS_RAW,
        tracker=tracker,
        lag=lag,
        ingest_url=stack.url("ingest"),
        api_keys=keys,
    )
    lag.load = load
    sampler = Visibility360(
        stack.url("contacts"), stack.token("contacts:read"), tracker, plan.samples_360_per_s
    )
    load.hooks.append(sampler.on_sent)
    return load, sampler


async def measure_latency(
    load: Load, sampler: Visibility360, plan: BackendPlan, log: Log
) -> list[dict[str, Any]]:
    """Latency percentiles at each of the plan's rates (after a warm-up that makes contacts)."""
    log(f"warm-up: {plan.warmup_rate:,.0f} events/s for {plan.warmup_seconds:.0f}s")
    await load.run(plan.warmup_rate, plan.warmup_seconds)
    await load.drain(plan.settle_timeout)
    out = []
    for rate, seconds in zip(plan.latency_rates, plan.latency_seconds, strict=True):
        sampler.enabled = True
        step = await load.run(rate, seconds)
        extended = 0.0
        while not sampler.results and extended < max(60.0, 5 * seconds):
            # No person of the window was known yet: go on until one 360 sample is in.
            await _wait_samples(sampler)
            extra = await load.run(rate, min(seconds, 3.0))
            step.hi, extended = extra.hi, extended + extra.seconds
        sampler.enabled = False
        settled = await asyncio.to_thread(
            load.tracker.wait_resolved, step.lo, step.hi, plan.settle_timeout
        )
        await asyncio.sleep(2.0)  # score changes follow their resolution by a hop
        await _wait_samples(sampler)
        figures = {
            **step.as_dict(),
            **load.tracker.latencies(step.lo, step.hi),
            "raw_to_360_visible_ms": sampler.take(),
            "all_resolved_in_time": settled,
            "extended_seconds": round(extended, 1),
        }
        log(
            f"latency at {rate:,.0f}/s: resolved {figures['raw_to_resolved_ms']}, "
            f"score {figures['raw_to_score_change_ms']}, 360 {figures['raw_to_360_visible_ms']}"
        )
        out.append(figures)
        await load.drain(plan.settle_timeout)
    return out


async def _wait_samples(sampler: Visibility360) -> None:
    deadline = time.monotonic() + sampler.timeout + 5
    while sampler._tasks and time.monotonic() < deadline:  # noqa: ASYNC110 - tasks, no event
        await asyncio.sleep(0.05)


async def measure_sustained(
    load: Load, plan: BackendPlan, log: Log, *, drained_since: float
) -> dict[str, Any]:
    """The highest offered rate held with bounded lag, stepping from the drain rate seen
    after the fastest latency run (or from that run's rate, if it kept up)."""
    estimate = drain_rate(load.samples, drained_since)
    kept_up = estimate is None
    if estimate is None:
        estimate = max(plan.latency_rates)
    log(f"capacity estimate {estimate:,.0f} events/s" + (" (kept up)" if kept_up else ""))
    return await find_sustained(load, plan.stepping, log, estimate=estimate, kept_up=kept_up)


def finite(value: float | None) -> float | None:
    """None for NaN or None (JSON has no NaN)."""
    return None if value is None or math.isnan(value) else value
