"""Throwaway servers for tests and benchmarks: embedded ones on free ports, or given ones."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

from crm_kit.kafka import wait_for_broker
from crm_stack.broker import EmbeddedBroker
from crm_stack.ports import free_port
from crm_stack.postgres import EmbeddedPostgres
from crm_stack.processes import ProcessRef, terminate


@contextlib.contextmanager
def ephemeral_servers(
    workdir: Path, *, bootstrap: str | None = None, admin_dsn: str | None = None
) -> Iterator[tuple[str, str]]:
    """Yield (bootstrap servers, Postgres admin URL), starting what was not given.

    Embedded servers listen on free ports, keep their data under `workdir` without
    fsync, and are stopped when the block ends.
    """
    postgres: EmbeddedPostgres | None = None
    broker_ref: ProcessRef | None = None
    try:
        if admin_dsn is None:
            postgres = EmbeddedPostgres(workdir / "pg" / "data", port=free_port(), durable=False)
            postgres.start()
            admin_dsn = postgres.admin_dsn
        if bootstrap is None:
            broker = EmbeddedBroker(port=free_port(), log_path=workdir / "broker.log")
            _, broker_ref = broker.start()
            bootstrap = broker.bootstrap_servers
            asyncio.run(wait_for_broker(bootstrap))
        yield bootstrap, admin_dsn
    finally:
        if broker_ref is not None:
            terminate(broker_ref)
        if postgres is not None:
            postgres.stop()
