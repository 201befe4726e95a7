"""Wiring of the campaigns service: settings, context, runtime (migrations, pool, outbox
relay, one consumer, the timers) and the HTTP app.

    python -m crm_campaigns      # serves on CRM_CAMPAIGNS_HTTP_HOST:CRM_CAMPAIGNS_HTTP_PORT

Timers (jobs, each round one transaction whose rows other replicas skip):

    step-timer        due steps: consent, holdout, quiet hours, caps, the send ledger
    segment-timer     contacts whose segment answer changes by time alone, when it does
    segment-backfill  new or changed segments evaluated once over every known contact
    campaign-ends     campaigns whose ends_at has come are completed
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from crm_campaigns import api, consumers
from crm_campaigns.handlers import audience, campaigns, examples, steps
from crm_campaigns.handlers.context import Context, wall_clock
from crm_campaigns.settings import CampaignsSettings
from crm_kit.runtime import ServiceRuntime, serve
from crm_kit.settings import load_settings

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION = "1.0.0"


def create_app(
    settings: CampaignsSettings | None = None, *, clock: Callable[[], datetime] | None = None
) -> FastAPI:
    """The campaigns app; its lifespan migrates, loads the example campaigns (unless told
    not to), then starts the relay, the consumer and the timers. `clock` replaces the wall
    clock (tests drive due steps with it)."""
    settings = settings or CampaignsSettings()
    ctx = Context(settings, clock or wall_clock)
    runtime = ServiceRuntime(settings, service="campaigns", migrations=MIGRATIONS)
    events = consumers.events_consumer(ctx)
    runtime.add_consumer(f"events{settings.consumer_group_suffix}", events.topics, events)
    tick = settings.step_tick_ms / 1000
    if settings.load_examples:
        # Loads once, then its rounds return at once (a job's round must finish now and then
        # for /readyz to call it alive).
        runtime.add_job("examples", partial(examples.load_once, ctx=ctx), interval_seconds=5)
    runtime.add_job("step-timer", partial(steps.send_due, ctx=ctx), interval_seconds=tick)
    runtime.add_job(
        "segment-timer", partial(audience.reevaluate_due, ctx=ctx), interval_seconds=tick
    )
    slow_tick = settings.backfill_tick_ms / 1000
    runtime.add_job(
        "segment-backfill", partial(audience.backfill, ctx=ctx), interval_seconds=slow_tick
    )
    runtime.add_job(
        "campaign-ends", partial(campaigns.complete_ended, ctx=ctx), interval_seconds=slow_tick
    )
    return runtime.create_app(title="campaigns", version=VERSION, router=api.router, context=ctx)


def main() -> None:
    """Serve the campaigns service."""
    settings = load_settings(CampaignsSettings)
    serve(create_app(settings), settings)
