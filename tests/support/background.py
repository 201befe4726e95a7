"""An asyncio event loop in a thread of its own, for synchronous tests of running services.

Hypothesis (and schemathesis on top of it) drives synchronous test functions, which block
the thread they run in; a service served on pytest's event loop would never answer them.
Services started here keep serving while the test thread waits on its HTTP calls.

    with BackgroundLoop() as loop:
        base_url = loop.run(start_something())
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """A running event loop in a daemon thread; `run` waits for a coroutine run on it."""

    def __init__(self, *, name: str = "background-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def __enter__(self) -> BackgroundLoop:
        self._thread.start()
        return self

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float = 120.0) -> T:
        """Run `coro` on the loop and return its result (or raise what it raised)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self.loop.close()
