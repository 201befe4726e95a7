"""POSTs sent with an Idempotency-Key: the first answer is stored with the change and given
back, as it was, to every repeat of the same request."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import BaseModel

from crm_contacts import repository as repo
from crm_kit.problems import ProblemError


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


# What a creation answers, and the contact the stored answer is about (erased with it).
Creation = Callable[[], Awaitable[tuple[BaseModel, str | None]]]


async def answer_once(conn: asyncpg.Connection, post: IdempotentPost, create: Creation) -> Answer:
    """Run `create` in a transaction of its own and store its answer under the key (201).

    A twin sent at the same moment loses on the unique key and is retried once: the retry
    finds the winner's answer (or whatever unique row it collided with)."""
    for attempt in (1, 2):
        stored = await _stored_answer(conn, post)
        if stored is not None:
            return stored
        try:
            async with conn.transaction():
                out, contact_id = await create()
                body = out.model_dump(mode="json")
                if post.key is not None:
                    await repo.store_response(
                        conn,
                        principal=post.principal,
                        operation=post.operation,
                        key=post.key,
                        request_hash=post.request_hash,
                        status_code=201,
                        body=body,
                        contact_id=contact_id,
                    )
            return Answer(201, body)
        except asyncpg.UniqueViolationError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _stored_answer(conn: asyncpg.Connection, post: IdempotentPost) -> Answer | None:
    if post.key is None:
        return None
    stored = await repo.stored_response(
        conn, principal=post.principal, operation=post.operation, key=post.key
    )
    if stored is None:
        return None
    if stored["request_hash"] != post.request_hash:
        raise ProblemError(
            422,
            detail="This Idempotency-Key was used with another request body.",
            slug="idempotency-key-reused",
        )
    return Answer(stored["status_code"], stored["body"], replayed=True)
