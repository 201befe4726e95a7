"""The FastAPI pieces every service uses: app factory, probes, metrics, request context.

    app = create_service_app(
        settings=settings, title="contacts", version="1.0.0",
        lifespan=lifespan, readiness=readiness,
    )
    app.include_router(api.router)

gives `GET /livez` (no I/O), `GET /readyz` (runs `readiness()`), `GET /metrics`
(Prometheus text, unauthenticated: keep it on the cluster network), RFC 7807 errors, JSON
logs carrying the request and correlation ids, HTTP metrics by route template, and a bound
on request bodies (413 past `max_body_bytes`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from crm_kit.inputs import install_input_guard
from crm_kit.logs import configure_logging, log_context
from crm_kit.metrics import metrics_response, record_http_request
from crm_kit.problems import ProblemError, install_problem_handlers, problem_response
from crm_kit.settings import ServiceSettings

Readiness = Callable[[], Awaitable[dict[str, bool]]]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_HEADER = "X-Correlation-ID"
UNMATCHED_ROUTE = "<unmatched>"

logger = logging.getLogger(__name__)

# Ids taken from request headers end up in logs and events: accept short opaque tokens only.
_CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def create_service_app(
    *,
    settings: ServiceSettings,
    title: str,
    version: str,
    readiness: Readiness,
    lifespan: Lifespan[FastAPI] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    readiness_timeout_seconds: float = 5.0,
) -> FastAPI:
    """Build a service's FastAPI app with the kit's probes, errors, logs, metrics and limits."""
    service = type(settings).service_name
    configure_logging(service, settings.log_level)
    app = FastAPI(title=title, version=version, lifespan=lifespan)
    app.state.settings = settings
    install_problem_handlers(app)
    install_input_guard(app)
    # The last middleware added runs first: the context wraps the body limit, so that
    # refused bodies are counted and logged with their request id.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=max_body_bytes)
    app.add_middleware(RequestContextMiddleware, service=service)

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await run_readiness(readiness, timeout_seconds=readiness_timeout_seconds)
        failing = sorted(name for name, ok in checks.items() if not ok)
        if not failing:
            return JSONResponse({"status": "ok", "checks": checks})
        error = ProblemError(
            503,
            title="Not ready",
            detail=f"Failing checks: {', '.join(failing)}.",
            slug="not-ready",
            extensions={"checks": checks, "failing": failing},
        )
        return problem_response(error.to_problem(instance="/readyz"))

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return metrics_response()

    return app


async def run_readiness(readiness: Readiness, *, timeout_seconds: float) -> dict[str, bool]:
    """Run the readiness checks; an exception or a timeout is one failed `readiness` check."""
    try:
        async with asyncio.timeout(timeout_seconds):
            checks = await readiness()
    except Exception as exc:
        logger.warning("readiness checks raised", extra={"error_type": type(exc).__name__})
        return {"readiness": False}
    return {name: bool(ok) for name, ok in checks.items()}


def get_settings(request: Request) -> ServiceSettings:
    """The settings `create_service_app` stored on the app."""
    settings = getattr(request.app.state, "settings", None)
    if not isinstance(settings, ServiceSettings):
        raise RuntimeError("app.state.settings is not set: build the app with create_service_app")
    return settings


def get_request_id(request: Request) -> str:
    """The id of this request (`X-Request-ID`, echoed or generated)."""
    return _state_value(request, "request_id")


def get_correlation_id(request: Request) -> str:
    """The correlation id (`X-Correlation-ID`, or the request id): put it on published events."""
    return _state_value(request, "correlation_id")


def _state_value(request: Request, name: str) -> str:
    value = getattr(request.state, name, None)
    if not isinstance(value, str):
        raise RuntimeError(f"request.state.{name} is not set: add RequestContextMiddleware")
    return value


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
CorrelationIdDep = Annotated[str, Depends(get_correlation_id)]


class RequestContextMiddleware:
    """Request and correlation ids (headers, state, log context) and the HTTP metrics."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = _client_id(headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex
        correlation_id = _client_id(headers.get(CORRELATION_ID_HEADER)) or request_id
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["correlation_id"] = correlation_id
        status = 500

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                response_headers = MutableHeaders(scope=message)
                response_headers[REQUEST_ID_HEADER] = request_id
                response_headers[CORRELATION_ID_HEADER] = correlation_id
            await send(message)

        started = time.perf_counter()
        try:
            with log_context(
                service=self.service, request_id=request_id, correlation_id=correlation_id
            ):
                await self.app(scope, receive, send_with_ids)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            record_http_request(
                service=self.service,
                method=method,
                route=route_template(scope),
                status=status,
                duration_seconds=time.perf_counter() - started,
            )


def route_template(scope: Scope) -> str:
    """The template of the route a request matched (`/contacts/{contact_id}`), never its path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED_ROUTE


def _client_id(value: str | None) -> str | None:
    return value if value is not None and _CLIENT_ID_PATTERN.fullmatch(value) else None


class BodyTooLargeError(StarletteHTTPException):
    """A request body longer than the service accepts."""

    def __init__(self, max_body_bytes: int) -> None:
        super().__init__(413, detail=f"The request body exceeds {max_body_bytes} bytes.")


class BodySizeLimitMiddleware:
    """Answer 413 when the app reads a body over `max_body_bytes`.

    A body whose Content-Length is too long is refused at the first read, before any byte of
    it is received; a chunked one as soon as the bytes received pass the limit.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        too_long = (
            declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes
        )
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            # Refusing at the first read rather than before routing lets the metrics carry the
            # route template; no byte of a body declared too long is read either way.
            nonlocal received
            if too_long:
                raise BodyTooLargeError(self.max_body_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # FastAPI lets HTTPExceptions raised while reading the body through to the
                    # problem handlers; other apps fall back to the except clause below.
                    raise BodyTooLargeError(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            if response_started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = ProblemError(413, detail=BodyTooLargeError(self.max_body_bytes).detail)
        response = problem_response(error.to_problem(instance=scope.get("path")))
        await response(scope, receive, send)
