"""Bearer tokens (JWT, EdDSA/Ed25519) naming a tenant and its scopes, verified statelessly by every service.

Only the issuers hold the private key (``VOXTRAIN_AUTH__PRIVATE_KEY``): the identity service, which exchanges
API keys for short-lived tokens, and the operator's ``voxtrain`` CLI. Every service verifies with the public
key(s) in ``VOXTRAIN_AUTH__PUBLIC_KEY``; a token's ``kid`` header names the key that signed it, so a new
signing key can be added beside the old one while tokens signed with the old one expire (key rotation).

Scopes: ``read`` (GET routes, transcription), ``write`` (create, update, delete, upload) and ``train``
(start or cancel a training). :func:`current_principal` asks for ``read`` on GET/HEAD and ``write`` on any
other method; routes that start or stop a training ask for ``train`` with :data:`TrainPrincipal`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, Request

from .errors import ApiError
from .settings import AuthSettings
from .vocab import ErrorCode, Scope

TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ALGORITHM = "EdDSA"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)


def parse_scopes(value: Iterable[str] | str) -> frozenset[Scope]:
    """Scopes from ``"read write"`` / ``"read,write"`` / a list (raises ValueError naming an unknown one)."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    try:
        return frozenset(Scope(s.strip().lower()) for s in items if s.strip())
    except ValueError:
        raise ValueError(f"scopes are {', '.join(s.value for s in Scope)} (got {', '.join(items)})") from None


def scope_text(scopes: Iterable[Scope]) -> str:
    """Space-separated, in a stable order (the ``scope`` claim)."""
    return " ".join(s.value for s in Scope if s in set(scopes))


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    #: An operator's token (``voxtrain`` CLI) may use the cross-tenant ``/v1/ops`` routes.
    operator: bool = False
    scopes: frozenset[Scope] = field(default=ALL_SCOPES)
    #: who: ``key:<api key id>`` for tokens exchanged for an API key, else the tenant (or ``operator``)
    subject: str = ""
    #: when the API key this token was exchanged for expires (epoch seconds; None: never, or no key)
    key_expires_at: int | None = None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or signed with another key."""


# ------------------------------------------------------------------------------------------------------ keys


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _raw(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_key_pair() -> tuple[str, str]:
    """A new Ed25519 signing key: ``(private, public)``, each as one line of URL-safe base64 (32 raw bytes)."""
    private = Ed25519PrivateKey.generate()
    return _b64(private.private_bytes_raw()), _b64(private.public_key().public_bytes_raw())


def public_key_of(private_key: str) -> str:
    """The public key (base64) that verifies what ``private_key`` signs."""
    return _b64(_load_private(private_key).public_key().public_bytes_raw())


def key_id(public: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key (the tokens' ``kid`` header)."""
    return hashlib.sha256(public.public_bytes_raw()).hexdigest()[:16]


@lru_cache(maxsize=16)
def _load_private(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("not an Ed25519 key")
            return key
        return Ed25519PrivateKey.from_private_bytes(_raw(text))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"VOXTRAIN_AUTH__PRIVATE_KEY is not an Ed25519 private key ({exc})") from None


@lru_cache(maxsize=16)
def load_public_keys(text: str) -> dict[str, Ed25519PublicKey]:
    """The verification keys by ``kid``: one or more keys, PEM blocks or base64, separated by commas/blank."""
    blocks = re.findall(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", text, flags=re.S)
    rest = re.sub(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", " ", text, flags=re.S)
    keys: list[Ed25519PublicKey] = []
    try:
        for block in blocks:
            key = serialization.load_pem_public_key(block.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            keys.append(key)
        keys += [Ed25519PublicKey.from_public_bytes(_raw(t)) for t in rest.replace(",", " ").split()]
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"VOXTRAIN_AUTH__PUBLIC_KEY holds something that is not an Ed25519 public key ({exc})"
        ) from None
    if not keys:
        raise ValueError("VOXTRAIN_AUTH__PUBLIC_KEY holds no key")
    return {key_id(k): k for k in keys}


# ------------------------------------------------------------------------------------------------------ tokens


def issue_token(
    settings: AuthSettings,
    tenant_id: str,
    ttl_seconds: int | None = None,
    *,
    operator: bool = False,
    scopes: Iterable[Scope] = ALL_SCOPES,
    subject: str | None = None,
    expires_at: int | None = None,
) -> str:
    """A token for ``tenant_id`` with ``scopes`` signed with the private key (only issuers have it).

    ``operator``: also for the cross-tenant operations routes. ``expires_at``: the API key's expiry, which caps the
    token's lifetime and is kept in the token (``key_exp``) so that what the token does cannot outlive the key.
    """
    if settings.private_key is None:
        raise ValueError("only an issuer signs tokens: set VOXTRAIN_AUTH__PRIVATE_KEY")
    if not TENANT_RE.match(tenant_id):
        raise ValueError("a tenant id is 1-63 lower-case letters, digits, '-' or '_'")
    private = _load_private(settings.private_key.get_secret_value())
    now = int(time.time())
    exp = now + (ttl_seconds or settings.token_ttl_seconds)
    claims: dict[str, Any] = {
        "sub": subject or tenant_id,
        "tenant": tenant_id,
        "scope": scope_text(scopes),
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": now,
        "exp": min(exp, expires_at) if expires_at is not None else exp,
    }
    if operator:
        claims["operator"] = True
    if expires_at is not None:
        claims["key_exp"] = expires_at
    return jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": key_id(private.public_key())})


def verify_token(settings: AuthSettings, token: str) -> Principal:
    """The principal a token names (raises :class:`InvalidToken`)."""
    keys = load_public_keys(settings.public_key)
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"token is not signed with {ALGORITHM} (alg {header.get('alg')!r})")
        kid = header.get("kid")
        key = keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("token is signed with a key this service does not trust")
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=settings.audience,
            issuer=settings.issuer,
            options={"require": ["exp", "sub", "tenant"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    tenant = claims.get("tenant")
    if not isinstance(tenant, str) or not TENANT_RE.match(tenant):
        raise InvalidToken("token names no valid tenant")
    try:
        scopes = parse_scopes(str(claims.get("scope", "")))
    except ValueError as exc:
        raise InvalidToken(str(exc)) from None
    key_exp = claims.get("key_exp")
    return Principal(
        tenant,
        operator=claims.get("operator") is True,
        scopes=scopes,
        subject=str(claims["sub"]),
        key_expires_at=key_exp if isinstance(key_exp, int) else None,
    )


def bearer(header: str | None) -> str:
    """The token in an ``Authorization: Bearer …`` value (raises :class:`InvalidToken`)."""
    if not header or not header.lower().startswith("bearer "):
        raise InvalidToken("missing bearer token")
    return header[7:].strip()


def missing_scope(principal: Principal, scope: Scope, what: str) -> ApiError | None:
    """The 403 for a principal without ``scope`` (``what``: the action, for the message), else None."""
    if principal.allows(scope):
        return None
    held = scope_text(principal.scopes) or "none"
    return ApiError(
        403,
        ErrorCode.FORBIDDEN,
        f"{what} needs the '{scope.value}' scope; this token has: {held}. "
        f"Use an API key with '{scope.value}' (create one with POST /v1/api-keys).",
        {"required_scope": scope.value, "scopes": sorted(principal.scopes)},
    )


def authenticated(request: Request) -> Principal:
    """The caller (401 without a valid token), any scope."""
    return authenticate(request.app.state.auth_settings, request.headers.get("authorization"))


def authenticate(settings: AuthSettings, authorization: str | None) -> Principal:
    """The principal of an ``Authorization`` header value (:class:`ApiError` 401 without a valid token)."""
    try:
        return verify_token(settings, bearer(authorization))
    except InvalidToken as exc:
        raise ApiError(
            401,
            ErrorCode.UNAUTHORIZED,
            f"A valid bearer token is required ({exc}). Exchange an API key at POST /v1/auth/token "
            "(or, operators: `voxtrain token TENANT`).",
        ) from exc


def requiring(scope: Scope) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the caller holding ``scope`` whatever the method."""

    def dependency(request: Request) -> Principal:
        principal = authenticated(request)
        refusal = missing_scope(principal, scope, f"{request.method} {request.url.path}")
        if refusal is not None:
            raise refusal
        return principal

    return dependency


_reading, _writing = requiring(Scope.READ), requiring(Scope.WRITE)


def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, holding ``read`` for GET/HEAD and ``write`` for other methods."""
    return _reading(request) if request.method in ("GET", "HEAD") else _writing(request)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
#: ``read`` whatever the method (a POST that only reads, e.g. transcription)
ReadPrincipal = Annotated[Principal, Depends(requiring(Scope.READ))]
#: ``train``: start or cancel a training
TrainPrincipal = Annotated[Principal, Depends(requiring(Scope.TRAIN))]


def current_operator(principal: CurrentPrincipal) -> Principal:
    """FastAPI dependency: the caller, who must hold an operator's token."""
    if not principal.operator:
        raise ApiError(
            403, ErrorCode.FORBIDDEN, "This operations route needs an operator's token (the `voxtrain` CLI signs one)."
        )
    return principal


CurrentOperator = Annotated[Principal, Depends(current_operator)]
