"""Both CloudEvents modes survive a trip through the real broker."""

from __future__ import annotations

from crm_contracts import decode_record, encode_binary, encode_structured
from tests.support.events import interaction
from tests.support.kafka import produce, read_until
from tests.support.servers import Servers


async def test_binary_and_structured_events_round_trip_through_the_broker(
    servers: Servers, new_topic
) -> None:
    topic = await new_topic("modes")
    binary = interaction()
    structured = interaction()
    await produce(
        servers.bootstrap,
        topic,
        [encode_binary(binary, key="k1"), encode_structured(structured, key="k2")],
    )
    records = await read_until(servers.bootstrap, topic, lambda rs: len(rs) >= 2)
    decoded = {e.id: e for e in (decode_record(r.value, list(r.headers)) for r in records)}
    assert decoded[binary.id] == binary
    assert decoded[structured.id] == structured
    modes = {dict(r.headers).get("content-type") for r in records}
    assert modes == {b"application/json", b"application/cloudevents+json"}
