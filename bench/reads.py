"""Contact-360 reads, idle and under load, with 10k and with 1M contacts / 10M timeline rows.

The contacts are loaded straight into the contacts service's database (its tables
`contacts`, `identifiers`, `timeline`), bypassing Kafka, in two ways whose speed is reported:

- **client COPY** (`asyncpg.copy_records_to_table`): rows built in Python and streamed with
  `COPY ... FROM STDIN (FORMAT binary)`; used for the small set;
- **server-side generation**: `INSERT ... SELECT ... FROM generate_series(...)`, the rows made
  by Postgres itself (no client round trip, no Python per row), the timeline split over two
  connections; used for the large set. The timeline's non-unique indexes are dropped for
  the load and rebuilt after (their definitions are read from `pg_indexes`, so a later
  migration's indexes are rebuilt as they are); foreign-key triggers are skipped for the
  load's session (`session_replication_role = replica`; the rows are consistent by
  construction). The unique constraint stays: the running service relies on it.

Reads go to `GET /v1/contacts/{id}/360` of the running service, open loop (each request
starts at its scheduled time, whatever the previous ones are doing; at most 64 at once),
for contacts chosen at random among those loaded.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bench.tracker import percentiles

KINDS = ("page_view", "email_opened", "email_clicked", "purchase", "support_request")


def contact_id(prefix: str, index: int) -> str:
    """The id of loaded contact `index` of a set."""
    return f"{prefix}-{index}"


async def load_with_copy(dsn: str, *, prefix: str, contacts: int, rows_per: int) -> dict[str, Any]:
    """Load contacts, one email each, and `rows_per` timeline rows each, with client COPY."""
    conn = await asyncpg.connect(dsn)
    started = time.perf_counter()
    now = datetime.now(UTC)
    try:
        await conn.execute("SET session_replication_role = replica")
        ids = [contact_id(prefix, i) for i in range(contacts)]
        await conn.copy_records_to_table(
            "contacts",
            columns=["id", "stage", "first_name", "last_name", "country"],
            records=((i, "prospect", "Ada", "Lovelace", "GB") for i in ids),
        )
        await conn.copy_records_to_table(
            "identifiers",
            columns=["kind", "value", "contact_id", "origin_contact_id"],
            records=(("email", f"{i}@bench.example", i, i) for i in ids),
        )
        rows = (
            (
                i,
                i,
                "urn:channel:webshop",
                f"{prefix}-ev-{n}-{k}",
                "crm.interaction.recorded",
                KINDS[k % len(KINDS)],
                "web",
                now - timedelta(hours=k * 37 + n % 24),
                f'{{"kind": "{KINDS[k % len(KINDS)]}", "channel": "web"}}',
            )
            for n, i in enumerate(ids)
            for k in range(rows_per)
        )
        await conn.copy_records_to_table(
            "timeline",
            columns=[
                "contact_id",
                "origin_contact_id",
                "source",
                "event_id",
                "type",
                "kind",
                "channel",
                "time",
                "data",
            ],
            records=rows,
        )
        await conn.execute("ANALYZE contacts; ANALYZE identifiers; ANALYZE timeline")
    finally:
        await conn.close()
    seconds = time.perf_counter() - started
    total = contacts * (2 + rows_per)
    return {
        "method": "client COPY (asyncpg copy_records_to_table)",
        "contacts": contacts,
        "timeline_rows": contacts * rows_per,
        "seconds": round(seconds, 2),
        "rows_per_s": round(total / seconds),
    }


async def load_generated(
    dsn: str, *, prefix: str, contacts: int, rows_per: int, workers: int = 2
) -> dict[str, Any]:
    """Load the same shape of data generated server-side with generate_series."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            """
            INSERT INTO contacts (id, stage, first_name, last_name, country)
            SELECT $1::text || '-' || i, 'prospect', 'Ada', 'Lovelace', 'GB'
            FROM generate_series(0, $2::bigint - 1) AS i
            """,
            prefix,
            contacts,
        )
        await conn.execute(
            """
            INSERT INTO identifiers (kind, value, contact_id, origin_contact_id)
            SELECT 'email', $1::text || '-' || i || '@bench.example', $1::text || '-' || i,
                   $1::text || '-' || i
            FROM generate_series(0, $2::bigint - 1) AS i
            """,
            prefix,
            contacts,
        )
        indexes = await conn.fetch(
            """
            SELECT i.indexname, i.indexdef FROM pg_indexes i
            JOIN pg_class c ON c.relname = i.indexname
            JOIN pg_index x ON x.indexrelid = c.oid
            WHERE i.tablename = 'timeline' AND NOT x.indisunique AND NOT x.indisprimary
            """
        )
        for row in indexes:
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
        chunk = -(-contacts // workers)
        await asyncio.gather(
            *(
                _generate_timeline(dsn, prefix, lo, min(contacts, lo + chunk), rows_per)
                for lo in range(0, contacts, chunk)
            )
        )
        rebuilt = time.perf_counter()
        await asyncio.gather(*(_run(dsn, row["indexdef"]) for row in indexes))
        await conn.execute("ANALYZE contacts; ANALYZE identifiers; ANALYZE timeline")
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    seconds = time.perf_counter() - started
    total = contacts * (2 + rows_per)
    return {
        "method": "server-side INSERT ... SELECT generate_series, timeline on "
        f"{workers} connections, non-unique timeline indexes rebuilt after",
        "contacts": contacts,
        "timeline_rows": contacts * rows_per,
        "seconds": round(seconds, 2),
        "index_rebuild_seconds": round(time.perf_counter() - rebuilt, 2),
        "rows_per_s": round(total / seconds),
        "database_mb": round(size / 2**20),
    }


async def _generate_timeline(dsn: str, prefix: str, lo: int, hi: int, rows_per: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica; SET synchronous_commit = off")
        await conn.execute(
            """
            INSERT INTO timeline (contact_id, origin_contact_id, source, event_id, type, kind,
                                  channel, time, data)
            SELECT $1::text || '-' || (g / $4::bigint), $1::text || '-' || (g / $4::bigint),
                   'urn:channel:webshop', $1::text || '-ev-' || g, 'crm.interaction.recorded',
                   (ARRAY['page_view', 'email_opened', 'email_clicked', 'purchase',
                          'support_request'])[1 + g % 5],
                   'web', now() - (g % 8760) * interval '1 hour',
                   jsonb_build_object('kind', 'page_view', 'channel', 'web')
            FROM generate_series($2::bigint * $4::bigint, $3::bigint * $4::bigint - 1) AS g
            """,
            prefix,
            lo,
            hi,
            rows_per,
        )
    finally:
        await conn.close()


async def _run(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET maintenance_work_mem = '256MB'")
        await conn.execute(sql)
    finally:
        await conn.close()


async def read_load(
    base_url: str, token: str, *, prefix: str, contacts: int, rate: float, seconds: float
) -> dict[str, Any]:
    """360 reads at `rate`/s for `seconds`, open loop; percentiles of the answered ones."""
    rng = random.Random(7)
    latencies: list[float] = []
    errors = 0
    slots = asyncio.Semaphore(64)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        limits=limits,
    ) as http:

        async def one(contact: str) -> None:
            nonlocal errors
            async with slots:
                started = time.perf_counter()
                try:
                    response = await http.get(f"/v1/contacts/{contact}/360")
                except httpx.HTTPError:
                    errors += 1
                    return
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        tasks: list[asyncio.Task[None]] = []
        started = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            contact = contact_id(prefix, rng.randrange(contacts))
            tasks.append(asyncio.create_task(one(contact)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return {
        "offered_rate_per_s": rate,
        "achieved_rate_per_s": round(len(latencies) / elapsed, 1),
        "errors": errors,
        "latency_ms": percentiles(latencies),
    }
