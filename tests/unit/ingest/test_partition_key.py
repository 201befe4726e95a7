"""The partition key keeps one customer on one partition without carrying PII."""

from __future__ import annotations

import copy
import re

import pytest

from crm_contracts.interactions import Identity
from crm_ingest.domain import partition_key
from tests.support.events import RAW_INTERACTION

HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def _identity(**fields: object) -> Identity:
    return Identity.model_validate(fields)


def test_the_key_of_the_sample_interaction_contains_no_identifier_in_clear() -> None:
    identity = Identity.model_validate(copy.deepcopy(RAW_INTERACTION["data"]["identity"]))
    key = partition_key(identity)
    assert HEX_DIGEST.fullmatch(key)
    for clear in ("ada", "example", "@", "7946", "c-42", "webshop", "ck-1"):
        assert clear not in key


def test_an_email_alone_is_hashed_never_sent_in_clear() -> None:
    key = partition_key(_identity(email="ada@example.com"))
    assert HEX_DIGEST.fullmatch(key)
    assert "ada" not in key and "example" not in key


def test_a_contact_id_is_opaque_and_used_as_is() -> None:
    identity = _identity(contact_id="ct-123", email="ada@example.com")
    assert partition_key(identity) == "ct-123"


def test_an_external_id_beats_the_email_and_the_phone() -> None:
    with_email = _identity(external_ids={"webshop": "c-42"}, email="ada@example.com")
    with_phone = _identity(external_ids={"webshop": "c-42"}, phone="+44 20 7946 0000")
    assert partition_key(with_email) == partition_key(with_phone)
    assert partition_key(with_email) != partition_key(_identity(email="ada@example.com"))


def test_the_first_external_system_by_name_decides_whatever_the_order_sent() -> None:
    one = _identity(external_ids={"webshop": "c-42", "pos": "p-7"})
    other = _identity(external_ids={"pos": "p-7", "webshop": "c-99"})
    assert partition_key(one) == partition_key(other)


def test_the_system_is_part_of_an_external_id_key() -> None:
    assert partition_key(_identity(external_ids={"webshop": "42"})) != partition_key(
        _identity(external_ids={"pos": "42"})
    )


def test_emails_that_differ_only_in_case_share_a_key() -> None:
    assert partition_key(_identity(email="Ada@Example.COM")) == partition_key(
        _identity(email="ada@example.com")
    )


def test_an_email_beats_the_phone_and_the_anonymous_id() -> None:
    full = _identity(email="ada@example.com", phone="+44 20 7946 0000", anonymous_id="ck-1")
    assert partition_key(full) == partition_key(_identity(email="ada@example.com"))


def test_phone_numbers_written_differently_share_a_key() -> None:
    assert partition_key(_identity(phone="+44 20 7946 0000")) == partition_key(
        _identity(phone="+44-(20)-7946.0000")
    )


def test_a_phone_beats_the_anonymous_id() -> None:
    both = _identity(phone="+44 20 7946 0000", anonymous_id="ck-1")
    assert partition_key(both) == partition_key(_identity(phone="+44 20 7946 0000"))


def test_an_anonymous_id_is_hashed_too() -> None:
    key = partition_key(_identity(anonymous_id="ck-1"))
    assert HEX_DIGEST.fullmatch(key) and "ck-1" not in key


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"anonymous_id": "42"}, {"external_ids": {"x": "42"}}),
        ({"email": "a@b"}, {"anonymous_id": "a@b"}),
        ({"phone": "+4420"}, {"anonymous_id": "4420"}),
    ],
)
def test_the_same_text_as_different_kinds_of_identifier_gives_different_keys(
    one: dict[str, object], other: dict[str, object]
) -> None:
    assert partition_key(_identity(**one)) != partition_key(_identity(**other))


def test_the_key_is_stable_across_calls() -> None:
    identity = _identity(email="ada@example.com")
    assert partition_key(identity) == partition_key(identity.model_copy())
