"""Bearer-JWT authentication with scopes, as a FastAPI dependency.

Tokens are HS256 JWTs signed with the settings' `jwt_secret`, with `iss` and `aud` equal to
`jwt_issuer` and `jwt_audience`, and the claims `sub`, `scope` (space-separated, OAuth2
style), `iat` and `exp`. `crmctl token` issues them with `issue_token()`.

Scopes are `<resource>:read` and `<resource>:write` (`contacts:read`, `cases:write`), plus
`privacy:erase` and `admin`. A scope grants exactly what it names: `contacts:write` does not
imply `contacts:read`. `admin` grants every scope (operators and local development only).

    ContactsReader = Annotated[Principal, Depends(require_scopes("contacts:read"))]

    @router.get("/contacts/{contact_id}")
    async def get_contact(contact_id: UUID, principal: ContactsReader) -> ContactOut: ...
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crm_kit.http import get_settings
from crm_kit.problems import ProblemError

ADMIN_SCOPE = "admin"
ALGORITHM = "HS256"
# Tolerated clock difference between the issuer and this service.
LEEWAY_SECONDS = 5

_SCOPE_PATTERN = re.compile(r"[a-z][a-z0-9_-]*:(read|write)|privacy:erase|admin")
_REQUIRED_CLAIMS = ["sub", "scope", "iat", "exp", "iss", "aud"]

_bearer = HTTPBearer(
    auto_error=False,
    description="JWT with the scopes the route needs (`crmctl token --scope ...`).",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller a valid token identifies, with the scopes it grants."""

    subject: str
    scopes: frozenset[str]

    def has_scope(self, scope: str) -> bool:
        """Whether the token grants `scope` (`admin` grants all)."""
        return scope in self.scopes or ADMIN_SCOPE in self.scopes


class InvalidTokenError(Exception):
    """A bearer token that is malformed, badly signed, expired or for someone else."""


def validate_scope(scope: str) -> str:
    """Return `scope` if it is well formed, else raise `ValueError`."""
    if not _SCOPE_PATTERN.fullmatch(scope):
        raise ValueError(
            f"invalid scope {scope!r}: use <resource>:read, <resource>:write, "
            "privacy:erase or admin"
        )
    return scope


def issue_token(
    *,
    secret: str,
    scopes: Sequence[str],
    subject: str = "dev",
    issuer: str,
    audience: str,
    ttl_seconds: int = 3600,
    now: datetime | None = None,
) -> str:
    """Return a signed bearer token granting `scopes` to `subject` for `ttl_seconds`."""
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    if not subject:
        raise ValueError("subject must not be empty")
    issued_at = now or datetime.now(UTC)
    claims = {
        "sub": subject,
        "scope": " ".join(validate_scope(scope) for scope in scopes),
        "iss": issuer,
        "aud": audience,
        "iat": int(issued_at.timestamp()),
        "exp": int((issued_at + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, *, secret: str, issuer: str, audience: str) -> Principal:
    """Return the principal of a valid token, else raise `InvalidTokenError`."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidTokenError("token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidTokenError("invalid token") from exc
    subject, scope = claims["sub"], claims["scope"]
    if not isinstance(subject, str) or not subject or not isinstance(scope, str):
        raise InvalidTokenError("invalid token")
    return Principal(subject=subject, scopes=frozenset(scope.split()))


def _unauthorized(detail: str, *, bearer_error: str | None) -> ProblemError:
    challenge = f'Bearer error="{bearer_error}"' if bearer_error else "Bearer"
    return ProblemError(
        401,
        title="Unauthorized",
        detail=detail,
        slug="unauthorized",
        headers={"WWW-Authenticate": challenge},
    )


def require_scopes(*scopes: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency that authenticates the bearer token and demands every scope given."""
    needed = tuple(validate_scope(scope) for scope in scopes)

    async def authenticate(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise _unauthorized("A bearer token is required.", bearer_error=None)
        settings = get_settings(request)
        try:
            principal = verify_token(
                credentials.credentials,
                secret=settings.jwt_secret.get_secret_value(),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
            )
        except InvalidTokenError as exc:
            raise _unauthorized(
                f"The bearer token is rejected: {exc}.", bearer_error="invalid_token"
            ) from exc
        missing = [scope for scope in needed if not principal.has_scope(scope)]
        if missing:
            raise ProblemError(
                403,
                title="Forbidden",
                detail=f"The token lacks the scope(s): {' '.join(missing)}.",
                slug="insufficient-scope",
                headers={
                    "WWW-Authenticate": (
                        f'Bearer error="insufficient_scope", scope="{" ".join(needed)}"'
                    )
                },
                extensions={"missing_scopes": missing},
            )
        return principal

    return authenticate
