"""RFC 7807 `application/problem+json` error bodies for every HTTP API.

Use cases raise domain errors (`crm_kit.errors`), routes may raise `ProblemError`;
`install_problem_handlers(app)` turns both, FastAPI's `HTTPException`, request validation
errors and unhandled exceptions into problem responses. A domain error answers the status of
its class (`domain_problem`), its reason as the problem type, its extensions as members.
Validation problems list field paths and messages only, never the submitted values (they can
hold PII); 500s say nothing about the exception, which goes to the logs instead.

The OpenAPI document says so too: every problem response is `application/problem+json` with
the `Problem` schema, and the problems the kit answers on any route (422 for invalid
parameters or bodies, 400 and 413 for unreadable or oversized bodies, 401 where a route is
secured) are listed on every operation they can come from, instead of FastAPI's default
`HTTPValidationError`, which the services never send.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from crm_kit.errors import Conflict, DomainError, Gone, InvalidCursor, InvalidInput, NotFound
from crm_kit.logs import log_context

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://crm-backbone.dev/problems/"

logger = logging.getLogger(__name__)

# Slugs of the problems the kit itself produces; a route picks its own for domain problems.
_STATUS_SLUGS: dict[int, str] = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}


class FieldError(BaseModel):
    """One invalid field of a request: where it is and what is wrong with it."""

    path: str = Field(description="Dotted location, e.g. `body.data.identity`.")
    message: str


class Problem(BaseModel):
    """RFC 7807 problem details; extension members are allowed."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI identifying the kind of problem.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="HTTP status code.")
    detail: str | None = Field(None, description="Explanation of this occurrence.")
    instance: str | None = Field(None, description="Path of the request that failed.")
    errors: list[FieldError] | None = Field(None, description="Invalid fields (422 only).")


def problem_type(slug: str) -> str:
    """Return the type URI of a problem slug."""
    return PROBLEM_TYPE_BASE + slug


def status_title(status: int) -> str:
    """Return the HTTP reason phrase of a status, or a generic title for unknown codes."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def status_slug(status: int) -> str:
    """Return the kit's default problem slug for a status."""
    if status in _STATUS_SLUGS:
        return _STATUS_SLUGS[status]
    return status_title(status).lower().replace(" ", "-").replace("'", "")


class ProblemError(Exception):
    """An error a route or handler raises to answer with a problem response."""

    def __init__(
        self,
        status: int,
        *,
        title: str | None = None,
        detail: str | None = None,
        slug: str | None = None,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.title = title or status_title(status)
        self.detail = detail
        self.slug = slug or status_slug(status)
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})
        super().__init__(detail or self.title)

    def to_problem(self, *, instance: str | None = None) -> Problem:
        """Return the problem body of this error."""
        return Problem(
            type=problem_type(self.slug),
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            errors=self.errors or None,
            **self.extensions,
        )


# Most specific first: an InvalidCursor is an InvalidInput answered 400, not 422.
_DOMAIN_STATUSES: tuple[tuple[type[DomainError], int], ...] = (
    (InvalidCursor, 400),
    (NotFound, 404),
    (Conflict, 409),
    (Gone, 410),
    (InvalidInput, 422),
)


def domain_problem(error: DomainError) -> ProblemError:
    """The problem a domain error answers over HTTP (a bare DomainError: 422)."""
    status = next((code for kind, code in _DOMAIN_STATUSES if isinstance(error, kind)), 422)
    return ProblemError(status, detail=error.detail, slug=error.reason, extensions=error.extensions)


def problem_response(problem: Problem, *, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """Return `problem` as an `application/problem+json` response."""
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=problem.status,
        headers=dict(headers) if headers else None,
        media_type=PROBLEM_MEDIA_TYPE,
    )


PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _problem_response(status: int) -> dict[str, Any]:
    return {
        "description": status_title(status),
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
    }


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entry documenting problem bodies for the given statuses."""
    return {status: _problem_response(status) for status in statuses}


def _is_problem_ref(content: Any) -> bool:
    schema = content.get("schema") if isinstance(content, dict) else None
    return isinstance(schema, dict) and schema.get("$ref") in (
        PROBLEM_SCHEMA_REF,
        "#/components/schemas/HTTPValidationError",
    )


def _kit_statuses(operation: dict[str, Any]) -> list[int]:
    """The problems the kit itself can answer on an operation."""
    statuses = []
    if operation.get("parameters") or "requestBody" in operation:
        statuses.append(422)
    if "requestBody" in operation:
        statuses += [400, 413]
    if operation.get("security"):
        statuses.append(401)
    return statuses


def _document_operation(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for code, response in responses.items():
        content = response.get("content") if isinstance(response, dict) else None
        if not code.isdigit() or int(code) < 400 or not isinstance(content, dict):
            continue
        if PROBLEM_MEDIA_TYPE in content or _is_problem_ref(content.get("application/json")):
            # The kit answers every error as problem+json, never as application/json.
            if _is_problem_ref(content.get("application/json")):
                del content["application/json"]
            content[PROBLEM_MEDIA_TYPE] = {"schema": {"$ref": PROBLEM_SCHEMA_REF}}
        if code == "422" and response.get("description") == "Validation Error":
            response["description"] = status_title(422)
    for status in _kit_statuses(operation):
        responses.setdefault(str(status), _problem_response(status))


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI document whose every error response is a problem with its schema."""
    out = copy.deepcopy(document)
    for path_item in out.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "responses" in operation:
                _document_operation(operation)
    schemas: dict[str, Any] = out.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    return out


def _openapi_with_problems(app: FastAPI) -> Callable[[], dict[str, Any]]:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(build())
        return app.openapi_schema

    return openapi


def validation_errors(exc: RequestValidationError) -> list[FieldError]:
    """Field paths and messages of a validation error, without the offending input."""
    return [
        FieldError(
            path=".".join(str(part) for part in error.get("loc", ())),
            message=str(error.get("msg", "invalid")),
        )
        for error in exc.errors()
    ]


async def _handle_problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.to_problem(instance=request.url.path), headers=exc.headers)


async def _handle_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_response(domain_problem(exc).to_problem(instance=request.url.path))


async def _handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error = ProblemError(
        exc.status_code,
        detail=exc.detail if isinstance(exc.detail, str) else None,
        headers=exc.headers,
    )
    return problem_response(error.to_problem(instance=request.url.path), headers=error.headers)


async def _handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc)
    error = ProblemError(
        422,
        title="Request validation failed",
        detail=f"{len(errors)} invalid field(s)",
        errors=errors,
    )
    return problem_response(error.to_problem(instance=request.url.path))


async def _handle_unhandled(request: Request, exc: Exception) -> JSONResponse:
    # Starlette runs this handler outside the middlewares, after the request's log context
    # was left: take the ids back from the request state.
    state = request.scope.get("state") or {}
    request_id = state.get("request_id")
    with log_context(request_id=request_id, correlation_id=state.get("correlation_id")):
        logger.error(
            "unhandled error",
            exc_info=exc,
            extra={"method": request.method, "error_type": type(exc).__name__},
        )
    extensions = {"request_id": request_id} if request_id else None
    error = ProblemError(
        500,
        title="Internal error",
        detail="The request failed; the error was logged.",
        extensions=extensions,
    )
    return problem_response(error.to_problem(instance=request.url.path))


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of `app` with an RFC 7807 problem body, and document them so."""
    app.openapi = _openapi_with_problems(app)  # type: ignore[method-assign]
    app.add_exception_handler(ProblemError, _handle_problem_error)
    app.add_exception_handler(DomainError, _handle_domain_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(Exception, _handle_unhandled)
