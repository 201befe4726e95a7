"""What every part of the API shares: the base of request bodies, field types, pages of a
list, and the answer of a create."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Generic, Self, TypeVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from crm_contacts import handlers

MAX_PAGE = 200
T = TypeVar("T")
ContactIdPath = Annotated[str, Field(min_length=1, max_length=128)]
Text = Annotated[str, Field(max_length=256)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class Input(BaseModel):
    """Base of request bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass next_cursor as `cursor` for the next."""

    items: list[T]
    next_cursor: str | None

    @classmethod
    def of(cls, rows: handlers.RowPage, item: Callable[[dict[str, Any]], T]) -> Self:
        """A page of rows, each made a response model by `item`."""
        return cls(items=[item(row) for row in rows.items], next_cursor=rows.next_cursor)


def created(answer: handlers.Answer, collection: str) -> JSONResponse:
    """The answer of a create, with the new resource's Location; a repeat (Idempotency-Key)
    gets the same status, body and Location as the first."""
    return JSONResponse(
        answer.body,
        status_code=answer.status_code,
        headers={"Location": f"{collection}/{answer.body['id']}"},
    )
