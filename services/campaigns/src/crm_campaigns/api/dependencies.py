"""What the routes take besides their body: scopes and the use-case context. The database
connection (`ConnectionDep`) is the kit's."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from crm_campaigns.handlers.context import Context
from crm_kit.api import context_of
from crm_kit.auth import Principal, require_scopes

Reader = Annotated[Principal, Depends(require_scopes("campaigns:read"))]
Writer = Annotated[Principal, Depends(require_scopes("campaigns:write"))]
Ctx = Annotated[Context, Depends(context_of(Context))]
ResourceId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
