"""Idempotent metric definitions and the kit's event metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from crm_kit import metrics


def test_defining_the_same_metric_twice_returns_the_first_one() -> None:
    registry = CollectorRegistry()

    first = metrics.counter("crm_things_total", "Things.", ["service"], registry=registry)
    second = metrics.counter("crm_things_total", "Things.", ["service"], registry=registry)

    assert first is second


def test_redefining_a_metric_with_other_labels_is_refused() -> None:
    registry = CollectorRegistry()
    metrics.histogram("crm_wait_seconds", "Wait.", ["service"], registry=registry)

    with pytest.raises(ValueError):
        metrics.histogram("crm_wait_seconds", "Wait.", ["service", "topic"], registry=registry)


def test_metric_names_need_the_crm_prefix_and_counters_the_total_suffix() -> None:
    registry = CollectorRegistry()

    with pytest.raises(ValueError):
        metrics.gauge("pending", "Pending.", registry=registry)
    with pytest.raises(ValueError):
        metrics.counter("crm_things", "Things.", registry=registry)


def test_event_metrics_appear_in_the_exposition() -> None:
    metrics.observe_consumed("m-test", "interactions", "duplicate", lag_seconds=0.3)
    metrics.record_event_published(service="m-test", topic="contacts", count=3)
    metrics.set_outbox_pending(service="m-test", pending=7)
    metrics.observe_batch("m-test", "interactions", 0.02)
    metrics.observe_event_lag(
        service="m-test",
        topic="interactions",
        event_time=datetime.now(UTC) - timedelta(seconds=2),
    )

    text = metrics.metrics_text().decode()

    assert (
        'crm_events_consumed_total{outcome="duplicate",service="m-test",topic="interactions"}'
        in text
    )
    assert 'crm_events_published_total{service="m-test",topic="contacts"} 3.0' in text
    assert 'crm_outbox_pending{service="m-test"} 7.0' in text
    assert 'crm_consumer_batch_duration_seconds_count{service="m-test"' in text
    assert 'crm_event_lag_seconds_bucket{le="5.0",service="m-test",topic="interactions"}' in text


def test_an_unknown_consume_outcome_is_refused() -> None:
    with pytest.raises(ValueError):
        metrics.observe_consumed("m-test", "interactions", "exploded")


def test_a_batch_counts_the_same_as_its_events_one_by_one() -> None:
    for outcome, lag in (("applied", 0.2), ("applied", 3.0), ("duplicate", -1.0)):
        metrics.observe_consumed("m-one", "interactions", outcome, lag_seconds=lag)
    metrics.observe_consumed_batch(
        "m-batch", "interactions", applied=2, duplicate=1, lag_seconds=[0.2, 3.0, -1.0]
    )

    def series(service: str) -> list[str]:
        lines = metrics.metrics_text().decode().splitlines()
        return sorted(
            line.replace(f'service="{service}"', "")
            for line in lines
            if f'service="{service}"' in line and "_created" not in line
        )

    assert series("m-batch") == series("m-one")


def test_a_batch_without_duplicates_shows_no_duplicate_series() -> None:
    metrics.observe_consumed_batch("m-fresh", "interactions", applied=4, lag_seconds=[0.1] * 4)

    text = metrics.metrics_text().decode()

    assert 'outcome="applied",service="m-fresh",topic="interactions"} 4.0' in text
    assert 'outcome="duplicate",service="m-fresh"' not in text
