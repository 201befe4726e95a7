"""HTTP API of ingest: `POST /v1/events` for channels, `/v1/api-keys` for operators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from crm_ingest import domain, handlers
from crm_ingest.domain import AcceptedEvent, ApiKey, BodyError, BodyProblem, EventCheck
from crm_ingest.settings import IngestSettings
from crm_kit.auth import Principal, require_scopes
from crm_kit.http import get_settings
from crm_kit.inputs import Offset
from crm_kit.logs import log_context
from crm_kit.problems import FieldError, ProblemError, problem_responses
from crm_kit.runtime import PoolDep, ProducerDep

router = APIRouter()

API_KEY_HEADER = "X-API-Key"
API_KEY_SCHEME = "ApiKey"
MAX_PAGE_SIZE = 500

# Whoever cannot reach the key store cannot be told whether the key is valid: 503, not 401.
_STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def get_ingest_settings(request: Request) -> IngestSettings:
    """The ingest settings of the app."""
    return cast(IngestSettings, get_settings(request))


_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="The channel's API key (`python -m crm_ingest create-key`); "
    "`Authorization: ApiKey <key>` works too.",
)


async def authenticate_channel(
    request: Request,
    pool: PoolDep,
    header_key: Annotated[str | None, Security(_api_key_header)],
) -> ApiKey:
    """The active API key of the request (`X-API-Key` or `Authorization: ApiKey`), else 401."""
    key = header_key or _authorization_key(request.headers.get("authorization"))
    if not key:
        raise _unauthorized(
            f"An API key is required: send `{API_KEY_HEADER}: <key>` "
            f"or `Authorization: {API_KEY_SCHEME} <key>`."
        )
    try:
        channel = await handlers.authenticate_channel(pool=pool, key=key.strip())
    except _STORE_ERRORS as exc:
        raise ProblemError(
            503,
            title="Key store unavailable",
            detail="API keys cannot be checked right now; retry later.",
            slug="key-store-unavailable",
            headers={"Retry-After": "1"},
        ) from exc
    if channel is None:
        raise _unauthorized("The API key is unknown or revoked.")
    return channel


def _authorization_key(value: str | None) -> str | None:
    scheme, _, credentials = (value or "").strip().partition(" ")
    return credentials if scheme.lower() == API_KEY_SCHEME.lower() else None


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401,
        title="Unauthorized",
        detail=detail,
        slug="unauthorized",
        headers={"WWW-Authenticate": API_KEY_SCHEME},
    )


Channel = Annotated[ApiKey, Depends(authenticate_channel)]
Settings = Annotated[IngestSettings, Depends(get_ingest_settings)]
ApiKeysReader = Annotated[Principal, Depends(require_scopes("apikeys:read"))]
ApiKeysWriter = Annotated[Principal, Depends(require_scopes("apikeys:write"))]


class EventResultOut(BaseModel):
    """What became of one event of the request."""

    index: int = Field(description="Position in the batch (0 for a single event).")
    id: str | None = Field(description="The event's `id`, when it has a text one.")
    status: Literal["accepted", "rejected"]
    reason: str | None = Field(
        None,
        description="Why it was rejected: malformed, missing_attribute, "
        "unsupported_specversion, unknown_type, invalid_attribute, invalid_data, "
        "type_not_accepted, source_not_allowed.",
    )
    errors: list[FieldError] | None = Field(None, description="What is wrong, field by field.")


class IngestResultOut(BaseModel):
    """Per-event outcome of `POST /v1/events` (also the extension members of its 422)."""

    accepted: int = Field(description="Events the broker acknowledged.")
    rejected: int = Field(description="Events not published.")
    results: list[EventResultOut]


def _json(outcome: IngestResultOut) -> dict[str, Any]:
    # `id` stays, null when the event had none; reason and errors only on rejected events.
    body = outcome.model_dump(mode="json")
    for result in body["results"]:
        for name in ("reason", "errors"):
            if result[name] is None:
                del result[name]
    return body


def _result(check: EventCheck) -> EventResultOut:
    if isinstance(check, AcceptedEvent):
        return EventResultOut(index=check.index, id=check.id, status="accepted")
    return EventResultOut(
        index=check.index,
        id=check.id,
        status="rejected",
        reason=check.reason,
        errors=[FieldError(path=issue.path, message=issue.message) for issue in check.errors],
    )


_BODY_STATUS: dict[BodyProblem, tuple[int, str, str]] = {
    "malformed_json": (400, "Malformed JSON", "malformed-json"),
    "wrong_shape": (400, "Not an event or a batch", "wrong-shape"),
    "empty_batch": (400, "Empty batch", "empty-batch"),
    "too_many_events": (413, "Too many events", "too-many-events"),
}

_EVENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One structured-mode CloudEvent of type crm.interaction.recorded, "
        "or a JSON array of them.",
        "content": {
            media_type: {
                "schema": {
                    "oneOf": [
                        {"type": "object"},
                        {"type": "array", "items": {"type": "object"}, "minItems": 1},
                    ]
                }
            }
            for media_type in (
                "application/json",
                "application/cloudevents+json",
                "application/cloudevents-batch+json",
            )
        },
    }
}


@router.post(
    "/v1/events",
    status_code=202,
    response_model=IngestResultOut,
    responses={
        202: {"description": "Every event accepted: the broker has them."},
        207: {"model": IngestResultOut, "description": "Some accepted, some rejected."},
        **problem_responses(400, 401, 413, 415, 422, 503),
    },
    openapi_extra=_EVENTS_BODY,
    summary="Publish interactions (one CloudEvent or a batch)",
)
async def post_events(
    request: Request, channel: Channel, producer: ProducerDep, settings: Settings
) -> JSONResponse:
    """Validate each event and publish the accepted ones to the raw interactions topic.

    The answer comes after the broker acknowledged every accepted event: 202 when all were
    accepted, 207 when some were rejected, 422 (a problem with the same members) when none
    was. A 503 guarantees nothing: send the whole request again; duplicates are dropped
    downstream by (source, id).
    """
    _require_json(request.headers.get("content-type"))
    body = await request.body()
    try:
        raw_events = domain.parse_events(body, max_events=settings.max_batch_events)
    except BodyError as exc:
        status, title, slug = _BODY_STATUS[exc.problem]
        raise ProblemError(status, title=title, detail=str(exc), slug=slug) from None
    with log_context(api_key_id=str(channel.id), source=channel.source):
        try:
            checks = await handlers.ingest_events(
                producer=producer,
                topic=settings.raw_topic,
                raw_events=raw_events,
                channel=channel,
                ack_timeout_seconds=settings.ack_timeout_seconds,
            )
        except handlers.BrokerUnavailableError as exc:
            raise ProblemError(
                503,
                title="Broker unavailable",
                detail="The broker did not acknowledge the events: none of them is guaranteed "
                "to be published. Send the whole request again; duplicates are dropped "
                "downstream by (source, id).",
                slug="broker-unavailable",
                headers={"Retry-After": "1"},
            ) from exc
    results = [_result(check) for check in checks]
    accepted = sum(1 for result in results if result.status == "accepted")
    outcome = IngestResultOut(accepted=accepted, rejected=len(results) - accepted, results=results)
    if accepted == 0:
        raise ProblemError(
            422,
            title="No event accepted",
            detail=f"All {len(results)} event(s) were rejected; see results.",
            slug="events-rejected",
            extensions=_json(outcome),
        )
    status = 202 if outcome.rejected == 0 else 207
    return JSONResponse(_json(outcome), status_code=status)


def _require_json(content_type: str | None) -> None:
    # Without a content type the body is taken as JSON; a form post (curl's default) is not.
    if content_type is None:
        return
    base = content_type.split(";", 1)[0].strip().lower()
    if base == "application/json" or base.endswith("+json"):
        return
    raise ProblemError(
        415,
        detail="Send the events as JSON: content-type application/json, "
        "application/cloudevents+json or application/cloudevents-batch+json.",
    )


Source = Annotated[
    str,
    Field(
        min_length=1,
        max_length=domain.MAX_SOURCE_LENGTH,
        description="The CloudEvents `source` the key may publish for, e.g. urn:channel:webshop.",
    ),
    AfterValidator(domain.check_source),
]


class ApiKeyIn(BaseModel):
    """A key to create for a channel."""

    model_config = ConfigDict(extra="forbid")

    source: Source
    description: str = Field(
        "", max_length=domain.MAX_DESCRIPTION_LENGTH, description="Who or what uses it."
    )


class ApiKeyOut(BaseModel):
    """A channel's API key, without its secret."""

    id: UUID
    source: str
    prefix: str = Field(description="The public start of the key, to recognise it.")
    description: str
    active: bool
    created_by: str = Field(description="Subject of the token (or `cli`) that created it.")
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")

    @classmethod
    def of(cls, api_key: ApiKey) -> ApiKeyOut:
        return cls(
            id=api_key.id,
            source=api_key.source,
            prefix=api_key.prefix,
            description=api_key.description,
            active=api_key.active,
            created_by=api_key.created_by,
            created_at=api_key.created_at,
            revoked_at=api_key.revoked_at,
            last_used_at=api_key.last_used_at,
        )


class CreatedApiKeyOut(ApiKeyOut):
    """A new key, with the key itself: this is the only time it is shown."""

    key: str = Field(description="Send as `X-API-Key`. Store it now: it is not kept.")


class ApiKeyPageOut(BaseModel):
    """One page of keys, oldest first."""

    items: list[ApiKeyOut]
    limit: int
    offset: int


@router.post(
    "/v1/api-keys",
    status_code=201,
    responses=problem_responses(401, 403, 422),
    summary="Create an API key for a channel",
)
async def create_api_key(
    body: ApiKeyIn, principal: ApiKeysWriter, pool: PoolDep, response: Response
) -> CreatedApiKeyOut:
    """Create a key; several keys of one source can be active at once (rotation)."""
    api_key, key = await handlers.create_api_key(
        pool=pool, source=body.source, description=body.description, created_by=principal.subject
    )
    response.headers["Location"] = f"/v1/api-keys/{api_key.id}"
    return CreatedApiKeyOut(**ApiKeyOut.of(api_key).model_dump(), key=key)


@router.get(
    "/v1/api-keys",
    responses=problem_responses(401, 403, 422),
    summary="List API keys",
)
async def list_api_keys(
    principal: ApiKeysReader,
    pool: PoolDep,
    source: Annotated[str | None, Query(max_length=domain.MAX_SOURCE_LENGTH)] = None,
    include_revoked: bool = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
    offset: Annotated[Offset, Query()] = 0,
) -> ApiKeyPageOut:
    """Keys of one source, or of all, oldest first; never their secrets."""
    keys = await handlers.list_api_keys(
        pool=pool, source=source, include_revoked=include_revoked, limit=limit, offset=offset
    )
    return ApiKeyPageOut(items=[ApiKeyOut.of(k) for k in keys], limit=limit, offset=offset)


@router.get(
    "/v1/api-keys/{key_id}",
    responses=problem_responses(401, 403, 404),
    summary="Show an API key",
)
async def get_api_key(key_id: UUID, principal: ApiKeysReader, pool: PoolDep) -> ApiKeyOut:
    """One key, without its secret."""
    return ApiKeyOut.of(await handlers.get_api_key(pool=pool, key_id=key_id))


@router.delete(
    "/v1/api-keys/{key_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404),
    summary="Revoke an API key",
)
async def revoke_api_key(key_id: UUID, principal: ApiKeysWriter, pool: PoolDep) -> Response:
    """Revoke a key: requests with it fail from now on. Revoking twice is harmless."""
    await handlers.revoke_api_key(pool=pool, key_id=key_id)
    return Response(status_code=204)
