"""What no service can store or compute with is a 4xx problem naming the place, never a 500.

A NUL character reaching Postgres, an integer past 64 bits reaching a bigint and a
timestamp in year 1 reaching date arithmetic each answered 500 before (issue 7, item 11).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from crm_kit.problems import PROBLEM_MEDIA_TYPE
from tests.integration.openapi.conftest import Running


def _cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


YEAR_ONE = "0001-01-01T00:00:00Z"
YEAR_ONE_PLUS_ONE_HOUR = "0001-01-01T00:00:00+01:00"  # not even representable in UTC

# service, method, path, request, status, where the problem says the fault is
CASES: list[tuple[str, str, str, dict[str, Any], int, str | None]] = [
    (
        "contacts",
        "POST",
        "/v1/contacts",
        {"json": {"first_name": "Ada\x00"}},
        422,
        "body.first_name",
    ),
    ("contacts", "POST", "/v1/accounts", {"json": {"name": "Acme\x00"}}, 422, "body.name"),
    (
        "contacts",
        "POST",
        "/v1/contacts/c-1/unmerge",
        {"json": {"merged_id": "c-2\x00"}},
        422,
        "body.merged_id",
    ),
    ("contacts", "GET", "/v1/contacts", {"params": {"q": "Ada\x00"}}, 422, "query.q"),
    ("contacts", "GET", "/v1/contacts", {"params": {"email": "a\x00@b.c"}}, 422, "query.email"),
    ("contacts", "GET", "/v1/contacts/c-1%00", {}, 422, "path.contact_id"),
    ("contacts", "GET", "/v1/contacts/c-1%00/timeline", {}, 422, "path.contact_id"),
    (
        "contacts",
        "POST",
        "/v1/contacts",
        {"json": {"first_name": "Ada", "custom": {"visits": 2**64}}},
        422,
        "body.custom.visits",
    ),
    (
        "contacts",
        "GET",
        "/v1/contacts",
        {"params": {"updated_since": YEAR_ONE_PLUS_ONE_HOUR}},
        422,
        "query.updated_since",
    ),
    (
        "contacts",
        "GET",
        "/v1/contacts",
        {"params": {"cursor": _cursor(YEAR_ONE, "c\x00")}},
        400,
        None,
    ),
    (
        "contacts",
        "GET",
        "/v1/accounts",
        {"params": {"cursor": _cursor(YEAR_ONE, "a-1")}},
        400,
        None,
    ),
    (
        "ingest",
        "POST",
        "/v1/api-keys",
        {"json": {"source": "urn:channel:x\x00"}},
        422,
        "body.source",
    ),
    ("ingest", "GET", "/v1/api-keys", {"params": {"source": "urn:\x00"}}, 422, "query.source"),
    ("ingest", "GET", "/v1/api-keys", {"params": {"offset": 2**63}}, 422, "query.offset"),
    (
        "scoring",
        "GET",
        "/v1/contacts/c-1/scores/history",
        {"params": {"before": 2**64}},
        422,
        "query.before",
    ),
    (
        "scoring",
        "POST",
        "/v1/scores/reevaluate",
        {"params": {"as_of": YEAR_ONE}},
        422,
        "query.as_of",
    ),
    (
        "scoring",
        "GET",
        "/v1/contacts/c-1/scores",
        {"params": {"as_of": YEAR_ONE}},
        422,
        "query.as_of",
    ),
]


@pytest.mark.parametrize(
    ("name", "method", "path", "request_", "status", "where"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[5] or 'cursor'}-{i}" for i, c in enumerate(CASES)],
)
def test_unstorable_input_is_a_client_error_naming_the_place(
    backend: dict[str, Running],
    name: str,
    method: str,
    path: str,
    request_: dict[str, Any],
    status: int,
    where: str | None,
) -> None:
    service = backend[name]

    response = httpx.request(
        method, service.base_url + path, headers=service.headers, timeout=30, **request_
    )

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = response.json()
    assert problem["status"] == status
    if where is not None:
        assert where in [error["path"] for error in problem["errors"]], problem
    assert "\\u0000" not in json.dumps(problem.get("errors"))  # never the value itself


def test_a_lone_surrogate_in_a_json_body_is_a_422_problem(backend: dict[str, Running]) -> None:
    contacts = backend["contacts"]

    response = httpx.post(
        f"{contacts.base_url}/v1/contacts",
        content=b'{"first_name": "Ada", "custom": {"nick": "\\ud800"}}',
        headers={**contacts.headers, "content-type": "application/json"},
        timeout=30,
    )

    assert response.status_code == 422, response.text
    assert [e["path"] for e in response.json()["errors"]] == ["body.custom.nick"]


def test_a_forged_timeline_cursor_past_64_bits_is_a_400_problem(
    backend: dict[str, Running],
) -> None:
    contacts = backend["contacts"]
    created = httpx.post(
        f"{contacts.base_url}/v1/contacts",
        json={"first_name": "Cursor"},
        headers=contacts.headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text

    response = httpx.get(
        f"{contacts.base_url}/v1/contacts/{created.json()['id']}/timeline",
        params={"cursor": _cursor("2026-01-01T00:00:00+00:00", 2**64)},
        headers=contacts.headers,
        timeout=30,
    )

    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith("/invalid-cursor")


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        (
            "/v1/segments/seg-unstorable",
            b'{"name": "Big", "rule": {"type": "score", "score": "clv", "op": "gt",'
            b' "value": 1e400}}',
            "body.rule.score.value",
        ),
        (
            "/v1/segments/seg-unstorable",
            b'{"name": "NaN", "rule": {"type": "trait", "name": "x", "op": "eq", "value": NaN}}',
            "body.rule.trait.value.float",
        ),
        (
            "/v1/campaigns/cmp-unstorable",
            b'{"name": "Big", "goal": {"kind": "purchase", "min_value": 1e400},'
            b' "steps": [{"id": "s1", "channel": "email", "template_ref": "t"}]}',
            "body.goal.min_value",
        ),
        (
            "/v1/campaigns/cmp-unstorable",
            b'{"name": "Old", "ends_at": "0001-01-01T00:00:00Z",'
            b' "steps": [{"id": "s1", "channel": "email", "template_ref": "t"}]}',
            "body.ends_at",
        ),
    ],
)
def test_a_campaign_or_segment_number_or_time_no_event_can_carry_is_a_422_problem(
    backend: dict[str, Running], path: str, body: bytes, where: str
) -> None:
    # Python's JSON reads 1e400 as infinity and accepts NaN; jsonb stores neither, and an
    # ends_at in year 1 could never be put on the campaign's launched event.
    campaigns = backend["campaigns"]

    response = httpx.put(
        campaigns.base_url + path,
        content=body,
        headers={**campaigns.headers, "content-type": "application/json"},
        timeout=30,
    )

    assert response.status_code == 422, response.text
    assert where in [error["path"] for error in response.json()["errors"]], response.json()
