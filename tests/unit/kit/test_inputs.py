"""The kit's input guard and bounded types, and the problems the OpenAPI document lists.

Every route of `create_service_app` answers 422 before it runs when text no service can
store (a NUL character, a lone surrogate) comes in the path, the query, a header or a JSON
body; offsets, row ids and instants are bounded by their types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, SecretStr

from crm_kit.http import create_service_app
from crm_kit.inputs import Instant, Offset, RowId
from crm_kit.problems import PROBLEM_MEDIA_TYPE, problem_responses
from crm_kit.settings import ServiceSettings


class InputTestSettings(ServiceSettings):
    service_name = "inputs-test"


class Note(BaseModel):
    text: str
    tags: dict[str, Any] = {}


async def _ready() -> dict[str, bool]:
    return {}


def _app() -> FastAPI:
    app = create_service_app(
        settings=InputTestSettings(environment="test", jwt_secret=SecretStr("x" * 40)),
        title="inputs-test",
        version="0",
        readiness=_ready,
    )

    @app.get("/notes/{note_id}", responses=problem_responses(404))
    async def get_note(
        note_id: str,
        q: str | None = None,
        offset: Annotated[Offset, Query()] = 0,
        before: Annotated[RowId | None, Query()] = None,
        as_of: Annotated[Instant | None, Query()] = None,
    ) -> dict[str, Any]:
        return {"note_id": note_id, "q": q, "offset": offset, "before": before}

    @app.post("/notes")
    async def post_note(note: Note) -> dict[str, str]:
        return {"text": note.text}

    @app.post("/raw")
    async def post_raw(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}  # reads its own body, unchecked

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit") as client:
        yield client


def _paths(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    return [error["path"] for error in response.json()["errors"]]


async def test_a_nul_in_a_path_parameter_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    assert _paths(await client.get("/notes/n-1%00")) == ["path.note_id"]


async def test_a_nul_in_a_query_parameter_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    assert _paths(await client.get("/notes/n-1", params={"q": "a\x00"})) == ["query.q"]


async def test_a_nul_in_a_header_is_a_422_naming_it() -> None:
    # httpx refuses to send such a header; an ASGI scope can carry it as a server would.
    app = _app()
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/notes/n-1",
        "raw_path": b"/notes/n-1",
        "query_string": b"",
        "headers": [(b"idempotency-key", b"k\x00")],
        "scheme": "http",
        "server": ("kit", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
        "http_version": "1.1",
    }
    await app(scope, receive, send)

    assert messages[0]["status"] == 422
    assert b'"path":"header.idempotency-key"' in messages[1]["body"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"text": "a\x00b"}, "body.text"),
        ({"text": "ok", "tags": {"colour": ["red", "gr\x00een"]}}, "body.tags.colour.1"),
        ({"text": "ok", "tags": {"n": 2**64}}, "body.tags.n"),
    ],
)
async def test_unstorable_values_in_a_json_body_are_a_422_naming_them(
    client: httpx.AsyncClient, body: dict[str, Any], where: str
) -> None:
    assert _paths(await client.post("/notes", json=body)) == [where]


async def test_a_lone_surrogate_escaped_in_a_json_body_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/notes", content=b'{"text": "\\udc00"}', headers={"content-type": "application/json"}
    )

    assert _paths(response) == ["body.text"]
    assert "\\udc00" not in response.text  # the problem names the place, not the value


async def test_a_route_reading_its_own_body_is_left_to_check_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/raw", content=b'{"a": "\\u0000"}')

    assert response.status_code == 200


async def test_storable_input_passes(client: httpx.AsyncClient) -> None:
    response = await client.get("/notes/n-1", params={"q": "Zoë 😀", "offset": 2**63 - 1})

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"offset": 2**63}, "query.offset"),
        ({"offset": -1}, "query.offset"),
        ({"before": 2**64}, "query.before"),
        ({"before": 0}, "query.before"),
        ({"as_of": "0001-01-01T00:00:00Z"}, "query.as_of"),
        ({"as_of": "0001-01-01T00:00:00+01:00"}, "query.as_of"),
        ({"as_of": "9999-12-31T23:59:59-01:00"}, "query.as_of"),
    ],
)
async def test_offsets_ids_and_instants_out_of_bounds_are_a_422(
    client: httpx.AsyncClient, params: dict[str, Any], where: str
) -> None:
    assert _paths(await client.get("/notes/n-1", params=params)) == [where]


def test_the_document_lists_problem_responses_with_the_problem_schema() -> None:
    document = _app().openapi()
    problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    get_note = document["paths"]["/notes/{note_id}"]["get"]["responses"]
    post_note = document["paths"]["/notes"]["post"]["responses"]

    assert get_note["404"]["content"] == get_note["422"]["content"] == problem
    assert {"400", "413", "422"} <= set(post_note)
    assert all(post_note[code]["content"] == problem for code in ("400", "413", "422"))
    assert "HTTPValidationError" not in str(document)
    assert document["components"]["schemas"]["Problem"]["properties"]["errors"]
    query = {
        p["name"]: p["schema"] for p in document["paths"]["/notes/{note_id}"]["get"]["parameters"]
    }
    assert query["offset"]["maximum"] == 2**63 - 1
