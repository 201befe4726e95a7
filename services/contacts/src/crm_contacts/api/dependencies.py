"""What the routes take besides their body: scopes, the use-case context, the
Idempotency-Key header. The database connection is the kit's `ConnectionDep`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from crm_contacts.handlers import Context
from crm_kit.auth import Principal, require_scopes

Reader = Annotated[Principal, Depends(require_scopes("contacts:read"))]
Writer = Annotated[Principal, Depends(require_scopes("contacts:write"))]
Eraser = Annotated[Principal, Depends(require_scopes("privacy:erase"))]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        description="Repeat a POST with the same key to get the first answer back.",
    ),
]


def get_context(request: Request) -> Context:
    """FastAPI dependency: the context the app was wired with (`app.state.context`)."""
    ctx = request.app.state.context
    assert isinstance(ctx, Context)
    return ctx


Ctx = Annotated[Context, Depends(get_context)]
