"""Tenants' API keys, through the identity service's API with a token the operator signs for the tenant
(so the first key of a tenant can be made before the tenant has any)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from .common import call_api

API_KEY_COLUMNS = ("id", "label", "scopes", "state", "hint", "created_by", "created_at", "expires_at", "last_used_at")


def _row(k: dict[str, Any]) -> dict[str, Any]:
    return {**k, "scopes": ",".join(k["scopes"])}


def create_api_key(
    identity_url: str, token: str, label: str, scopes: list[str], expires_in_days: int | None = None
) -> dict[str, Any]:
    """A new key (its ``key`` field holds the secret, shown this once)."""
    body: dict[str, Any] = {"label": label, "scopes": scopes}
    if expires_in_days is not None:
        body["expires_at"] = (datetime.now(UTC) + timedelta(days=expires_in_days)).isoformat()
    return _row(call_api(identity_url, "/v1/api-keys", token, "POST", body=body, service="identity"))


def list_api_keys(identity_url: str, token: str) -> list[dict[str, Any]]:
    return [_row(k) for k in call_api(identity_url, "/v1/api-keys", token, service="identity")]


def revoke_api_key(identity_url: str, token: str, key_id: UUID) -> None:
    call_api(identity_url, f"/v1/api-keys/{key_id}", token, "DELETE", service="identity")
