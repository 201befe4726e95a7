"""Accounts (companies): create (idempotent), list and read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from crm_contacts import handlers
from crm_contacts.api.dependencies import Reader, Writer
from crm_contacts.api.models import Text
from crm_kit.api import MAX_PAGE, IdempotencyKey, Input, Page, created
from crm_kit.idempotency import IdempotentPost
from crm_kit.problems import problem_responses
from crm_kit.runtime import ConnectionDep, SnapshotDep

router = APIRouter()


class AccountCreate(Input):
    """A company."""

    name: Annotated[str, Field(min_length=1, max_length=256)]
    domain: (
        Annotated[str, Field(max_length=253, pattern=r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")] | None
    ) = None
    industry: Text | None = None


class AccountOut(BaseModel):
    """A company."""

    id: str
    name: str
    domain: str | None
    industry: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AccountOut:
        """An account row."""
        return cls(**row)


@router.post(
    "/accounts",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountOut,
    responses=problem_responses(409),
)
async def create_account(
    body: AccountCreate,
    principal: Writer,
    conn: ConnectionDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Create an account (a company); 409 when its domain is taken."""
    answer = await handlers.create_account_once(
        conn,
        name=body.name,
        domain_name=None if body.domain is None else body.domain.lower(),
        industry=body.industry,
        post=IdempotentPost.of(
            body, principal=principal.subject, operation="create_account", key=idempotency_key
        ),
        render=AccountOut.from_row,
    )
    return created(answer, "/v1/accounts")


@router.get("/accounts", response_model=Page[AccountOut], responses=problem_responses(400))
async def list_accounts(
    principal: Reader,
    conn: SnapshotDep,
    q: Annotated[str | None, Query(min_length=1, max_length=100, description="Name.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Page[AccountOut]:
    """Accounts, oldest first."""
    rows = await handlers.list_accounts(conn, name=q, cursor=cursor, limit=limit)
    return Page[AccountOut].of(rows, AccountOut.from_row)


@router.get("/accounts/{account_id}", response_model=AccountOut, responses=problem_responses(404))
async def get_account(account_id: str, principal: Reader, conn: SnapshotDep) -> AccountOut:
    """One account."""
    return AccountOut.from_row(await handlers.get_account(conn, account_id))
