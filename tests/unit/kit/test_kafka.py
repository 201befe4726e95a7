"""The producer's partitioner: the default one's partitions, the key hashes remembered."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from crm_kit.kafka import KeyHashPartitioner


def test_a_key_goes_where_the_default_partitioner_sends_it() -> None:
    default = DefaultPartitioner()
    ours = KeyHashPartitioner(remembered=50)  # small: the forgetting is exercised too
    keys = [f"c-{n}".encode() for n in range(200)] + [b"", b"ada@example.com", "é".encode()]

    for partitions in (list(range(1)), list(range(12)), list(range(7))):
        for _round in range(2):  # hashed, then remembered
            for key in keys:
                assert ours(key, partitions, partitions) == default(key, partitions, partitions)


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    ours = KeyHashPartitioner()

    assert {ours(None, list(range(12)), [3, 5]) for _ in range(50)} <= {3, 5}
