"""Prometheus metrics of the kit, and helpers to define a service's own, once per process.

Names start with `crm_`, counters end in `_total`, durations are in seconds. Labels carry
bounded values only (service, topic, route template, outcome), never a contact or event id.

    from crm_kit import metrics
    metrics.observe_consumed("contacts", "interactions", "applied", lag_seconds=0.4)
    MERGES = metrics.counter("crm_contacts_merges_total", "Contacts merged.", ["how"])

`counter()`, `histogram()` and `gauge()` return the already registered metric when called
again with the same definition, so tests that build several apps in one process do not fail
with duplicate registrations.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.registry import Collector
from starlette.responses import Response

ConsumeOutcome = Literal["applied", "duplicate", "dead_lettered", "retried"]
CONSUME_OUTCOMES: frozenset[str] = frozenset(get_args(ConsumeOutcome))

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Event lag also covers late events (minutes to hours behind) and backlogs after an outage.
LAG_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    *(300.0, 900.0, 3600.0, 21600.0, 86400.0),
)

_M = TypeVar("_M", Counter, Gauge, Histogram)


@dataclass(frozen=True)
class _Definition:
    kind: type[Collector]
    labelnames: tuple[str, ...]
    buckets: tuple[float, ...] | None


_Defined = dict[str, tuple[_Definition, Collector]]
_defined: weakref.WeakKeyDictionary[CollectorRegistry, _Defined] = weakref.WeakKeyDictionary()


def _define(
    kind: type[_M],
    name: str,
    labelnames: Sequence[str],
    registry: CollectorRegistry,
    create: Callable[[], _M],
    buckets: Sequence[float] | None = None,
) -> _M:
    if not name.startswith("crm_"):
        raise ValueError(f"metric names start with `crm_`: {name!r}")
    definition = _Definition(kind, tuple(labelnames), tuple(buckets) if buckets else None)
    known = _defined.setdefault(registry, {})
    if name in known:
        existing_definition, existing = known[name]
        if existing_definition != definition:
            raise ValueError(f"metric {name!r} is already defined differently")
        assert isinstance(existing, kind)
        return existing
    metric = create()
    known[name] = (definition, metric)
    return metric


def counter(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    registry: CollectorRegistry = REGISTRY,
) -> Counter:
    """Define (or return the already defined) counter; its name ends in `_total`."""
    if not name.endswith("_total"):
        raise ValueError(f"counter names end with `_total`: {name!r}")
    return _define(
        Counter,
        name,
        labelnames,
        registry,
        lambda: Counter(name, documentation, labelnames, registry=registry),
    )


def gauge(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    registry: CollectorRegistry = REGISTRY,
) -> Gauge:
    """Define (or return the already defined) gauge."""
    return _define(
        Gauge,
        name,
        labelnames,
        registry,
        lambda: Gauge(name, documentation, labelnames, registry=registry),
    )


def histogram(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    buckets: Sequence[float] = LATENCY_BUCKETS,
    registry: CollectorRegistry = REGISTRY,
) -> Histogram:
    """Define (or return the already defined) histogram."""
    return _define(
        Histogram,
        name,
        labelnames,
        registry,
        lambda: Histogram(name, documentation, labelnames, registry=registry, buckets=buckets),
        buckets,
    )


HTTP_REQUESTS = counter(
    "crm_http_requests_total",
    "HTTP requests answered, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_REQUEST_DURATION = histogram(
    "crm_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["service", "method", "route"],
)
EVENTS_CONSUMED = counter(
    "crm_events_consumed_total",
    "Events consumed, by outcome: applied, duplicate, dead_lettered, retried.",
    ["service", "topic", "outcome"],
)
EVENTS_PUBLISHED = counter(
    "crm_events_published_total",
    "Events published to Kafka (acknowledged by the broker).",
    ["service", "topic"],
)
OUTBOX_PENDING = gauge(
    "crm_outbox_pending",
    "Outbox rows not yet published.",
    ["service"],
)
CONSUMER_BATCH_DURATION = histogram(
    "crm_consumer_batch_duration_seconds",
    "Time to handle one consumed batch, commit included.",
    ["service", "topic"],
)
EVENT_LAG = histogram(
    "crm_event_lag_seconds",
    "Time from an event's `time` to its handling.",
    ["service", "topic"],
    buckets=LAG_BUCKETS,
)
CONSUMER_PAUSES = counter(
    "crm_consumer_pauses_total",
    "Times a consumer held its batch because a dependency (database, broker) was unreachable.",
    ["service", "consumer", "dependency"],
)
CONSUMER_PAUSED = gauge(
    "crm_consumer_paused",
    "1 while a consumer holds its batch waiting for an unreachable dependency.",
    ["service", "consumer", "dependency"],
)


def record_http_request(
    *, service: str, method: str, route: str, status: int, duration_seconds: float
) -> None:
    """Count one HTTP request; `route` is the route template, never the raw path."""
    HTTP_REQUESTS.labels(service, method, route, str(status)).inc()
    HTTP_REQUEST_DURATION.labels(service, method, route).observe(duration_seconds)


def observe_consumed(
    service: str,
    topic: str,
    outcome: str,
    *,
    lag_seconds: float | None = None,
    count: int = 1,
) -> None:
    """Count consumed events by outcome (see `ConsumeOutcome`), and their lag if given."""
    if outcome not in CONSUME_OUTCOMES:
        raise ValueError(f"unknown consume outcome: {outcome!r}")
    EVENTS_CONSUMED.labels(service, topic, outcome).inc(count)
    if lag_seconds is not None:
        EVENT_LAG.labels(service, topic).observe(max(lag_seconds, 0.0))


def observe_consumed_batch(
    service: str,
    topic: str,
    *,
    applied: int = 0,
    duplicate: int = 0,
    ignored: int = 0,
    lag_seconds: Sequence[float] = (),
) -> None:
    """Count a batch's events of one topic by outcome, and observe each one's lag: the same
    figures as `observe_consumed` per event, with the labels looked up once. `ignored`:
    events of a type the service does not act on, passed over undecoded."""
    for outcome, count in (("applied", applied), ("duplicate", duplicate), ("ignored", ignored)):
        if count:
            EVENTS_CONSUMED.labels(service, topic, outcome).inc(count)
    if lag_seconds:
        lag = EVENT_LAG.labels(service, topic)
        for seconds in lag_seconds:
            lag.observe(max(seconds, 0.0))


def record_event_published(*, service: str, topic: str, count: int = 1) -> None:
    """Count events the broker acknowledged."""
    EVENTS_PUBLISHED.labels(service, topic).inc(count)


def set_outbox_pending(*, service: str, pending: int) -> None:
    """Set the number of outbox rows waiting to be published."""
    OUTBOX_PENDING.labels(service).set(pending)


def observe_batch(service: str, topic: str, duration_seconds: float) -> None:
    """Record how long one consumed batch took, commit included."""
    CONSUMER_BATCH_DURATION.labels(service, topic).observe(duration_seconds)


def observe_event_lag(
    *, service: str, topic: str, event_time: datetime, now: datetime | None = None
) -> None:
    """Record now minus the event's time; clock skew into the future counts as zero."""
    if event_time.tzinfo is None:
        raise ValueError("event_time must be timezone-aware")
    current = now or datetime.now(UTC)
    lag = (current - event_time).total_seconds()
    EVENT_LAG.labels(service, topic).observe(max(lag, 0.0))


def metrics_text(registry: CollectorRegistry = REGISTRY) -> bytes:
    """Return the Prometheus text exposition of `registry`."""
    return generate_latest(registry)


def metrics_response(registry: CollectorRegistry = REGISTRY) -> Response:
    """Return the Prometheus text exposition as an HTTP response."""
    return Response(metrics_text(registry), media_type=CONTENT_TYPE_LATEST)


def set_consumer_paused(*, service: str, consumer: str, dependency: str, paused: bool) -> None:
    """Mark a consumer as holding its batch for `dependency` (counted once per pause), or not."""
    if paused:
        CONSUMER_PAUSES.labels(service, consumer, dependency).inc()
    CONSUMER_PAUSED.labels(service, consumer, dependency).set(1 if paused else 0)
