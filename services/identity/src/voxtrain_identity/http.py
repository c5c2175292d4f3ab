"""HTTP routes of the identity service (thin: request -> handler -> view)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from voxtrain_shared.auth import CurrentPrincipal
from voxtrain_shared.http import correlation_id
from voxtrain_shared.settings import IdentitySettings
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import ErrorCode, Scope

from . import handlers as h
from .domain import MAX_LABEL, ApiKey, KeyState

STATUS_OF = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.VALIDATION_FAILED: 422,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.UNAUTHORIZED: 401,
}


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=MAX_LABEL, description="what the key is for, e.g. 'ci uploads'")
    scopes: list[Scope] | None = Field(
        None, min_length=1, description="read, write and/or train; default: the scopes of the caller's token"
    )
    expires_at: datetime | None = Field(None, description="when the key stops working (default: never)")


class UpdateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=MAX_LABEL)


class ApiKeyView(BaseModel):
    id: uuid.UUID
    label: str
    scopes: list[Scope]
    state: KeyState
    hint: str = Field(description="the key's last 4 characters")
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyWithSecret(ApiKeyView):
    key: str = Field(description="the API key: shown now only (only a hash of it is kept); store it safely")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: str = Field(min_length=1, max_length=200)


class TokenView(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds the token is valid: exchange the key again before then")
    scope: str = Field(description="the key's scopes, space-separated")
    tenant_id: str


def key_view(k: ApiKey, now: datetime) -> ApiKeyView:
    return ApiKeyView(
        id=k.id,
        label=k.label,
        scopes=sorted(k.scopes),
        state=k.state(now),
        hint=k.hint,
        created_by=k.created_by,
        created_at=k.created_at,
        expires_at=k.expires_at,
        revoked_at=k.revoked_at,
        last_used_at=k.last_used_at,
    )


def router(uow: h.KeyWork, settings: IdentitySettings, sign: h.Signer, clock: h.Clock) -> APIRouter:
    keys = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])

    def ctx(tenant_id: str, request: Request) -> Context:
        return Context(tenant_id, correlation_id(request))

    @keys.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyWithSecret)
    async def create(body: CreateKey, principal: CurrentPrincipal, request: Request) -> ApiKeyWithSecret:
        """Create a key (scope write). The answer holds the key, shown this once. A key's scopes are at most the
        caller's (a read-only key cannot make a key that trains), and a key made with an expiring key expires
        no later than it."""
        key, text = await h.create_key(
            uow,
            ctx(principal.tenant_id, request),
            body.label,
            frozenset(body.scopes) if body.scopes else principal.scopes,
            granted_by=principal.scopes,
            created_by=principal.subject or principal.tenant_id,
            expires_at=body.expires_at,
            max_keys=settings.max_keys_per_tenant,
            clock=clock,
            creator_expires_at=(
                None if principal.key_expires_at is None else datetime.fromtimestamp(principal.key_expires_at, UTC)
            ),
        )
        return ApiKeyWithSecret(**key_view(key, clock()).model_dump(), key=text)

    @keys.get("", response_model=list[ApiKeyView])
    async def list_(principal: CurrentPrincipal) -> list[ApiKeyView]:
        """The tenant's keys, oldest first, revoked and expired ones too (never their secret)."""
        now = clock()
        return [key_view(k, now) for k in await h.list_keys(uow, principal.tenant_id)]

    @keys.get("/{key_id}", response_model=ApiKeyView)
    async def get(key_id: uuid.UUID, principal: CurrentPrincipal) -> ApiKeyView:
        return key_view(await h.get_key(uow, principal.tenant_id, key_id), clock())

    @keys.patch("/{key_id}", response_model=ApiKeyView)
    async def update(key_id: uuid.UUID, body: UpdateKey, principal: CurrentPrincipal, request: Request) -> ApiKeyView:
        """Change a key's label."""
        key = await h.relabel_key(uow, ctx(principal.tenant_id, request), key_id, body.label)
        return key_view(key, clock())

    @keys.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def revoke(key_id: uuid.UUID, principal: CurrentPrincipal, request: Request) -> Response:
        """Revoke a key: it cannot be exchanged any more, and the tokens minted from it expire within
        `key_token_ttl_seconds` (60 s at most). The key stays listed as revoked."""
        await h.revoke_key(uow, ctx(principal.tenant_id, request), key_id, clock)
        return Response(status_code=204)

    tokens = APIRouter(prefix="/v1/auth", tags=["auth"])

    @tokens.post("/token", response_model=TokenView)
    async def token(body: TokenRequest, request: Request) -> TokenView:
        """Exchange an API key for a short-lived bearer token (no Authorization header: the key is the
        credential). Exchange again before `expires_in` runs out; a revoked or expired key is refused (401)."""
        key, access, expires_in = await h.exchange(uow, body.api_key, sign, correlation_id(request), clock)
        return TokenView(
            access_token=access,
            expires_in=expires_in,
            scope=" ".join(sorted(key.scopes)),
            tenant_id=key.tenant_id,
        )

    outer = APIRouter()
    outer.include_router(keys)
    outer.include_router(tokens)
    return outer
