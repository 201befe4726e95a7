"""The topic registry: names, keys, partitions, dead-letter topics, which events go where."""

import pytest

from crm_contracts import (
    EVENT_TYPES,
    dead_letter_topic,
    get_topic,
    topic_for_event_type,
    topic_specs,
)
from crm_contracts import topics as t

DESIGN_TOPICS = [
    "crm.interactions.raw.v1",
    "crm.interactions.v1",
    "crm.contacts.v1",
    "crm.cases.v1",
    "crm.campaigns.v1",
    "crm.scores.v1",
    "crm.scores.current.v1",
    "crm.privacy.v1",
]


def test_the_registry_holds_the_topics_of_the_design_in_order() -> None:
    names = [spec.name for spec in topic_specs(dead_letters=False)]

    assert names == DESIGN_TOPICS
    assert DESIGN_TOPICS[:4] == [t.INTERACTIONS_RAW, t.INTERACTIONS, t.CONTACTS, t.CASES]
    assert DESIGN_TOPICS[4:] == [t.CAMPAIGNS, t.SCORES, t.SCORES_CURRENT, t.PRIVACY]


def test_every_event_type_is_on_exactly_one_topic() -> None:
    carried = [name for spec in topic_specs() for name in spec.event_types]

    assert sorted(carried) == sorted(EVENT_TYPES)
    for event_type in EVENT_TYPES:
        assert event_type in get_topic(topic_for_event_type(event_type)).event_types


def test_every_topic_carries_events_of_its_own_service() -> None:
    nouns = {
        t.INTERACTIONS_RAW: "interaction",
        t.INTERACTIONS: "interaction",
        t.CONTACTS: "contact",
        t.CASES: "case",
        t.CAMPAIGNS: "campaign",
        t.SCORES: "score",
        t.SCORES_CURRENT: "score",
        t.PRIVACY: "privacy",
    }
    for spec in topic_specs(dead_letters=False):
        assert spec.event_types
        assert {name.split(".")[1] for name in spec.event_types} == {nouns[spec.name]}


def test_topics_have_twelve_partitions_unless_told_otherwise() -> None:
    assert {spec.partitions for spec in topic_specs()} == {12}
    assert {spec.partitions for spec in topic_specs(partitions=4)} == {4}
    with pytest.raises(ValueError):
        topic_specs(partitions=0)


def test_every_topic_has_a_dead_letter_topic_unless_left_out() -> None:
    specs = topic_specs()
    names = [spec.name for spec in specs]

    assert len(specs) == 2 * len(DESIGN_TOPICS)
    for name in DESIGN_TOPICS:
        assert f"{name}.dlt" in names
        assert names.index(f"{name}.dlt") == names.index(name) + 1
    assert not any(spec.is_dead_letter for spec in topic_specs(dead_letters=False))


def test_a_dead_letter_topic_is_named_after_its_topic_and_carries_no_event_type() -> None:
    spec = get_topic("crm.cases.v1.dlt")

    assert dead_letter_topic("crm.cases.v1") == "crm.cases.v1.dlt"
    assert spec.is_dead_letter and spec.event_types == () and spec.cleanup_policy == "delete"
    with pytest.raises(ValueError):
        dead_letter_topic("crm.cases.v1.dlt")


def test_only_the_current_scores_are_compacted() -> None:
    compacted = [spec.name for spec in topic_specs() if spec.cleanup_policy == "compact"]

    assert compacted == [t.SCORES_CURRENT]


def test_topics_are_keyed_by_contact_except_the_raw_one() -> None:
    for spec in topic_specs(dead_letters=False):
        if spec.name == t.INTERACTIONS_RAW:
            assert "identity" in spec.key
        else:
            assert spec.key.startswith("contact_id")


def test_an_unknown_topic_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        get_topic("crm.orders.v1")
    with pytest.raises(KeyError):
        topic_for_event_type("crm.order.placed")


def test_topic_names_end_in_a_major_version() -> None:
    for spec in topic_specs(dead_letters=False):
        assert spec.name.rsplit(".", 1)[-1] == "v1"
