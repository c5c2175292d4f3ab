"""Bearer tokens (JWT, HS256) naming a tenant, verified statelessly by every service."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Request

from .errors import ApiError
from .settings import AuthSettings
from .vocab import ErrorCode

TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    #: An operator's token (``voxtrain`` CLI) may use the cross-tenant ``/v1/ops`` routes.
    operator: bool = False


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or signed with another key."""


def issue_token(
    settings: AuthSettings, tenant_id: str, ttl_seconds: int | None = None, *, operator: bool = False
) -> str:
    """A signed token for ``tenant_id`` (``operator``: also for the cross-tenant operations routes)."""
    if not TENANT_RE.match(tenant_id):
        raise ValueError("a tenant id is 1-63 lower-case letters, digits, '-' or '_'")
    now = int(time.time())
    claims = {
        "sub": tenant_id,
        "tenant": tenant_id,
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": now,
        "exp": now + (ttl_seconds or settings.token_ttl_seconds),
    }
    if operator:
        claims["operator"] = True
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def verify_token(settings: AuthSettings, token: str) -> Principal:
    """The principal a token names (raises :class:`InvalidToken`)."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=["HS256"],
            audience=settings.audience,
            issuer=settings.issuer,
            options={"require": ["exp", "sub", "tenant"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    tenant = claims.get("tenant")
    if not isinstance(tenant, str) or not TENANT_RE.match(tenant):
        raise InvalidToken("token names no valid tenant")
    return Principal(tenant, operator=claims.get("operator") is True)


def bearer(header: str | None) -> str:
    """The token in an ``Authorization: Bearer …`` value (raises :class:`InvalidToken`)."""
    if not header or not header.lower().startswith("bearer "):
        raise InvalidToken("missing bearer token")
    return header[7:].strip()


def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller's tenant, from ``app.state.auth_settings``."""
    settings: AuthSettings = request.app.state.auth_settings
    try:
        return verify_token(settings, bearer(request.headers.get("authorization")))
    except InvalidToken as exc:
        raise ApiError(
            401,
            ErrorCode.UNAUTHORIZED,
            f"A valid bearer token is required ({exc}). Get one with `voxtrain token TENANT`.",
        ) from exc


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def current_operator(principal: CurrentPrincipal) -> Principal:
    """FastAPI dependency: the caller, who must hold an operator's token."""
    if not principal.operator:
        raise ApiError(
            403, ErrorCode.FORBIDDEN, "This operations route needs an operator's token (the `voxtrain` CLI signs one)."
        )
    return principal


CurrentOperator = Annotated[Principal, Depends(current_operator)]
