"""Accounts (companies): created by hand, linked from a contact's `company` trait."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from crm_contacts import repository as repo
from crm_contacts.handlers.context import new_id
from crm_kit.errors import Conflict, NotFound
from crm_kit.idempotency import Answer, IdempotentPost, answer_once
from crm_kit.pages import RowPage, decode_cursor, page_of


async def account_for_company(conn: asyncpg.Connection, company: Any) -> dict[str, Any] | None:
    """The `company` trait links to an existing account of that name; it never creates one."""
    if not isinstance(company, str) or not company.strip():
        return None
    return await repo.account_by_name(conn, company.strip())


async def create_account(
    conn: asyncpg.Connection, *, name: str, domain_name: str | None, industry: str | None
) -> dict[str, Any]:
    """Create an account; Conflict when its domain belongs to another."""
    if domain_name is not None:
        existing = await repo.account_by_domain(conn, domain_name)
        if existing is not None:
            raise Conflict(
                "An account with this domain exists.",
                reason="account-exists",
                extensions={"account_id": existing["id"]},
            )
    return await repo.insert_account(
        conn, account_id=new_id("acc"), name=name, domain=domain_name, industry=industry
    )


async def create_account_once(
    conn: asyncpg.Connection,
    *,
    name: str,
    domain_name: str | None,
    industry: str | None,
    post: IdempotentPost,
    render: Callable[[dict[str, Any]], BaseModel],
) -> Answer:
    """Create an account in a transaction of its own; a repeated Idempotency-Key gets the
    first answer (`render` makes the answer of the new account)."""

    async def create() -> tuple[BaseModel, None]:
        row = await create_account(conn, name=name, domain_name=domain_name, industry=industry)
        return render(row), None

    return await answer_once(conn, post, create)


async def get_account(conn: asyncpg.Connection, account_id: str) -> dict[str, Any]:
    """One account, or NotFound."""
    row = await repo.get_account(conn, account_id)
    if row is None:
        raise NotFound("No account with this id.")
    return row


async def list_accounts(
    conn: asyncpg.Connection, *, name: str | None, cursor: str | None, limit: int
) -> RowPage:
    """Accounts (by name when given), oldest first."""
    after = decode_cursor(cursor, datetime, str) if cursor else None
    rows = await repo.list_accounts(
        conn, name=name, after=(after[0], after[1]) if after else None, limit=limit + 1
    )
    return page_of(rows, limit, "created_at", "id")
