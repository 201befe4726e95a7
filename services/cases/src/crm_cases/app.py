"""Wiring of the cases service: settings, context, runtime (migrations, pool, outbox relay,
one consumer, the SLA timer) and the HTTP app.

    python -m crm_cases          # serves on CRM_CASES_HTTP_HOST:CRM_CASES_HTTP_PORT
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from crm_cases import api, consumers
from crm_cases.handlers import assignment, timer
from crm_cases.handlers.context import Context, wall_clock
from crm_cases.settings import CasesSettings
from crm_kit.runtime import ServiceRuntime, serve
from crm_kit.settings import load_settings

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION = "1.0.0"


def create_app(
    settings: CasesSettings | None = None, *, clock: Callable[[], datetime] | None = None
) -> FastAPI:
    """The cases app; its lifespan migrates, then starts the relay, the consumer and the
    SLA timer. `clock` replaces the wall clock (tests drive SLA time with it)."""
    settings = settings or CasesSettings()
    ctx = Context(settings, clock or wall_clock)
    runtime = ServiceRuntime(settings, service="cases", migrations=MIGRATIONS)
    events = consumers.events_consumer(ctx)
    runtime.add_consumer(f"events{settings.consumer_group_suffix}", events.topics, events)
    runtime.add_job(
        "sla-timer",
        partial(timer.breach_due, ctx=ctx),
        interval_seconds=settings.sla_tick_ms / 1000,
    )
    runtime.add_job(
        "assign-sweep",
        partial(assignment.sweep, ctx=ctx),
        interval_seconds=settings.assign_sweep_seconds,
    )
    return runtime.create_app(title="cases", version=VERSION, router=api.router, context=ctx)


def main() -> None:
    """Serve the cases service."""
    settings = load_settings(CasesSettings)
    serve(create_app(settings), settings)
