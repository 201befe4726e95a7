"""Offered load through a pipeline: steady runs, lag, and the stepping that finds the knee.

One `Load` is one simulated business (one seed) feeding one pipeline: the simulator's
generator and sender, and a tracker on the pipeline's output topics. Each `run` sends at a
rate for some seconds; a monitor samples once a second what was sent, what came out and each
consumer's lag, which gives the throughput-over-time figure and the "bounded lag" verdicts.

Sustained throughput is found by stepping. The capacity is first estimated from how fast a
backlog drains (`drain_rate`); short steps then climb a ladder around it (0.6x to 8x; plain
doubling from `first_rate` without an estimate) until one does not hold, bisection steps
narrow the knee, and the highest rate that held is then held for the long run. So a back
end draining 500 events/s and one draining 5,000 both take a handful of steps. A step
holds when the simulator achieved its rate (within 5 %) and every consumer ended it at most
`lag_seconds` of traffic behind. When the long hold does not hold, the rate that came out
during it is reported instead, flagged `hold_held: false`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.tracker import Tracker
from crm_stack.simulate.journeys import SimConfig, SimEvent, TrafficGenerator
from crm_stack.simulate.sender import Sender, SendStats

LagProbe = Callable[[], dict[str, float]]


@dataclass
class StepResult:
    """One run at one offered rate."""

    rate: float
    seconds: float
    stats: SendStats
    lo: int
    hi: int
    lag_end: dict[str, float]
    held: bool
    output_rate: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "offered_rate_per_s": self.rate,
            "achieved_rate_per_s": round(self.stats.achieved_rate, 1),
            "seconds": round(self.seconds, 1),
            "output_rate_per_s": round(self.output_rate, 1),
            "lag_events_at_end": {k: round(v) for k, v in self.lag_end.items()},
            "held": self.held,
        }


@dataclass
class Load:
    """One simulated business feeding one pipeline."""

    generator: TrafficGenerator
    sender: Sender
    tracker: Tracker
    lag: LagProbe  # events behind, per consumer
    lag_seconds: float = 2.0
    started: float = field(default_factory=time.monotonic)
    samples: list[dict[str, Any]] = field(default_factory=list)
    produced_raw: int = 0  # records put on the raw topic (duplicates included)
    hooks: list[Callable[[SimEvent, float], None]] = field(default_factory=list)
    last_run_end: float = 0.0  # seconds since `started` when the last run ended
    _offered: float = 0.0
    _in_run: bool = False

    @classmethod
    def create(
        cls,
        *,
        config: SimConfig,
        bootstrap: str,
        raw_topic: str,
        tracker: Tracker,
        lag: LagProbe,
        ingest_url: str | None = None,
        api_keys: dict[str, str] | None = None,
    ) -> Load:
        generator = TrafficGenerator(config)
        load: Load
        sender = Sender(
            bootstrap=bootstrap,
            topic=raw_topic,
            ingest_url=ingest_url,
            api_keys=api_keys,
            on_sent=lambda e, t: load._sent(e, t),
        )
        load = cls(generator=generator, sender=sender, tracker=tracker, lag=lag)
        return load

    def _sent(self, event: SimEvent, at: float) -> None:
        self.tracker.on_sent(event, at)
        for hook in self.hooks:
            hook(event, at)

    async def run(self, rate: float, seconds: float) -> StepResult:
        """Send at `rate` for `seconds`; the verdict is taken at the end, without waiting."""
        self.generator.retime(start=datetime.now(UTC), rate=rate)
        lo = self.generator.n
        self._offered = rate
        started = time.monotonic()
        self._in_run = True
        try:
            stats = await self.sender.run(iter(self.generator), rate=rate, duration=seconds)
        finally:
            self._in_run = False
            current = self.sender.current
            self.produced_raw += current.sent - current.http_rejected - current.errors
            self._offered = 0.0
            self.last_run_end = time.monotonic() - self.started
        lag = await asyncio.to_thread(self.lag)
        hi = self.generator.n
        elapsed = time.monotonic() - started
        bound = max(self.lag_seconds * rate, 100.0)
        out = [s for s in self.samples if s["t"] >= started - self.started]
        output_rate = (
            (out[-1]["resolved"] - out[0]["resolved"]) / (out[-1]["t"] - out[0]["t"])
            if len(out) >= 2 and out[-1]["t"] > out[0]["t"]
            else 0.0
        )
        held = stats.achieved_rate >= 0.95 * rate and all(v <= bound for v in lag.values())
        return StepResult(rate, elapsed, stats, lo, hi, lag, held, output_rate)

    def raw_records(self) -> int:
        """Records put on the raw topic so far (duplicates included, rejected ones not)."""
        if not self._in_run:
            return self.produced_raw
        current = self.sender.current
        return self.produced_raw + current.sent - current.http_rejected - current.errors

    async def drain(self, timeout: float, *, slack: int = 20) -> bool:
        """Wait until every consumer is at most `slack` events behind."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lag = await asyncio.to_thread(self.lag)
            if all(v <= slack for v in lag.values()):
                return True
            await asyncio.sleep(0.5)
        return False

    async def monitor(self) -> None:
        """Sample sent, resolved and lag once a second until cancelled."""
        while True:
            lag = await asyncio.to_thread(self.lag)
            self.samples.append(
                {
                    "t": round(time.monotonic() - self.started, 2),
                    "offered_rate_per_s": self._offered,
                    "sent": self.tracker.sent.count,
                    "resolved": self.tracker.resolved.count,
                    "scored": self.tracker.scored.count,
                    "lag": {k: round(v) for k, v in lag.items()},
                }
            )
            await asyncio.sleep(1.0)


@dataclass(frozen=True)
class Stepping:
    """How to look for the knee, and how long to hold it."""

    first_rate: float
    max_rate: float
    step_seconds: float
    hold_seconds: float
    drain_timeout: float
    bisections: int = 2
    lag_seconds: float = 2.0  # a step holds when no consumer is further behind than this


FACTORS = (0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


def ladder(plan: Stepping, estimate: float | None, *, kept_up: bool = False) -> list[float]:
    """The rates to try, lowest first: around the estimated capacity, or doubling."""
    if estimate is None:
        rates, rate = [], plan.first_rate
        while rate <= plan.max_rate:
            rates.append(rate)
            rate *= 2
        return rates
    # A pipeline that kept up with the estimate can do at least that: start there.
    factors = [f for f in FACTORS if f >= 1.0] if kept_up else list(FACTORS)
    return sorted({min(plan.max_rate, round(estimate * f, -1)) for f in factors})


def drain_rate(
    samples: list[dict[str, Any]], since: float, keys: tuple[str, ...] = ("resolved",)
) -> float | None:
    """Events/s that came out (the slowest of `keys`: resolved, scored) while nothing was
    offered and a backlog remained."""
    draining = [
        s
        for s in samples
        if s["t"] > since and not s["offered_rate_per_s"] and sum(s["lag"].values()) > 50
    ]
    if len(draining) < 3:
        return None  # it kept up: no backlog to drain
    first, last = draining[0], draining[-1]
    seconds = last["t"] - first["t"]
    if seconds <= 0:
        return None
    return float(min((last[key] - first[key]) / seconds for key in keys))


async def find_sustained(
    load: Load,
    plan: Stepping,
    log: Callable[[str], None],
    *,
    estimate: float | None = None,
    kept_up: bool = False,
) -> dict[str, Any]:
    """Step the rate up to the knee (from an estimate of capacity), then hold the best."""
    load.lag_seconds = plan.lag_seconds
    rungs = ladder(plan, estimate, kept_up=kept_up)
    steps: list[StepResult] = []
    held_rate, failed_rate = 0.0, None
    rate = rungs[0]
    while True:
        step = await _step(load, rate, plan.step_seconds, plan, log)
        steps.append(step)
        if step.held:
            held_rate = rate
            ceiling = failed_rate if failed_rate is not None else float("inf")
            higher = [r for r in rungs if rate < r < ceiling]  # bisection takes it from here
            if not higher:
                break
            rate = higher[0]
            continue
        failed_rate = rate
        if held_rate or len(steps) >= 3:
            break
        rate = round(rate * 0.6, -1)  # even the lowest rung failed: go below it
    for _ in range(plan.bisections if failed_rate and held_rate else 0):
        assert failed_rate is not None
        rate = round((held_rate + failed_rate) / 2, -1)
        if rate in (held_rate, failed_rate):
            break
        step = await _step(load, rate, plan.step_seconds, plan, log)
        steps.append(step)
        if step.held:
            held_rate = rate
        else:
            failed_rate = rate
    hold = None
    if held_rate:
        log(f"holding {held_rate:,.0f} events/s for {plan.hold_seconds:.0f}s")
        hold = await _step(load, held_rate, plan.hold_seconds, plan, log)
    return {
        "method": "short steps up a ladder around the capacity estimated from a drain "
        f"(or doubling), {plan.bisections} bisection steps, then the highest that held was held",
        "capacity_estimate_per_s": None if estimate is None else round(estimate, 1),
        "lag_bound_seconds_of_traffic": load.lag_seconds,
        "steps": [s.as_dict() for s in steps],
        "hold": hold.as_dict() if hold else None,
        # A hold that did not hold still ran for its whole length: what came out then is
        # what the pipeline sustained (flagged, so that nobody takes it for a held rate).
        "sustained_rate_per_s": _sustained(hold),
        "hold_held": bool(hold and hold.held),
        "knee_rate_per_s": failed_rate,
        "latency_by_step": [
            {"offered_rate_per_s": s.rate, **load.tracker.latencies(s.lo, s.hi)}
            for s in [*steps, *([hold] if hold else [])]
        ],
    }


def _sustained(hold: StepResult | None) -> float:
    if hold is None:
        return 0.0
    return hold.rate if hold.held else round(min(hold.rate, hold.output_rate), 1)


async def _step(
    load: Load, rate: float, seconds: float, plan: Stepping, log: Callable[[str], None]
) -> StepResult:
    drained = await load.drain(plan.drain_timeout)
    step = await load.run(rate, seconds)
    verdict = "held" if step.held else "did not hold"
    log(
        f"step {rate:,.0f}/s for {seconds:.0f}s: achieved {step.stats.achieved_rate:,.0f}/s, "
        f"lag {step.lag_end}, {verdict}" + ("" if drained else " (backlog before it)")
    )
    return step
