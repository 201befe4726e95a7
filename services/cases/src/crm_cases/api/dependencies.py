"""What the routes take besides their body: scopes and the use-case context. The database
connection (`ConnectionDep`) and the Idempotency-Key header (`IdempotencyKey`) are the kit's."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from crm_cases.handlers.context import Context
from crm_kit.api import context_of
from crm_kit.auth import ADMIN_SCOPE, Principal, require_scopes

Reader = Annotated[Principal, Depends(require_scopes("cases:read"))]
Writer = Annotated[Principal, Depends(require_scopes("cases:write"))]
Admin = Annotated[Principal, Depends(require_scopes(ADMIN_SCOPE))]
Ctx = Annotated[Context, Depends(context_of(Context))]
