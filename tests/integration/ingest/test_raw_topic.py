"""Channels that speak Kafka and channels that speak HTTP are equal citizens of the raw topic."""

from __future__ import annotations

from crm_contracts import decode_json, decode_record, encode_binary, encode_structured
from tests.integration.ingest.conftest import Ingest, published
from tests.support.events import RAW_INTERACTION
from tests.support.kafka import produce
from tests.support.servers import Servers


async def test_an_event_over_http_and_the_same_straight_to_kafka_look_the_same_to_a_consumer(
    ingest: Ingest, api_key: str, servers: Servers
) -> None:
    response = await ingest.post_events(RAW_INTERACTION, api_key)
    assert response.status_code == 202, response.text
    event = decode_json(RAW_INTERACTION)
    await produce(
        servers.bootstrap,
        ingest.topic,
        [encode_binary(event, key="c-42"), encode_structured(event, key="c-42")],
    )
    over_http, binary, structured = await published(servers.bootstrap, ingest.topic)
    decoded = [decode_record(r.value, list(r.headers)) for r in (over_http, binary, structured)]
    assert decoded[0] == decoded[1] == decoded[2] == event
    assert decoded[0].data == decoded[1].data == decoded[2].data
    assert dict(over_http.headers) == dict(binary.headers)  # ingest publishes binary mode
