"""The results: JSON, a Markdown table with each goal beside its figure, and a PNG."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def get(results: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (list items by index), or None."""
    value: Any = results
    for part in path.split("."):
        if isinstance(value, list):
            value = value[int(part)] if part.isdigit() and int(part) < len(value) else None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


@dataclass(frozen=True)
class Figure:
    """One line of the summary: where the figure is in the JSON, and its goal if it has one."""

    label: str
    path: str
    unit: str
    goal: str = ""
    check: Callable[[float], bool] | None = None


def _at_most(limit: float) -> Callable[[float], bool]:
    return lambda v: v <= limit


def _at_least(limit: float) -> Callable[[float], bool]:
    return lambda v: v >= limit


def figures(results: dict[str, Any]) -> list[Figure]:
    """Every figure of a run, in the order of the table."""
    services = sorted((results.get("memory_mb") or {}).get("services", {}))
    histories = (results.get("scoring_cost") or {}).get("histories") or [10, 10_000]
    fewest, most = f"{histories[0]:,}", f"{histories[-1]:,}"
    # The goals are stated at 500 and 2,000 events/s; a smoke run offers less and says so.
    low = f"@{get(results, 'backend.latency.0.offered_rate_per_s') or 500:,.0f}/s"
    high = f"@{get(results, 'backend.latency.1.offered_rate_per_s') or 2000:,.0f}/s"
    small = f"{get(results, 'reads.small.contacts') or 10_000:,}"
    large = f"{get(results, 'reads.large.contacts') or 1_000_000:,}"
    return [
        Figure(
            f"sustained through every service{_unheld(results, 'backend')}",
            "backend.sustained.sustained_rate_per_s",
            "ev/s",
            "≥ 5,000",
            _at_least(5000),
        ),
        Figure("real / lean reference", "backend.real_to_lean_ratio", "%", "≥ 60 %", _at_least(60)),
        Figure(
            f"lean reference sustained{_unheld(results, 'lean')}",
            "lean.sustained.sustained_rate_per_s",
            "ev/s",
        ),
        Figure(
            f"raw → score change p50 {low}",
            "backend.latency.0.raw_to_score_change_ms.p50",
            "ms",
            "≤ 40",
            _at_most(40),
        ),
        Figure(
            f"raw → score change p99 {low}",
            "backend.latency.0.raw_to_score_change_ms.p99",
            "ms",
            "≤ 100",
            _at_most(100),
        ),
        Figure(
            f"raw → score change p99 {high}",
            "backend.latency.1.raw_to_score_change_ms.p99",
            "ms",
            "≤ 500",
            _at_most(500),
        ),
        Figure(
            f"raw → 360 visible p99 {low}",
            "backend.latency.0.raw_to_360_visible_ms.p99",
            "ms",
            "≤ 100",
            _at_most(100),
        ),
        Figure(
            f"raw → 360 visible p99 {high}", "backend.latency.1.raw_to_360_visible_ms.p99", "ms"
        ),
        Figure(f"raw → resolved p99 {low}", "backend.latency.0.raw_to_resolved_ms.p99", "ms"),
        Figure(f"raw → resolved p99 {high}", "backend.latency.1.raw_to_resolved_ms.p99", "ms"),
        Figure(f"lean raw → score p99 {low}", "lean.latency.raw_to_score_change_ms.p99", "ms"),
        Figure(
            f"360 read p99 idle, {small} contacts",
            "reads.small.idle.latency_ms.p99",
            "ms",
            "≤ 5",
            _at_most(5),
        ),
        Figure(
            f"360 read p99 idle, {large} contacts",
            "reads.large.idle.latency_ms.p99",
            "ms",
            "≤ 5",
            _at_most(5),
        ),
        Figure(
            f"360 read p99 under load, {small}",
            "reads.small.loaded.latency_ms.p99",
            "ms",
            "≤ 15",
            _at_most(15),
        ),
        Figure(
            f"360 read p99 under load, {large}",
            "reads.large.loaded.latency_ms.p99",
            "ms",
            "≤ 15",
            _at_most(15),
        ),
        Figure(
            f"360 read p99 growth {small} → {large} (idle)",
            "reads.growth_idle_p99",
            "x",
            "≤ 1.5",
            _at_most(1.5),
        ),
        Figure(
            f"360 read p99 growth {small} → {large} (load)",
            "reads.growth_loaded_p99",
            "x",
            "≤ 1.5",
            _at_most(1.5),
        ),
        *(
            Figure(
                f"RSS {name} at the end ({large} contacts)",
                f"memory_mb.services.{name}",
                "MB",
                "≤ 250",
                _at_most(250),
            )
            for name in services
        ),
        Figure("RSS broker at the end", "memory_mb.broker", "MB"),
        Figure("RSS Postgres (all processes)", "memory_mb.postgres", "MB"),
        Figure("crmctl up until all ready", "startup.seconds", "s", "≤ 20", _at_most(20)),
        Figure(
            f"scoring: apply 1 event, {fewest} earlier facts", "scoring_cost.fewest_facts_ms", "ms"
        ),
        Figure(f"scoring: apply 1 event, {most} earlier facts", "scoring_cost.most_facts_ms", "ms"),
        Figure(
            f"scoring cost growth, {fewest} → {most} facts",
            "scoring_cost.growth",
            "x",
            "≤ 1.5",
            _at_most(1.5),
        ),
        Figure("bare transport, messages/s", "transport.messages_per_s", "msg/s"),
        Figure("bare transport, one hop p99", "transport.one_hop_ms.p99", "ms"),
        Figure(f"load {large} contacts (10 rows each)", "reads.large.load.seconds", "s"),
    ]


def _unheld(results: dict[str, Any], part: str) -> str:
    if get(results, f"{part}.sustained.hold_held") is False:
        return " (the hold did not hold: rate that came out)"
    return ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _format(value: float, unit: str) -> str:
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{text} {unit}"


def summary_table(results: dict[str, Any]) -> str:
    """Markdown: each figure, its goal, and whether it meets it."""
    rows = ["| figure | measured | goal | |", "|---|---:|---|---|"]
    for figure in figures(results):
        value = _number(get(results, figure.path))
        shown = _format(value, figure.unit) if value is not None else "—"
        mark = ""
        if figure.check is not None:
            mark = "—" if value is None else ("pass" if figure.check(value) else "**fail**")
        rows.append(f"| {figure.label} | {shown} | {figure.goal} | {mark} |")
    return "\n".join(rows)


def missing(results: dict[str, Any]) -> list[str]:
    """The figures that were not produced (what bench-smoke asserts is empty)."""
    return [f.path for f in figures(results) if _number(get(results, f.path)) is None]


def plot(results: dict[str, Any], path: Path) -> None:
    """Latency percentiles against offered load, and throughput over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    _latency_panel(left, results)
    _throughput_panel(right, results)
    fig.suptitle(f"make bench ({results.get('mode', '')}) {results.get('time', '')}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency_points(block: dict[str, Any] | None, key: str) -> list[tuple[float, dict[str, Any]]]:
    # Per rate, the window with the most resolved events, the same one for every series.
    best: dict[float, dict[str, Any]] = {}
    for item in (block or {}).get("latency_by_step", []):
        rate = item["offered_rate_per_s"]
        size = item.get("raw_to_resolved_ms", {}).get("count", 0)
        if size and size > best.get(rate, {}).get("raw_to_resolved_ms", {}).get("count", 0):
            best[rate] = item
    return sorted((r, item[key]) for r, item in best.items() if item.get(key, {}).get("count"))


def _latency_panel(ax: Any, results: dict[str, Any]) -> None:
    backend = results.get("backend") or {}
    series = [
        ("real: raw → score change", backend.get("latency_points"), "raw_to_score_change_ms", "-"),
        ("real: raw → resolved", backend.get("latency_points"), "raw_to_resolved_ms", "--"),
        (
            "lean: raw → score",
            (results.get("lean") or {}).get("latency_points"),
            "raw_to_score_change_ms",
            ":",
        ),
    ]
    colours = {"p50": "tab:green", "p95": "tab:orange", "p99": "tab:red"}
    for label, block, key, style in series:
        points = _latency_points({"latency_by_step": block or []}, key)
        if not points:
            continue
        for q, colour in colours.items():
            ax.plot(
                [p[0] for p in points],
                [max(p[1][q], 0.1) for p in points],
                style,
                color=colour,
                marker="o",
                markersize=3,
                label=f"{label} {q}",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (events/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("latency percentiles against offered load")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _throughput_panel(ax: Any, results: dict[str, Any]) -> None:
    samples = (results.get("backend") or {}).get("samples", [])
    if len(samples) >= 2:
        t = [s["t"] for s in samples[1:]]
        for key, label in (
            ("sent", "sent (events/s)"),
            ("resolved", "resolved (events/s)"),
            ("scored", "score changes (/s)"),
        ):
            rates = [
                max(0.0, (b[key] - a[key]) / max(b["t"] - a["t"], 1e-6))
                for a, b in itertools.pairwise(samples)
            ]
            ax.plot(t, _smoothed(rates), label=f"{label}, 5 s mean", linewidth=0.8)
        ax.plot(
            t, [s["offered_rate_per_s"] for s in samples[1:]], "k--", linewidth=0.8, label="offered"
        )
        lag_ax = ax.twinx()
        for service in sorted({k for s in samples for k in s["lag"]}):
            lag_ax.plot(
                t,
                [s["lag"].get(service, 0) for s in samples[1:]],
                ":",
                linewidth=0.8,
                label=f"lag {service} (events)",
            )
        lag_ax.set_ylabel("lag (events)")
        lag_ax.legend(loc="upper right", fontsize=7)
    ax.set_xlabel("time since the real back end's first event (s)")
    ax.set_ylabel("events/s")
    ax.set_title("real back end: throughput over time")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)


def _smoothed(values: list[float], window: int = 5) -> list[float]:
    """Trailing mean: the tracker sees output in bursts of a fetch, not evenly."""
    out = []
    for i in range(len(values)):
        part = values[max(0, i - window + 1) : i + 1]
        out.append(sum(part) / len(part))
    return out


def write(results: dict[str, Any], name: str) -> tuple[Path, Path, Path]:
    """bench/results/<name>.json, .md and .png; returns their paths."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / f"{name}.json"
    md_path = RESULTS / f"{name}.md"
    png_path = RESULTS / f"{name}.png"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path.write_text(summary_table(results) + "\n")
    plot(results, png_path)
    return json_path, md_path, png_path
