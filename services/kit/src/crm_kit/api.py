"""What every service's HTTP API shares: the base of request bodies, pages of a list, the
answer of a create, the Idempotency-Key header, the use-case context, and the one way a route
runs a use case that writes.

    router = APIRouter()
    Ctx = Annotated[Context, Depends(context_of(Context))]     # app.state.context

    @router.patch("/contacts/{contact_id}")
    async def update_contact(contact_id: str, body: ContactPatch, conn: ConnectionDep,
                             ctx: Ctx) -> ContactOut:
        contact = await in_transaction(conn, handlers.update_contact, ctx, contact_id=...)
        return ContactOut.from_details(contact)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Concatenate, Generic, ParamSpec, Self, TypeVar

import asyncpg
from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from crm_kit.idempotency import Answer
from crm_kit.pages import RowPage

MAX_PAGE = 200
T = TypeVar("T")
C = TypeVar("C")
P = ParamSpec("P")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        description="Repeat a POST with the same key to get the first answer back.",
    ),
]


class Input(BaseModel):
    """Base of request bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass next_cursor as `cursor` for the next."""

    items: list[T]
    next_cursor: str | None

    @classmethod
    def of(cls, rows: RowPage, item: Callable[[dict[str, Any]], T]) -> Self:
        """A page of rows, each made a response model by `item`."""
        return cls(items=[item(row) for row in rows.items], next_cursor=rows.next_cursor)


def created(answer: Answer, collection: str) -> JSONResponse:
    """The answer of a create, with the new resource's Location; a repeat (Idempotency-Key)
    gets the same status, body and Location as the first."""
    return JSONResponse(
        answer.body,
        status_code=answer.status_code,
        headers={"Location": f"{collection}/{answer.body['id']}"},
    )


def context_of(kind: type[C]) -> Callable[[Request], C]:
    """FastAPI dependency: the use-case context the app was wired with (`app.state.context`)."""

    def get_context(request: Request) -> C:
        ctx = request.app.state.context
        assert isinstance(ctx, kind)
        return ctx

    return get_context


async def in_transaction(
    conn: asyncpg.Connection,
    use_case: Callable[Concatenate[asyncpg.Connection, P], Awaitable[T]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run a use case that writes in one transaction of `conn`: the route's only way to open
    one (an idempotent POST's is `answer_once`'s, a consumer's the runner's)."""
    async with conn.transaction():
        return await use_case(conn, *args, **kwargs)
