"""Forward-only SQL migrations, applied at start.

A small runner rather than a library: migrations are plain `.sql` files with a
date prefix, applied in name order, each in its own transaction, under an
advisory lock so that several replicas starting together apply each file once.
A checksum per applied file makes an edited (instead of added) migration fail
loudly at start.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

KIT_MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_KEY = 7_404_471_031  # arbitrary, constant: "migrations running" advisory lock


class MigrationError(RuntimeError):
    """A committed migration was edited, or a migration failed."""


@dataclass(frozen=True)
class Migration:
    """One forward-only SQL file."""

    namespace: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(namespace: str, directory: Path) -> list[Migration]:
    """The `.sql` files of a directory, in name order."""
    return [
        Migration(namespace, path.name, path.read_text())
        for path in sorted(directory.glob("*.sql"))
    ]


async def apply_migrations(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    """Apply what is not applied yet; return the names applied now."""
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS kit_schema_migrations (
            namespace  text        NOT NULL,
            name       text        NOT NULL,
            checksum   text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (namespace, name)
        )
        """
    )
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        rows = await conn.fetch("SELECT namespace, name, checksum FROM kit_schema_migrations")
        done = {(r["namespace"], r["name"]): r["checksum"] for r in rows}
        for migration in migrations:
            key = (migration.namespace, migration.name)
            if key in done:
                if done[key] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.namespace}/{migration.name} was changed after it "
                        "was applied; add a new migration instead"
                    )
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO kit_schema_migrations (namespace, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        migration.namespace,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.namespace}/{migration.name} failed: {exc}"
                ) from exc
            log.info("migration applied", extra={"migration": f"{key[0]}/{key[1]}"})
            applied_now.append(f"{migration.namespace}/{migration.name}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def migrate(dsn: str, namespace: str, directory: Path | None) -> list[str]:
    """Apply the kit's tables (outbox, inbox) and then a service's own migrations."""
    migrations = load_migrations("kit", KIT_MIGRATIONS)
    if directory is not None:
        migrations += load_migrations(namespace, directory)
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn, migrations)
    finally:
        await conn.close()
