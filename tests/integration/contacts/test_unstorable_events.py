"""Raw interactions straight from Kafka with text Postgres cannot store are dead-lettered at
once as invalid, with the place named, and the events behind them are applied."""

from __future__ import annotations

from crm_contracts import KafkaRecord, encode_binary, encode_structured
from tests.integration.contacts.conftest import Service, raw_event
from tests.support.kafka import header


def _with_value(record: KafkaRecord, old: bytes, new: bytes) -> KafkaRecord:
    assert old in (record.value or b"")
    return KafkaRecord(record.key, (record.value or b"").replace(old, new), record.headers)


async def test_unstorable_text_from_any_producer_is_dead_lettered_as_invalid_data(
    service: Service,
) -> None:
    template = raw_event(identity={"anonymous_id": "ck-1"}, properties={"note": "gift"})
    records = [
        # Binary mode, a NUL in free-form properties (JSON escape).
        _with_value(encode_binary(template, key="k"), b'"gift"', b'"gift\\u0000"'),
        # Structured mode, a NUL in an identifier.
        _with_value(encode_structured(template, key="k"), b'"ck-1"', b'"ck-\\u0000"'),
        # Binary mode, a lone surrogate written as raw UTF-8 bytes.
        _with_value(encode_binary(template, key="k"), b'"gift"', b'"gift\xed\xa0\x80"'),
    ]
    good = raw_event(identity={"anonymous_id": "ck-2"})
    await service.publish_records(service.settings.interactions_raw_topic, records)
    await service.publish(good, key="k")

    letters = await service.dead_letters(3)
    await service.wait_applied(good.id)

    assert [reason for reason, _ in letters] == ["invalid_data"] * 3
    messages = [header(record, "x-error-message") or "" for _, record in letters]
    assert "data.properties.note" in messages[0] and "U+0000" in messages[0]
    assert "data.identity.anonymous_id" in messages[1]
    assert "data.properties.note" in messages[2] and "surrogate" in messages[2]
    assert await service.contact_by(anonymous_id="ck-1") is None
    assert await service.contact_by(anonymous_id="ck-2") is not None


async def test_a_raw_interaction_timed_in_year_one_is_dead_lettered_as_invalid_attribute(
    service: Service,
) -> None:
    record = encode_binary(raw_event(identity={"anonymous_id": "ck-3"}), key="k")
    headers = [
        (name, b"0001-01-01T00:00:00+01:00" if name == "ce_time" else value)
        for name, value in record.headers
    ]
    await service.publish_records(
        service.settings.interactions_raw_topic, [KafkaRecord(record.key, record.value, headers)]
    )

    [(reason, letter)] = await service.dead_letters(1)

    assert reason == "invalid_attribute"
    assert "time" in (header(letter, "x-error-message") or "")
