"""Wiring of the contacts service: settings, rules, runtime (migrations, pool, outbox relay,
consumers) and the HTTP app.

    python -m crm_contacts          # serves on CRM_CONTACTS_HTTP_HOST:CRM_CONTACTS_HTTP_PORT
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from fastapi import FastAPI

from crm_contacts import api, consumers
from crm_contacts.domain import LifecycleRules, parse_lifecycle_rules
from crm_contacts.handlers import Context
from crm_contacts.settings import ContactsSettings
from crm_kit.runtime import ServiceRuntime, serve
from crm_kit.settings import load_settings

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION = "1.0.0"


def load_lifecycle_rules(path: Path) -> LifecycleRules:
    """Read and validate the lifecycle rules file."""
    with path.open("rb") as file:
        return parse_lifecycle_rules(tomllib.load(file))


def create_app(settings: ContactsSettings | None = None) -> FastAPI:
    """The contacts app; its lifespan migrates, then starts the relay and the consumers."""
    settings = settings or ContactsSettings()
    ctx = Context.from_settings(settings, load_lifecycle_rules(settings.lifecycle_rules_path))
    runtime = ServiceRuntime(settings, service="contacts", migrations=MIGRATIONS)
    # One group for every input topic: one join at start, one place to scale (replicas).
    events = consumers.events_consumer(ctx)
    runtime.add_consumer(f"events{settings.consumer_group_suffix}", events.topics, events)
    return runtime.create_app(title="contacts", version=VERSION, router=api.router, context=ctx)


def main() -> None:
    """Serve the contacts service."""
    settings = load_settings(ContactsSettings)
    serve(create_app(settings), settings)
