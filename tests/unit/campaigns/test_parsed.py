"""Definitions parsed once per version: what a batch reads is parsed again only when new."""

from __future__ import annotations

import pytest

from crm_campaigns.parsed import Parsed


class Counting:
    def __init__(self) -> None:
        self.parsed: list[tuple[str, str]] = []

    def __call__(self, id: str, raw: str) -> str:
        self.parsed.append((id, raw))
        return raw.upper()


def test_a_definition_is_parsed_once_while_its_version_holds() -> None:
    cache: Parsed[int, str, str] = Parsed()
    parse = Counting()
    assert cache.refresh(cache.known(), [("s1", 1, "rule one")], parse) == {"s1": "RULE ONE"}
    # The next read knows version 1, so the row comes without its definition.
    assert cache.refresh(cache.known(), [("s1", 1, None)], parse) == {"s1": "RULE ONE"}
    assert parse.parsed == [("s1", "rule one")]


def test_a_changed_version_is_parsed_again() -> None:
    cache: Parsed[int, str, str] = Parsed()
    parse = Counting()
    cache.refresh(cache.known(), [("s1", 1, "rule one"), ("s2", 1, "other")], parse)
    again = cache.refresh(cache.known(), [("s1", 2, "rule two"), ("s2", 1, None)], parse)
    assert again == {"s1": "RULE TWO", "s2": "OTHER"}
    assert cache.known()["s1"] == (2, "RULE TWO")
    assert parse.parsed[-1] == ("s1", "rule two")


def test_a_deleted_definition_is_forgotten() -> None:
    cache: Parsed[int, str, str] = Parsed()
    parse = Counting()
    cache.refresh(cache.known(), [("s1", 1, "a"), ("s2", 1, "b")], parse)
    assert cache.refresh(cache.known(), [("s2", 1, None)], parse) == {"s2": "B"}
    assert set(cache.known()) == {"s2"}


def test_what_was_known_before_the_read_counts_though_another_reader_refreshed_meanwhile() -> None:
    cache: Parsed[int, str, str] = Parsed()
    parse = Counting()
    cache.refresh(cache.known(), [("s1", 1, "old")], parse)
    known = cache.known()
    # Another use case's transaction reads version 2 while this one waits for its rows.
    cache.refresh(cache.known(), [("s1", 2, "new")], parse)
    assert cache.refresh(known, [("s1", 1, None)], parse) == {"s1": "OLD"}


def test_a_row_without_its_definition_for_a_version_not_known_is_an_error() -> None:
    cache: Parsed[int, str, str] = Parsed()
    cache.refresh(cache.known(), [("s1", 1, "a")], Counting())
    with pytest.raises(ValueError, match="unknown stamp"):
        cache.refresh(cache.known(), [("s1", 2, None)], Counting())
