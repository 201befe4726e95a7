"""Outbox rows store a record's headers as JSON pairs of name and base64 value."""

from __future__ import annotations

import json

import pytest

from crm_contracts import encode_binary
from crm_contracts.examples import example_event
from crm_kit.outbox import _decode_headers, _encode_headers, _headers_json

HEADER_SETS = [
    encode_binary(example_event("crm.interaction.resolved"), key="k").headers,
    [],
    [('a "quoted" name', b""), ("é", b"\x00\xff" * 40), ("ce_id", b"x")],
]


@pytest.mark.parametrize("headers", HEADER_SETS)
def test_the_stored_text_is_the_json_of_the_pairs(headers: list[tuple[str, bytes]]) -> None:
    assert _headers_json(headers) == json.dumps(_encode_headers(headers))


@pytest.mark.parametrize("headers", HEADER_SETS)
def test_stored_headers_read_back_as_they_were(headers: list[tuple[str, bytes]]) -> None:
    assert _decode_headers(json.loads(_headers_json(headers))) == headers
