"""Probes, problem bodies, metrics, request ids and body limits of `create_service_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, SecretStr

from crm_kit.http import CorrelationIdDep, create_service_app
from crm_kit.problems import ProblemError
from crm_kit.settings import ServiceSettings

Readiness = Callable[[], Awaitable[dict[str, bool]]]


class Identity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identity: str
    weight: int


class Interaction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: Identity


class HttpTestSettings(ServiceSettings):
    service_name = "http-test"


async def _ready() -> dict[str, bool]:
    return {"database": True, "partitions": True}


def _app(readiness: Readiness = _ready, max_body_bytes: int = 1024) -> FastAPI:
    app = create_service_app(
        settings=HttpTestSettings(environment="test", jwt_secret=SecretStr("x" * 40)),
        title="http-test",
        version="0",
        readiness=readiness,
        max_body_bytes=max_body_bytes,
    )

    @app.get("/contacts/{contact_id}")
    async def get_contact(contact_id: str) -> dict[str, str]:
        return {"contact_id": contact_id}

    @app.post("/interactions")
    async def post_interaction(body: Interaction) -> dict[str, str]:
        return {"identity": body.data.identity}

    @app.get("/correlation")
    async def correlation(correlation_id: CorrelationIdDep) -> dict[str, str]:
        return {"correlation_id": correlation_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("database password is hunter2")

    @app.get("/conflict")
    async def conflict() -> None:
        raise ProblemError(409, title="Contact already merged", slug="already-merged")

    return app


async def _client_for(app: FastAPI) -> httpx.AsyncClient:
    # Starlette re-raises unhandled errors after answering 500, for the server to log.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://kit")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with await _client_for(_app()) as client:
        yield client


async def test_livez_answers_ok_without_io(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_with_the_checks_when_all_pass(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": True, "partitions": True}}


async def test_readyz_answers_503_naming_the_failing_check() -> None:
    async def database_down() -> dict[str, bool]:
        return {"database": False, "partitions": True}

    async with await _client_for(_app(readiness=database_down)) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["failing"] == ["database"]
    assert "database" in body["detail"]
    assert body["checks"] == {"database": False, "partitions": True}


async def test_a_readiness_check_that_raises_counts_as_failed() -> None:
    async def broken() -> dict[str, bool]:
        raise ConnectionError("no route to 10.0.0.7")

    async with await _client_for(_app(readiness=broken)) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["readiness"]
    assert "10.0.0.7" not in response.text


async def test_a_validation_error_is_a_422_problem_with_field_paths(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/interactions", json={"data": {"weight": "heavy", "email": "a@example.com"}}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://crm-backbone.dev/problems/validation-failed"
    paths = {error["path"] for error in body["errors"]}
    assert paths == {"body.data.identity", "body.data.weight", "body.data.email"}
    assert all(error["message"] for error in body["errors"])
    # Submitted values may be PII: the problem never echoes them.
    assert "a@example.com" not in response.text
    assert "heavy" not in response.text


async def test_an_unhandled_error_is_a_500_problem_without_the_exception_text(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/boom")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://crm-backbone.dev/problems/internal-error"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text


async def test_a_problem_error_raised_by_a_route_becomes_its_problem_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/conflict")

    assert response.status_code == 409
    assert response.json() == {
        "type": "https://crm-backbone.dev/problems/already-merged",
        "title": "Contact already merged",
        "status": 409,
        "instance": "/conflict",
    }


async def test_an_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")

    assert response.status_code == 404
    assert response.json()["type"] == "https://crm-backbone.dev/problems/not-found"


async def test_metrics_count_requests_by_route_template_not_raw_path(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/contacts/c-8d1f0a")

    text = (await client.get("/metrics")).text

    assert "crm_http_requests_total{" in text
    assert 'route="/contacts/{contact_id}"' in text
    assert "c-8d1f0a" not in text
    assert 'service="http-test"' in text


async def test_several_apps_in_one_process_share_the_metrics_without_conflict() -> None:
    for _ in range(3):
        async with await _client_for(_app()) as client:
            assert (await client.get("/livez")).status_code == 200


async def test_a_request_id_is_echoed_and_a_missing_one_is_generated(
    client: httpx.AsyncClient,
) -> None:
    echoed = await client.get("/livez", headers={"X-Request-ID": "req-123"})
    generated = await client.get("/livez")

    assert echoed.headers["x-request-id"] == "req-123"
    assert generated.headers["x-request-id"]
    assert generated.headers["x-request-id"] != "req-123"


async def test_the_correlation_id_header_reaches_the_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/correlation", headers={"X-Correlation-ID": "corr-42"})

    assert response.json() == {"correlation_id": "corr-42"}
    assert response.headers["x-correlation-id"] == "corr-42"


async def test_a_body_declared_larger_than_the_limit_is_refused_with_413(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/interactions",
        content=b"{" + b" " * 2048 + b"}",
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://crm-backbone.dev/problems/body-too-large"
    metrics = (await client.get("/metrics")).text
    assert 'route="/interactions",service="http-test",status="413"' in metrics


async def test_a_chunked_body_growing_past_the_limit_is_refused_with_413(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"data": {"identity": "'
        for _ in range(8):
            yield b"x" * 256
        yield b'", "weight": 1}}'

    response = await client.post(
        "/interactions", content=chunks(), headers={"content-type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["type"] == "https://crm-backbone.dev/problems/body-too-large"


async def test_a_body_within_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/interactions", json={"data": {"identity": "i-1", "weight": 1}})

    assert response.status_code == 200
    assert response.json() == {"identity": "i-1"}
