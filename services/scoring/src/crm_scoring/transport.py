"""faust's aiokafka transport, with the consumer fetch wait taken from our settings.

faust-streaming 0.15 builds its worker consumer in
`AIOKafkaConsumerThread._create_worker_consumer` with `fetch_max_wait_ms=1500` written
into the call. On the embedded broker a fetch answers only when that timer fires, so
every hop into this service would cost about 750 ms on average. Instead of editing
site-packages, three small subclasses (transport -> consumer -> consumer thread) let the
consumer be built as faust builds it and then set its fetch wait to
`fetch_max_wait_ms`, before it starts (aiokafka hands the value to its fetcher in
`start()`). `install_transport(app, fetch_max_wait_ms=...)` puts them on an app.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

# The attribute AIOKafkaConsumer.start() passes to its Fetcher (aiokafka 0.14).
_FETCH_WAIT_ATTRIBUTE = "_fetch_max_wait_ms"


class FetchWaitConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The consumer thread whose worker consumer waits `fetch_max_wait_ms` per fetch."""

    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(transport, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            set_fetch_max_wait(consumer, int(wait_ms))
        return consumer


class FetchWaitConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, running `FetchWaitConsumerThread`."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchWaitTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with our consumer and a `fetch_max_wait_ms` attribute."""

    Consumer = FetchWaitConsumer

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms


def set_fetch_max_wait(consumer: aiokafka.AIOKafkaConsumer, wait_ms: int) -> None:
    """Set a not yet started aiokafka consumer's fetch wait; fail loudly if aiokafka changed."""
    if not hasattr(consumer, _FETCH_WAIT_ATTRIBUTE):
        raise RuntimeError(
            "aiokafka.AIOKafkaConsumer has no _fetch_max_wait_ms any more: "
            "update crm_scoring.transport for this aiokafka version"
        )
    if wait_ms < 1:
        raise ValueError("fetch_max_wait_ms must be at least 1")
    setattr(consumer, _FETCH_WAIT_ATTRIBUTE, wait_ms)


def install_transport(app: faust.App, *, fetch_max_wait_ms: int) -> None:
    """Make `app` consume through `FetchWaitTransport`; call before the app starts."""
    app.transport = FetchWaitTransport(
        app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms
    )
