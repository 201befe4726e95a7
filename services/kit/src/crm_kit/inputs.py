"""What a request may carry into a service: storable text everywhere, bounded numbers and times.

`install_input_guard(app)` (done by `create_service_app`) answers 422 before any route runs
when a path parameter, a query parameter, a header or a string of a JSON body holds text
Postgres cannot store (a NUL character, a lone surrogate): one guard for every string that
could reach a database, instead of one check per field. The problem names the place
(`path.contact_id`, `query.q`, `body.first_name`) and never the value.

Numbers and times are typed instead, so that their bounds show in the OpenAPI document:

    offset: Annotated[Offset, Query()] = 0          # 0 to 2^63-1 (a Postgres bigint)
    before: Annotated[RowId | None, Query()] = None  # 1 to 2^63-1
    as_of: Annotated[Instant | None, Query()] = None  # 1900-01-01 to 9999-01-01
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator, AwareDatetime, Field

from crm_contracts.storable import (
    INSTANT_MESSAGE,
    INT64_MAX,
    first_problem,
    instant_problem,
    text_problem,
)


def _check_instant(value: Any) -> Any:
    if instant_problem(value) is not None:
        raise ValueError(INSTANT_MESSAGE)
    return value


Offset = Annotated[
    int, Field(ge=0, le=INT64_MAX, description="How many items to skip (0 to 2^63-1).")
]
RowId = Annotated[int, Field(ge=1, le=INT64_MAX, description="A row id (1 to 2^63-1).")]
Instant = Annotated[
    AwareDatetime,
    AfterValidator(_check_instant),
    Field(description="RFC 3339 with a zone, from 1900-01-01T00:00:00Z to 9999-01-01T00:00:00Z."),
]


def _error(location: tuple[str | int, ...], message: str) -> dict[str, Any]:
    return {"type": "unstorable_value", "loc": location, "msg": message, "input": None}


def _text_errors(location: str, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for name, value in pairs:
        if (problem := text_problem(name)) is not None:
            errors.append(_error((location,), f"a name {problem}"))
        elif (problem := text_problem(value)) is not None:
            errors.append(_error((location, name), problem))
    return errors


async def _body_errors(request: Request) -> list[dict[str, Any]]:
    # Only routes that declare a body have it parsed as JSON by FastAPI (and cached on the
    # request, so this parses nothing again); the others read their body themselves.
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None or not await request.body():
        return []
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return []  # FastAPI has answered a malformed body already; never reached
    found = first_problem(body)
    if found is None:
        return []
    location, problem = found
    return [_error(("body", *location), problem)]


async def reject_unstorable_input(request: Request) -> None:
    """App-wide dependency: a 422 problem for text no service can store, wherever it came."""
    errors = [
        *_text_errors("path", [(k, str(v)) for k, v in request.path_params.items()]),
        *_text_errors("query", list(request.query_params.multi_items())),
        *_text_errors("header", list(request.headers.items())),
        *await _body_errors(request),
    ]
    if errors:
        raise RequestValidationError(errors)


def install_input_guard(app: FastAPI) -> None:
    """Guard every route of `app` included from now on (call before `include_router`)."""
    app.router.dependencies.append(Depends(reject_unstorable_input))
