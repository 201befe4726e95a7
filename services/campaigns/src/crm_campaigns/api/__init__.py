"""HTTP API of the campaigns service: parse, call a handler (in a transaction), answer.

Scopes: `campaigns:read` for reads (previews and stats too), `campaigns:write` for changes
to campaigns, segments and frequency caps. Errors are RFC 7807 problems (the kit's
handlers).
"""

from fastapi import APIRouter

from crm_campaigns.api import campaigns, caps, segments
from crm_kit.problems import problem_responses

router = APIRouter(prefix="/v1", responses=problem_responses(401, 403, 422))
for feature in (campaigns, segments, caps):
    router.include_router(feature.router)

__all__ = ["router"]
