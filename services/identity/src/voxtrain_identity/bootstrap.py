"""Wires the identity service: the one place that builds its dependencies."""

from __future__ import annotations

import math
from pathlib import Path

from voxtrain_shared.auth import issue_token
from voxtrain_shared.http import answer_refusals
from voxtrain_shared.service import Service
from voxtrain_shared.settings import IdentitySettings

from . import handlers, http
from .domain import ApiKey

MIGRATIONS = Path(__file__).parent / "migrations"


def signer(settings: IdentitySettings, clock: handlers.Clock) -> handlers.Signer:
    """Signs the tokens exchanged for keys: the key's tenant and scopes, ``key_token_ttl_seconds`` at most
    (never past the key's own expiry)."""

    def sign(key: ApiKey) -> tuple[str, int]:
        now = clock().timestamp()
        ttl = settings.key_token_ttl_seconds
        key_expires = None if key.expires_at is None else math.floor(key.expires_at.timestamp())
        token = issue_token(
            settings.auth, key.tenant_id, ttl, scopes=key.scopes, subject=f"key:{key.id}", expires_at=key_expires
        )
        ends = now + ttl if key_expires is None else min(now + ttl, key_expires)
        return token, max(1, math.floor(ends - now))

    return sign


def build(settings: IdentitySettings, *, clock: handlers.Clock = handlers.utc_now) -> Service:
    """The service; tests may pass their own ``clock``."""
    svc = Service(
        settings,
        migrations=MIGRATIONS,
        title="voxtrain identity",
        description="Tenants' API keys (hashed, scoped, revocable) and their exchange for short-lived bearer tokens.",
    )
    uow = handlers.unit_of_work(lambda: svc.pool, svc.schema, svc.topics)
    svc.app.include_router(http.router(uow, settings, signer(settings, clock), clock))
    answer_refusals(svc.app, http.STATUS_OF)
    return svc
