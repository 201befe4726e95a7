"""Forward-only migrations: applied once, in order, and an edited one is refused."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from crm_kit.migrations import MigrationError, migrate


async def test_migrations_apply_once_in_order_and_refuse_an_edited_file(
    database: str, tmp_path: Path
) -> None:
    (tmp_path / "20261123_01_a.sql").write_text("CREATE TABLE a (id int);")
    (tmp_path / "20261123_02_b.sql").write_text("ALTER TABLE a ADD COLUMN b text;")
    assert await migrate(database, "svc", tmp_path) == [
        "svc/20261123_01_a.sql",
        "svc/20261123_02_b.sql",
    ]
    assert await migrate(database, "svc", tmp_path) == []
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("INSERT INTO a (id, b) VALUES (1, 'x')")
    finally:
        await conn.close()
    (tmp_path / "20261123_01_a.sql").write_text("CREATE TABLE a (id bigint);")
    with pytest.raises(MigrationError, match="was changed after it was applied"):
        await migrate(database, "svc", tmp_path)


async def test_a_failing_migration_leaves_nothing_half_applied(
    database: str, tmp_path: Path
) -> None:
    (tmp_path / "20261123_01_bad.sql").write_text("CREATE TABLE c (id int); SELECT nope;")
    with pytest.raises(MigrationError, match=r"20261123_01_bad\.sql failed"):
        await migrate(database, "svc", tmp_path)
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval("SELECT to_regclass('c')") is None
    finally:
        await conn.close()
