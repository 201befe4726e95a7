"""HTTP API of the cases service: parse, call a handler (in a transaction), answer.

Scopes: `cases:read` for reads, `cases:write` for changes to cases, `admin` for SLA
policies, calendars, queues and agents. Errors are RFC 7807 problems (the kit's handlers).
"""

from fastapi import APIRouter

from crm_cases.api import cases, policies, queues
from crm_kit.problems import problem_responses

router = APIRouter(prefix="/v1", responses=problem_responses(401, 403, 422))
for feature in (cases, policies, queues):
    router.include_router(feature.router)

__all__ = ["router"]
