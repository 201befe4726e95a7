"""POSTs sent with an Idempotency-Key: the first answer is stored with the change and given
back, as it was, to every repeat of the same request.

    post = IdempotentPost.of(body, principal=principal.subject, operation="create_contact",
                             key=idempotency_key)
    answer = await answer_once(conn, post, create)   # create() -> (response model, subject)
    return created(answer, "/v1/contacts")           # crm_kit.api

Answers live in `kit_idempotency` (a kit migration), keyed by principal, operation and key;
`subject` (whom the answer is about, a contact id) lets an erasure `forget` them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import BaseModel

from crm_kit.errors import InvalidInput


@dataclass(frozen=True)
class IdempotentPost:
    """Who sent a POST, for which operation, under which Idempotency-Key (None: no key)."""

    principal: str
    operation: str
    key: str | None
    request_hash: str

    @classmethod
    def of(
        cls, body: BaseModel, *, principal: str, operation: str, key: str | None
    ) -> IdempotentPost:
        """The POST of this request body (hashed to tell a repeat from another request)."""
        digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        return cls(principal, operation, key, digest)


@dataclass(frozen=True)
class Answer:
    """What a POST answers: the new resource, or the stored answer of its first sending."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


# What a creation answers, and whom the stored answer is about (erased with it).
Creation = Callable[[], Awaitable[tuple[BaseModel, str | None]]]


async def answer_once(conn: asyncpg.Connection, post: IdempotentPost, create: Creation) -> Answer:
    """Run `create` in a transaction of its own and store its answer under the key (201).

    A twin sent at the same moment loses on the unique key and is retried once: the retry
    finds the winner's answer (or whatever unique row it collided with). A key used before
    with another body is refused (InvalidInput `idempotency-key-reused`)."""
    for attempt in (1, 2):
        stored = await _stored_answer(conn, post)
        if stored is not None:
            return stored
        try:
            async with conn.transaction():
                out, subject = await create()
                body = out.model_dump(mode="json")
                if post.key is not None:
                    await _store(conn, post, status_code=201, body=body, subject=subject)
            return Answer(201, body)
        except asyncpg.UniqueViolationError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def forget(conn: asyncpg.Connection, subjects: Sequence[str]) -> int:
    """Delete the stored answers about `subjects` (an erasure); how many there were."""
    status = await conn.execute(
        "DELETE FROM kit_idempotency WHERE subject = ANY($1::text[])", list(subjects)
    )
    return int(status.rsplit(" ", 1)[-1])


async def _stored_answer(conn: asyncpg.Connection, post: IdempotentPost) -> Answer | None:
    if post.key is None:
        return None
    stored = await conn.fetchrow(
        "SELECT request_hash, status_code, body FROM kit_idempotency "
        "WHERE principal = $1 AND operation = $2 AND key = $3",
        post.principal,
        post.operation,
        post.key,
    )
    if stored is None:
        return None
    if stored["request_hash"] != post.request_hash:
        raise InvalidInput(
            "This Idempotency-Key was used with another request body.",
            reason="idempotency-key-reused",
        )
    return Answer(stored["status_code"], stored["body"], replayed=True)


async def _store(
    conn: asyncpg.Connection,
    post: IdempotentPost,
    *,
    status_code: int,
    body: dict[str, Any],
    subject: str | None,
) -> None:
    # A concurrent twin raises UniqueViolationError here.
    await conn.execute(
        "INSERT INTO kit_idempotency (principal, operation, key, request_hash, status_code, "
        "body, subject) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        post.principal,
        post.operation,
        post.key,
        post.request_hash,
        status_code,
        body,
        subject,
    )
