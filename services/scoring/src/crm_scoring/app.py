"""Explicit wiring of the scoring process: migrations, pool, outbox relay, faust worker, API.

    app = create_app(ScoringSettings())   # what `python -m crm_scoring` serves

Start order: create the topics, migrate, open the pool and producer, start the outbox relay,
then the faust worker (which joins its consumer group in a few seconds); `/readyz` turns
200 once the worker has its partitions, and 503 while the broker or the database does not
answer or the worker holds a batch longer than `consumer_stall_seconds`. Shutdown runs it
backwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from crm_contracts import TopicSpec, dead_letter_topic, get_topic
from crm_kit.http import create_service_app
from crm_kit.kafka import ensure_topics
from crm_kit.runtime import ServiceRuntime
from crm_scoring import api
from crm_scoring.consumers import ScoringWorker
from crm_scoring.handlers import Context
from crm_scoring.model import ScoringModel, load_model
from crm_scoring.settings import ScoringSettings

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION = "1.0.0"


def topic_specs(settings: ScoringSettings) -> list[TopicSpec]:
    """The topics this service reads and writes, with the dead-letter topics of its inputs."""
    specs: list[TopicSpec] = []
    for name in [*settings.input_topics, settings.scores_topic, settings.scores_current_topic]:
        try:
            registered = get_topic(name)
            policy = registered.cleanup_policy
        except KeyError:
            policy = "compact" if name == settings.scores_current_topic else "delete"
        specs.append(
            TopicSpec(name, "contact_id", settings.topic_partitions, policy, (), "scoring")
        )
    for name in settings.input_topics:
        specs.append(
            TopicSpec(
                dead_letter_topic(name), "as source", settings.topic_partitions, "delete", (), ""
            )
        )
    return specs


def create_app(
    settings: ScoringSettings | None = None,
    *,
    model: ScoringModel | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The scoring service: faust worker and read API in one process."""
    settings = settings or ScoringSettings()
    model = model or load_model(settings.model_path)
    ctx = Context(model=model, settings=settings)
    if clock is not None:
        ctx.clock = clock
    runtime = ServiceRuntime(settings, service="scoring", migrations=MIGRATIONS)
    worker = ScoringWorker(
        settings,
        ctx,
        pool=lambda: runtime.pool,
        producer=lambda: runtime.producer,
        checks=lambda: (runtime.database_check, runtime.broker_check),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if settings.create_topics:
            await ensure_topics(settings.kafka_bootstrap_servers, topic_specs(settings))
        await runtime.start()
        try:
            await worker.start()
            try:
                yield
            finally:
                await worker.stop()
        finally:
            await runtime.stop()

    async def readiness() -> dict[str, bool]:
        checks = await runtime.readiness()
        checks["worker"] = worker.ready
        checks[f"consumer:{settings.faust_app_id}:advancing"] = worker.advancing
        return checks

    app = create_service_app(
        settings=settings,
        title="scoring",
        version=VERSION,
        lifespan=lifespan,
        readiness=readiness,
    )
    app.state.context = ctx
    app.state.runtime = runtime
    app.state.worker = worker
    app.include_router(api.router)
    return app
