"""A consumer in a process of its own, for crash and shutdown tests.

    python -m tests.integration.kit.consumer_process DSN BOOTSTRAP TOPIC GROUP MODE

MODE `crash-after-db-commit`: dies (exit 137, no cleanup) right after the first
database commit, before committing offsets. MODE `run`: runs until SIGTERM, then
stops cleanly and exits 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from crm_kit.consumer import ConsumerRunner
from crm_kit.db import create_pool
from crm_kit.kafka import start_producer
from crm_kit.settings import ServiceSettings
from tests.integration.conftest import record_effects
from tests.support.harness import QUICK_GROUPS


async def main(dsn: str, bootstrap: str, topic: str, group: str, mode: str) -> int:
    settings = ServiceSettings(
        environment="test", database_url=dsn, kafka_bootstrap_servers=bootstrap, **QUICK_GROUPS
    )
    pool = await create_pool(dsn)
    producer = await start_producer(settings, client_id="crash-test")
    runner = ConsumerRunner(
        name=group,
        topics=[topic],
        settings=settings,
        pool=pool,
        producer=producer,
        handler=record_effects,
        service="test",
    )
    if mode == "crash-after-db-commit":

        async def die(*_: object) -> None:
            os._exit(137)

        runner._commit = die  # type: ignore[method-assign]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await runner.start()
    print("started", flush=True)
    await stop.wait()
    await runner.stop()
    await producer.stop()
    await pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:6])))
