"""The benchmark's pure parts: the stepping ladder, the drain rate, percentiles, the table."""

from __future__ import annotations

import math

from bench import report
from bench.load import Stepping, drain_rate, ladder
from bench.tracker import percentiles

PLAN = Stepping(first_rate=500, max_rate=16_000, step_seconds=15, hold_seconds=300,
                drain_timeout=120)  # fmt: skip


def test_without_an_estimate_the_rates_double_from_the_first_one() -> None:
    assert ladder(PLAN, None) == [500, 1000, 2000, 4000, 8000, 16_000]


def test_the_ladder_brackets_an_estimated_capacity_and_stops_at_the_maximum() -> None:
    rungs = ladder(PLAN, 570.0)
    assert rungs[0] < 570 < rungs[-1]
    assert 570 in rungs
    assert ladder(PLAN, 5000.0)[-1] == 16_000


def test_a_pipeline_that_kept_up_is_stepped_from_that_rate_up() -> None:
    assert min(ladder(PLAN, 2000.0, kept_up=True)) == 2000


def sample(t: float, resolved: int, lag: int, offered: float = 0.0) -> dict[str, object]:
    return {"t": t, "offered_rate_per_s": offered, "resolved": resolved, "scored": resolved // 2,
            "lag": {"contacts": lag}}  # fmt: skip


def test_the_drain_rate_is_measured_while_nothing_is_offered_and_a_backlog_remains() -> None:
    samples = [
        sample(0, 0, 900, offered=2000),
        sample(1, 100, 800),
        sample(2, 600, 300),
        sample(3, 1100, 100),
        sample(4, 1120, 0),
    ]
    assert drain_rate(samples, since=0.5) == 500.0
    assert drain_rate(samples, since=0.5, keys=("resolved", "scored")) == 250.0


def test_no_backlog_means_no_drain_rate() -> None:
    assert drain_rate([sample(t, t * 10, 0) for t in range(10)], since=0) is None


def test_percentiles_are_milliseconds_and_ignore_what_never_arrived() -> None:
    figures = percentiles([0.010, 0.020, math.nan, 0.030])
    assert figures["count"] == 3
    assert figures["p50"] == 20.0
    assert percentiles([]) == {"count": 0}


def test_the_summary_sets_each_figure_beside_its_goal_and_names_what_is_missing() -> None:
    results = {
        "backend": {
            "sustained": {"sustained_rate_per_s": 570.0, "hold_held": True},
            "latency": [{"offered_rate_per_s": 500, "raw_to_score_change_ms": {"p50": 30.0}}],
        },
        "startup": {"seconds": 25.0},
    }
    table = report.summary_table(results)
    assert "| sustained through every service | 570 ev/s | ≥ 5,000 | **fail** |" in table
    assert "| raw → score change p50 @500/s | 30 ms | ≤ 40 | pass |" in table
    assert "| crmctl up until all ready | 25 s | ≤ 20 | **fail** |" in table
    missing = report.missing(results)
    assert "backend.latency.0.raw_to_score_change_ms.p99" in missing
    assert "startup.seconds" not in missing


def test_a_hold_that_did_not_hold_is_said_so_in_the_table() -> None:
    results = {"backend": {"sustained": {"sustained_rate_per_s": 480.0, "hold_held": False}}}
    assert "the hold did not hold" in report.summary_table(results)
