"""Merges and erasures scoring remembered before they moved to the kit's tables still hold after
the upgrade: a late event for a merged id counts for its survivor, one for an erased id is
dropped."""

from __future__ import annotations

from crm_kit import subjects
from crm_kit.db import connect
from crm_kit.migrations import apply_migrations, load_migrations, migrate
from crm_scoring import repository as repo
from crm_scoring.app import MIGRATIONS
from crm_scoring.handlers import Context, apply_events
from crm_scoring.model import load_model
from crm_scoring.settings import ScoringSettings
from tests.integration.scoring.conftest import interaction

LEGACY = ("20261123_01_scoring.sql", "20261202_01_scoring_aggregates.sql")


async def test_merges_and_erasures_kept_before_the_upgrade_hold_after_it(
    scoring_settings: ScoringSettings,
) -> None:
    dsn = scoring_settings.database_url
    conn = await connect(dsn)
    try:
        legacy = [m for m in load_migrations("scoring", MIGRATIONS) if m.name in LEGACY]
        await apply_migrations(conn, legacy)
        await conn.execute(
            "INSERT INTO scoring_aliases (merged_id, survivor_id) VALUES ('c-old', 'c-new')"
        )
        await conn.execute("INSERT INTO scoring_erased (contact_id) VALUES ('c-gone')")

        assert await migrate(dsn, "scoring", MIGRATIONS) == [
            "scoring/20261202_02_subjects_in_kit.sql"
        ]

        now = await subjects.current(conn, ["c-old", "c-gone"])
        assert dict(now.survivors) == {"c-old": "c-new"}
        assert now.erased == {"c-gone"}
        assert await conn.fetchval("SELECT to_regclass('scoring_aliases')") is None
        assert await conn.fetchval("SELECT to_regclass('scoring_erased')") is None

        ctx = Context(load_model(), scoring_settings)
        late = [interaction("c-old", "purchase", amount="50"), interaction("c-gone", "chat")]
        async with conn.transaction():
            await apply_events(conn, late, ctx)
        facts = await repo.facts_of(conn, ["c-new", "c-old", "c-gone"])
        assert [len(facts[c]) for c in ("c-new", "c-old", "c-gone")] == [1, 0, 0]
    finally:
        await conn.close()
