"""Offered load through a pipeline: steady runs, lag, and the stepping that finds the knee.

One `Load` is one simulated business (one seed) feeding one pipeline: the simulator's
generator and sender, and a tracker on the pipeline's output topics. Each `run` sends at a
rate for some seconds; a monitor samples once a second what was sent, what came out and each
consumer's lag, which gives the throughput-over-time figure and the "bounded lag" verdicts.

Sustained throughput is found by stepping: rates double from `first_rate` in short steps
until a step does not hold, two bisection steps narrow the knee, and the highest rate that
held is then held for the long run. A step holds when the simulator achieved its rate
(within 5 %) and every consumer ended it at most `lag_seconds` of traffic behind.
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


async def find_sustained(load: Load, plan: Stepping, log: Callable[[str], None]) -> dict[str, Any]:
    """Step the rate up to the knee, then hold the highest rate that held."""
    load.lag_seconds = plan.lag_seconds
    steps: list[StepResult] = []
    held_rate, failed_rate = 0.0, None
    rate = plan.first_rate
    while rate <= plan.max_rate:
        step = await _step(load, rate, plan.step_seconds, plan, log)
        steps.append(step)
        if not step.held:
            failed_rate = rate
            break
        held_rate = rate
        rate *= 2
    for _ in range(plan.bisections if failed_rate else 0):
        assert failed_rate is not None
        lo = held_rate if held_rate else plan.first_rate / 4
        rate = round((lo + failed_rate) / 2, -1)
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
        "method": "rates doubled in short steps until one did not hold, "
        f"{plan.bisections} bisection steps, then the highest that held was held",
        "lag_bound_seconds_of_traffic": load.lag_seconds,
        "steps": [s.as_dict() for s in steps],
        "hold": hold.as_dict() if hold else None,
        "sustained_rate_per_s": held_rate if hold is not None and hold.held else 0.0,
        "knee_rate_per_s": failed_rate,
        "latency_by_step": [
            {"offered_rate_per_s": s.rate, **load.tracker.latencies(s.lo, s.hi)}
            for s in [*steps, *([hold] if hold else [])]
        ],
    }


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
