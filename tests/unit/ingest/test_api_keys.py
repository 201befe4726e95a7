"""API keys: random, recognisable by a public prefix, stored as a hash."""

from __future__ import annotations

import pytest

from crm_ingest.domain import (
    api_key_matches,
    api_key_prefix,
    check_source,
    generate_api_key,
    hash_api_key,
)


def test_a_new_key_starts_with_its_public_prefix() -> None:
    new = generate_api_key()
    assert new.key.startswith(new.prefix + "_")
    assert api_key_prefix(new.key) == new.prefix


def test_two_new_keys_differ() -> None:
    assert generate_api_key().key != generate_api_key().key


def test_only_the_hash_of_a_key_is_kept_and_it_matches_the_key_alone() -> None:
    new = generate_api_key()
    assert new.key_hash == hash_api_key(new.key) and new.key.encode() not in new.key_hash
    assert api_key_matches(new.key, new.key_hash)
    assert not api_key_matches(generate_api_key().key, new.key_hash)


def test_the_key_is_not_shown_in_the_repr() -> None:
    new = generate_api_key()
    assert new.key not in repr(new)


@pytest.mark.parametrize(
    "text", ["", "crmik_", "Bearer abc", "crmik_0123456789ab_short", "crmik_xyz_" + "a" * 43]
)
def test_text_that_is_not_a_key_has_no_prefix(text: str) -> None:
    assert api_key_prefix(text) is None


@pytest.mark.parametrize("source", ["", "urn:channel:web shop", "x" * 1025])
def test_a_source_with_blanks_or_out_of_bounds_is_refused(source: str) -> None:
    with pytest.raises(ValueError):
        check_source(source)


def test_a_urn_is_a_good_source() -> None:
    assert check_source("urn:channel:webshop") == "urn:channel:webshop"
