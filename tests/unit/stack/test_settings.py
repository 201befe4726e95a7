"""How many partitions crmctl gives the topics it creates."""

from __future__ import annotations

import pytest

from crm_contracts.topics import DEFAULT_PARTITIONS
from crm_stack.settings import EMBEDDED_PARTITIONS, StackSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CRM_STACK_TOPIC_PARTITIONS",
        "KAFKA_BOOTSTRAP_SERVERS",
        "CRM_STACK_KAFKA_BOOTSTRAP_SERVERS",
    ):
        monkeypatch.delenv(name, raising=False)


def test_the_embedded_broker_gets_few_partitions_and_a_cluster_the_registrys() -> None:
    assert StackSettings().partitions == EMBEDDED_PARTITIONS < DEFAULT_PARTITIONS
    cluster = StackSettings(kafka_bootstrap_servers="kafka-1:9092")
    assert cluster.partitions == DEFAULT_PARTITIONS


def test_a_partition_count_given_wins_on_either(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_STACK_TOPIC_PARTITIONS", "6")
    assert StackSettings().partitions == 6
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092")
    assert StackSettings().partitions == 6
