"""Command line of ingest: serve (the default), and API keys for operators.

    python -m crm_ingest                                   # serve
    python -m crm_ingest create-key --source urn:channel:webshop --description "web shop"
    python -m crm_ingest list-keys [--source urn:channel:webshop] [--all]
    python -m crm_ingest revoke-key <id>

The key commands read CRM_INGEST_DATABASE_URL and apply the migrations first, so they work
before the service ever started. create-key prints the key alone on stdout (once: only its
hash is kept) and the rest on stderr, so that `KEY=$(python -m crm_ingest create-key ...)`
works.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from uuid import UUID

import asyncpg

from crm_ingest import app, domain, handlers
from crm_ingest.app import MIGRATIONS
from crm_ingest.domain import ApiKey
from crm_ingest.settings import IngestSettings
from crm_kit.db import create_pool
from crm_kit.errors import NotFound
from crm_kit.migrations import migrate
from crm_kit.settings import load_settings

CLI_SUBJECT = "cli"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crm_ingest",
        description="The ingest service; without a command it serves.",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the HTTP API (the default)")
    create = sub.add_parser("create-key", help="create an API key for a channel; print it once")
    create.add_argument("--source", required=True, help="e.g. urn:channel:webshop")
    create.add_argument("--description", default="", help="who or what uses the key")
    listing = sub.add_parser("list-keys", help="list API keys (never their secrets)")
    listing.add_argument("--source", help="only this source's keys")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    revoke = sub.add_parser("revoke-key", help="revoke an API key at once")
    revoke.add_argument("key_id", type=UUID, help="the key's id (see list-keys)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; exit status 0 on success."""
    args = build_parser().parse_args(argv)
    if args.command in (None, "serve"):
        app.main()
        return 0
    settings = load_settings(IngestSettings)
    try:
        if args.command == "create-key":
            domain.check_source(args.source)
            if len(args.description) > domain.MAX_DESCRIPTION_LENGTH:
                raise ValueError(
                    f"a description has at most {domain.MAX_DESCRIPTION_LENGTH} characters"
                )
            return asyncio.run(_create_key(settings, args.source, args.description))
        if args.command == "list-keys":
            return asyncio.run(_list_keys(settings, args.source, args.all))
        return asyncio.run(_revoke_key(settings, args.key_id))
    except ValueError as exc:
        print(f"crm_ingest: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"crm_ingest: cannot reach the database ({exc})", file=sys.stderr)
        return 1


@contextlib.asynccontextmanager
async def _database(settings: IngestSettings) -> AsyncIterator[asyncpg.Pool]:
    await migrate(settings.database_url, "ingest", MIGRATIONS)
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        yield pool
    finally:
        await pool.close()


async def _create_key(settings: IngestSettings, source: str, description: str) -> int:
    async with _database(settings) as pool:
        api_key, key = await handlers.create_api_key(
            pool=pool, source=source, description=description, created_by=CLI_SUBJECT
        )
    print(
        f"created API key {api_key.prefix} (id {api_key.id}) for source {api_key.source}; "
        "it is shown once, store it now:",
        file=sys.stderr,
    )
    print(key)
    return 0


async def _list_keys(settings: IngestSettings, source: str | None, include_revoked: bool) -> int:
    async with _database(settings) as pool:
        keys = await handlers.list_api_keys(
            pool=pool, source=source, include_revoked=include_revoked, limit=10_000, offset=0
        )
    for api_key in keys:
        print(_describe(api_key))
    return 0


async def _revoke_key(settings: IngestSettings, key_id: UUID) -> int:
    try:
        async with _database(settings) as pool:
            api_key = await handlers.revoke_api_key(pool=pool, key_id=key_id)
    except NotFound:
        print(f"crm_ingest: there is no API key {key_id}", file=sys.stderr)
        return 1
    print(_describe(api_key))
    return 0


def _describe(api_key: ApiKey) -> str:
    state = "active" if api_key.active else f"revoked {api_key.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
    used = f"{api_key.last_used_at:%Y-%m-%dT%H:%M:%SZ}" if api_key.last_used_at else "never"
    fields = [api_key.prefix, api_key.source, state, f"used {used}", api_key.description]
    return "\t".join([str(api_key.id), *fields])
