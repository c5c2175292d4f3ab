"""Tenants' credits through the models service's ``/v1/ops/credits`` routes (it owns the ledger): show an
account, grant credits, expire some. The service writes the entry and the account in one transaction."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .common import OpsError, models_api

CREDIT_COLUMNS = ("id", "created_at", "kind", "amount", "balance_after", "model_id", "run_id", "actor", "reason")


def show_credits(models_url: str, token: str, tenant: str, limit: int = 50) -> dict[str, Any]:
    """A tenant's balance, held and spent credits and its latest ledger entries (newest first)."""
    account: dict[str, Any] = models_api(models_url, f"/v1/ops/credits/{quote(tenant)}?limit={int(limit)}", token)
    return account


def post_credits(
    models_url: str,
    token: str,
    tenant: str,
    kind: str,
    amount: int,
    reason: str,
    actor: str,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Grant credits to a tenant (``kind`` grant) or expire some of its balance (``expire``); the account after.
    The same ``idempotency_key`` again posts nothing more (safe to retry)."""
    if amount <= 0:
        raise OpsError(f"the amount of credits must be positive; got {amount}")
    body = {"kind": kind, "amount": amount, "reason": reason, "actor": actor, "idempotency_key": idempotency_key}
    account: dict[str, Any] = models_api(models_url, f"/v1/ops/credits/{quote(tenant)}", token, "POST", body)
    return account
