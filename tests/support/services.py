"""Run a service's real app (HTTP, consumers, relay) inside the test process.

    async with running_app(create_app(settings), settings) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http: ...

uvicorn serves on a free port; the app's lifespan starts and stops its runtime, so
the service talks to the session's broker and Postgres exactly as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from crm_stack.ports import free_port
from tests.support.kafka import eventually


@contextlib.asynccontextmanager
async def running_app(app: Any, *, ready_timeout: float = 30.0) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1:<free port> until the block ends; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ready_timeout
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("the app stopped during start-up")
        if loop.time() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the app did not start within {ready_timeout}s")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


@contextlib.asynccontextmanager
async def running_apps(*apps: Any) -> AsyncIterator[list[str]]:
    """Serve several apps at once, their start-ups (consumer group joins) overlapping; yield
    their base URLs, in the order given. A failed start stops the others."""
    async with contextlib.AsyncExitStack() as stack:
        started = await asyncio.gather(
            *(stack.enter_async_context(running_app(app)) for app in apps),
            return_exceptions=True,  # every start ends, so the stack holds each started app
        )
        for result in started:
            if isinstance(result, BaseException):
                raise result
        yield [str(url) for url in started]


async def wait_ready(http: Any, *, timeout: float = 60.0) -> None:
    """Poll a service's /readyz (an httpx.AsyncClient on its base URL) until it answers 200."""

    async def ready() -> bool:
        return bool((await http.get("/readyz")).status_code == 200)

    await eventually(ready, timeout=timeout, interval=0.05)
