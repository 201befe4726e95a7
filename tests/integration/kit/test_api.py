"""A tiny service on the kit's API pieces, against real Postgres: idempotent POSTs replayed
from the kit's table, cursor pages, domain errors answered as problems, and reads that see one
moment."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel

from crm_kit import idempotency
from crm_kit.api import IdempotencyKey, Input, Page, created, in_transaction
from crm_kit.db import as_dict, as_dicts
from crm_kit.errors import Conflict, NotFound
from crm_kit.http import create_service_app
from crm_kit.idempotency import IdempotentPost, answer_once
from crm_kit.pages import RowPage, decode_cursor, page_of
from crm_kit.runtime import SnapshotDep, get_pool
from crm_kit.settings import ServiceSettings

NOTES = """
CREATE TABLE notes (
    id         text        PRIMARY KEY,
    subject    text        NOT NULL,
    text       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


class NoteIn(Input):
    subject: str
    text: str


class NoteOut(BaseModel):
    id: str
    subject: str
    text: str
    created_at: datetime


async def _connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    async with request.app.state.pool.acquire() as conn:
        yield conn


Conn = Annotated[asyncpg.Connection, Depends(_connection)]


async def _insert_note(conn: asyncpg.Connection, body: NoteIn) -> dict[str, Any]:
    taken = await conn.fetchval("SELECT id FROM notes WHERE text = $1", body.text)
    if taken is not None:
        raise Conflict("A note says that already.", reason="note-exists", extensions={"id": taken})
    row = await conn.fetchrow(
        "INSERT INTO notes (id, subject, text) VALUES ($1, $2, $3) "
        "RETURNING id, subject, text, created_at",
        f"n-{uuid.uuid4().hex}",
        body.subject,
        body.text,
    )
    assert row is not None
    return dict(row.items())


async def _list_notes(conn: asyncpg.Connection, cursor: str | None, limit: int) -> RowPage:
    after = decode_cursor(cursor, datetime, str) if cursor else (datetime.min, "")
    rows = await conn.fetch(
        "SELECT id, subject, text, created_at FROM notes WHERE (created_at, id) > ($1, $2) "
        "ORDER BY created_at, id LIMIT $3",
        *after,
        limit + 1,
    )
    return page_of(as_dicts(rows), limit, "created_at", "id")


def _app(pool: asyncpg.Pool, settings: ServiceSettings) -> FastAPI:
    async def ready() -> dict[str, bool]:
        return {"database": True}

    app = create_service_app(settings=settings, title="notes", version="0", readiness=ready)
    app.state.pool = pool

    @app.post("/notes", status_code=201)
    async def create_note(body: NoteIn, conn: Conn, key: IdempotencyKey = None) -> Any:
        async def create() -> tuple[BaseModel, str]:
            return NoteOut(**await _insert_note(conn, body)), body.subject

        post = IdempotentPost.of(body, principal="agent-7", operation="create_note", key=key)
        return created(await answer_once(conn, post, create), "/notes")

    @app.get("/notes")
    async def list_notes(conn: Conn, cursor: str | None = None, limit: int = 2) -> Page[NoteOut]:
        return Page[NoteOut].of(await _list_notes(conn, cursor, limit), lambda r: NoteOut(**r))

    @app.get("/notes/{note_id}")
    async def get_note(note_id: str, conn: Conn) -> NoteOut:
        row = as_dict(
            await conn.fetchrow(
                "SELECT id, subject, text, created_at FROM notes WHERE id = $1", note_id
            )
        )
        if row is None:
            raise NotFound("No note with this id.")
        return NoteOut(**row)

    @app.get("/notes-counted-twice")
    async def count_twice(conn: SnapshotDep) -> dict[str, int]:
        # Two statements of one answer, with a writer's commit let in between them.
        first = await conn.fetchval("SELECT count(*) FROM notes")
        app.state.between.set()
        await app.state.go_on.wait()
        return {"first": first, "second": await conn.fetchval("SELECT count(*) FROM notes")}

    @app.delete("/subjects/{subject}/answers")
    async def forget_subject(subject: str, conn: Conn) -> dict[str, int]:
        return {"forgotten": await in_transaction(conn, idempotency.forget, [subject])}

    return app


@pytest.fixture
async def app(pool: asyncpg.Pool, settings: ServiceSettings) -> FastAPI:
    await pool.execute(NOTES)
    app = _app(pool, settings)
    app.dependency_overrides[get_pool] = lambda: pool  # what ServiceRuntime gives a service
    app.state.between, app.state.go_on = asyncio.Event(), asyncio.Event()
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notes") as client:
        yield client


async def _count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM notes"))


async def test_a_post_repeated_with_its_idempotency_key_gets_the_first_answer_and_creates_once(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    note = {"subject": "c-1", "text": "called back"}
    first = await client.post("/notes", json=note, headers={"Idempotency-Key": "k-1"})
    again = await client.post("/notes", json=note, headers={"Idempotency-Key": "k-1"})

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"] == f"/notes/{first.json()['id']}"
    assert await _count(pool) == 1


async def test_an_idempotency_key_used_with_another_body_is_refused_as_a_problem(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await client.post(
        "/notes", json={"subject": "c-1", "text": "a"}, headers={"Idempotency-Key": "k"}
    )
    other = await client.post(
        "/notes", json={"subject": "c-1", "text": "b"}, headers={"Idempotency-Key": "k"}
    )

    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"] == "https://crm-backbone.dev/problems/idempotency-key-reused"
    assert await _count(pool) == 1


async def test_posts_without_a_key_are_not_replayed(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    first = await client.post("/notes", json={"subject": "c-1", "text": "a"})
    second = await client.post("/notes", json={"subject": "c-1", "text": "b"})

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert await _count(pool) == 2


async def test_forgetting_a_subject_drops_its_stored_answers(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await client.post(
        "/notes", json={"subject": "c-1", "text": "a"}, headers={"Idempotency-Key": "k"}
    )
    await client.post(
        "/notes", json={"subject": "c-2", "text": "b"}, headers={"Idempotency-Key": "j"}
    )

    forgotten = await client.delete("/subjects/c-1/answers")

    assert forgotten.json() == {"forgotten": 1}
    assert await pool.fetchval("SELECT array_agg(subject) FROM kit_idempotency") == ["c-2"]


async def test_a_domain_error_is_answered_as_the_problem_of_its_kind(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/notes", json={"subject": "c-1", "text": "a"})
    missing = await client.get("/notes/n-nope")
    taken = await client.post("/notes", json={"subject": "c-2", "text": "a"})

    assert missing.status_code == 404
    assert missing.json() == {
        "type": "https://crm-backbone.dev/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "No note with this id.",
        "instance": "/notes/n-nope",
    }
    assert taken.status_code == 409
    assert taken.json()["type"] == "https://crm-backbone.dev/problems/note-exists"
    assert taken.json()["id"] == created.json()["id"]


async def test_cursor_pages_walk_every_row_once_and_a_forged_cursor_is_a_400(
    client: httpx.AsyncClient,
) -> None:
    ids = [
        (await client.post("/notes", json={"subject": "c-1", "text": str(n)})).json()["id"]
        for n in range(5)
    ]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = (await client.get("/notes", params={"cursor": cursor} if cursor else {})).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    forged = await client.get("/notes", params={"cursor": "bm90LW91cnM"})

    assert seen == ids
    assert forged.status_code == 400
    assert forged.json()["type"] == "https://crm-backbone.dev/problems/invalid-cursor"


async def test_a_read_sees_one_moment_though_a_writer_commits_between_its_statements(
    client: httpx.AsyncClient, app: FastAPI, pool: asyncpg.Pool
) -> None:
    await client.post("/notes", json={"subject": "c-1", "text": "before"})
    reading = asyncio.create_task(client.get("/notes-counted-twice"))
    await asyncio.wait_for(app.state.between.wait(), timeout=30)
    await pool.execute("INSERT INTO notes (id, subject, text) VALUES ('n-x', 'c-1', 'between')")
    app.state.go_on.set()
    answer = await asyncio.wait_for(reading, timeout=30)

    assert answer.status_code == 200
    assert answer.json() == {"first": 1, "second": 1}
    assert await _count(pool) == 2  # the writer's note is there for the next read
