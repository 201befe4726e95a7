"""Wiring of the ingest process: migrations, pool, producer, HTTP app.

`python -m crm_ingest` serves it on CRM_INGEST_HTTP_HOST:CRM_INGEST_HTTP_PORT (see cli.py).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from crm_ingest import api
from crm_ingest.settings import IngestSettings
from crm_kit.runtime import ServiceRuntime, serve
from crm_kit.settings import load_settings

VERSION = "1.0.0"
MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    """The ingest app; its lifespan migrates, then opens the pool and the producer."""
    settings = settings or IngestSettings()
    runtime = ServiceRuntime(settings, service="ingest", migrations=MIGRATIONS, outbox=False)
    return runtime.create_app(
        title="ingest", version=VERSION, router=api.router, max_body_bytes=settings.max_body_bytes
    )


def main() -> None:
    """Serve ingest with the settings from the environment."""
    settings = load_settings(IngestSettings)
    serve(create_app(settings), settings)
