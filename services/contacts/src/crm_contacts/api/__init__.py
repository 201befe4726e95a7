"""HTTP API of the contacts service: parse, call a handler (in a transaction), answer.

Scopes: `contacts:read` for reads, `contacts:write` for changes, `privacy:erase` for the
export and the erasure of a person. Errors are RFC 7807 problems (the kit's handlers).
"""

from fastapi import APIRouter

from crm_contacts.api import (
    accounts,
    consent,
    contacts,
    identifiers,
    lifecycle,
    privacy,
    resolution,
    timeline,
)
from crm_kit.problems import problem_responses

router = APIRouter(prefix="/v1", responses=problem_responses(401, 403, 422))
# In this order, the paths of the OpenAPI document read contact first, then its parts.
for feature in (contacts, identifiers, lifecycle, consent, resolution, timeline, privacy, accounts):
    router.include_router(feature.router)

__all__ = ["router"]
