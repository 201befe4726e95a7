"""What the routes take besides their body: scopes and the use-case context. The database
connection (`ConnectionDep`) and the Idempotency-Key header (`IdempotencyKey`) are the kit's."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from crm_contacts.handlers import Context
from crm_kit.api import context_of
from crm_kit.auth import Principal, require_scopes

Reader = Annotated[Principal, Depends(require_scopes("contacts:read"))]
Writer = Annotated[Principal, Depends(require_scopes("contacts:write"))]
Eraser = Annotated[Principal, Depends(require_scopes("privacy:erase"))]
Ctx = Annotated[Context, Depends(context_of(Context))]
