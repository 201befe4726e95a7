"""An answer stored by contacts before its idempotent POSTs moved to the kit's table is still
given back after the upgrade, and still erased with its contact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crm_contacts.api.contacts import ContactCreate
from crm_contacts.app import MIGRATIONS
from crm_kit.db import connect
from crm_kit.idempotency import IdempotentPost
from crm_kit.migrations import apply_migrations, load_migrations

LEGACY = "20261123_01_contacts.sql"
BODY = {"email": "grace@example.com", "first_name": "Grace"}


async def test_an_answer_stored_before_the_upgrade_is_replayed_after_it(
    database: str, start_service: Callable[..., Any]
) -> None:
    post = IdempotentPost.of(
        ContactCreate(**BODY), principal="agent-7", operation="create_contact", key="before"
    )
    stored = {"id": "c-from-before", "status": "active"}
    conn = await connect(database)
    try:
        [legacy] = [m for m in load_migrations("contacts", MIGRATIONS) if m.name == LEGACY]
        await apply_migrations(conn, [legacy])
        await conn.execute(
            "INSERT INTO api_idempotency (principal, operation, key, request_hash, status_code, "
            "body, contact_id) VALUES ($1, $2, $3, $4, 201, $5, $6)",
            post.principal,
            post.operation,
            post.key,
            post.request_hash,
            stored,
            "c-from-before",
        )
    finally:
        await conn.close()

    service = await start_service()  # migrates: the answer moves to kit_idempotency
    headers = {**service.headers(), "Idempotency-Key": "before"}
    replay = await service.http.post("/v1/contacts", json=BODY, headers=headers)

    assert replay.status_code == 201
    assert replay.json() == stored
    assert replay.headers["location"] == "/v1/contacts/c-from-before"
    assert await service.fetch("SELECT id FROM contacts") == []
    assert [r["subject"] for r in await service.fetch("SELECT subject FROM kit_idempotency")] == [
        "c-from-before"
    ]
    assert await service.fetch("SELECT to_regclass('api_idempotency') AS t") == [(None,)]


async def test_an_erasure_forgets_the_answers_about_the_person(
    start_service: Callable[..., Any],
) -> None:
    service = await start_service()
    headers = {**service.headers(), "Idempotency-Key": "grace"}
    created = await service.http.post("/v1/contacts", json=BODY, headers=headers)
    contact_id = created.json()["id"]

    erased = await service.send("POST", f"/v1/contacts/{contact_id}/erase")

    assert erased.status_code == 202
    assert await service.fetch("SELECT key FROM kit_idempotency") == []
