"""Bearer tokens and scopes on a tiny app built with the kit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import SecretStr, ValidationError

from crm_kit.auth import Principal, issue_token, require_scopes, validate_scope
from crm_kit.http import create_service_app
from crm_kit.settings import ServiceSettings

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
ContactsReader = Annotated[Principal, Depends(require_scopes("contacts:read"))]


async def _all_ready() -> dict[str, bool]:
    return {}


def _settings() -> ServiceSettings:
    return ServiceSettings(environment="test", jwt_secret=SecretStr(SECRET))


def _app() -> FastAPI:
    app = create_service_app(
        settings=_settings(), title="auth-test", version="0", readiness=_all_ready
    )

    @app.get("/contacts/{contact_id}")
    async def get_contact(contact_id: str, principal: ContactsReader) -> dict[str, str]:
        return {"contact_id": contact_id, "subject": principal.subject}

    return app


def _token(
    *scopes: str,
    secret: str = SECRET,
    subject: str = "dev",
    now: datetime | None = None,
    ttl_seconds: int = 3600,
) -> str:
    settings = _settings()
    return issue_token(
        secret=secret,
        scopes=scopes,
        subject=subject,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=ttl_seconds,
        now=now,
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://kit") as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_from_issue_token_with_the_scope_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    token = _token("contacts:read", subject="alice")

    response = await client.get("/contacts/c-1", headers=_bearer(token))

    assert response.status_code == 200
    assert response.json() == {"contact_id": "c-1", "subject": "alice"}


async def test_a_request_without_a_token_gets_401_with_a_problem_and_a_bearer_challenge(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/contacts/c-1")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://crm-backbone.dev/problems/unauthorized"
    assert body["status"] == 401
    assert body["instance"] == "/contacts/c-1"


async def test_a_token_without_the_scope_gets_403_naming_the_scope(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/contacts/c-1", headers=_bearer(_token("contacts:write")))

    assert response.status_code == 403
    body = response.json()
    assert "contacts:read" in body["detail"]
    assert body["missing_scopes"] == ["contacts:read"]
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_admin_scope_grants_every_scope(client: httpx.AsyncClient) -> None:
    response = await client.get("/contacts/c-1", headers=_bearer(_token("admin")))

    assert response.status_code == 200


async def test_an_expired_token_gets_401(client: httpx.AsyncClient) -> None:
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    token = _token("contacts:read", now=two_hours_ago, ttl_seconds=3600)

    response = await client.get("/contacts/c-1", headers=_bearer(token))

    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_token_signed_with_another_secret_gets_401(client: httpx.AsyncClient) -> None:
    token = _token("contacts:read", secret="another-secret-that-is-long-enough-for-hs256")

    response = await client.get("/contacts/c-1", headers=_bearer(token))

    assert response.status_code == 401
    assert response.json()["type"].endswith("/unauthorized")


async def test_a_token_for_another_audience_gets_401(client: httpx.AsyncClient) -> None:
    token = issue_token(
        secret=SECRET, scopes=["contacts:read"], issuer="crm-backbone", audience="elsewhere"
    )

    response = await client.get("/contacts/c-1", headers=_bearer(token))

    assert response.status_code == 401


async def test_a_malformed_token_gets_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/contacts/c-1", headers=_bearer("not.a.jwt"))

    assert response.status_code == 401


def test_scopes_follow_resource_colon_read_or_write() -> None:
    assert validate_scope("contacts:read") == "contacts:read"
    assert validate_scope("privacy:erase") == "privacy:erase"
    with pytest.raises(ValueError):
        validate_scope("contacts:delete")
    with pytest.raises(ValueError):
        require_scopes("Contacts:Read")


def test_a_placeholder_secret_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        ServiceSettings(environment="production", jwt_secret=SecretStr("change-me"))


def test_the_development_secret_is_refused_in_production_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CRM_JWT_SECRET", raising=False)
    with pytest.raises(ValidationError, match="placeholder"):
        ServiceSettings(environment="production")
