"""Supervision through the models service's ``/v1/ops`` routes: models overdue at 2/3, and re-driving one."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from .common import models_api

OVERDUE_COLUMNS = ("id", "tenant_id", "name", "status", "phase", "run_id", "redrives", "due_at")


def _overdue_row(m: dict[str, Any]) -> dict[str, Any]:
    return {**m, "status": m["status"]["code"], "status_name": m["status"]["name"]}


def overdue_models(models_url: str, token: str, limit: int = 100) -> list[dict[str, Any]]:
    """Models of every tenant at 2/3 whose supervision deadline passed (operator token)."""
    return [_overdue_row(m) for m in models_api(models_url, f"/v1/ops/models/overdue?limit={int(limit)}", token)]


def redrive_model(models_url: str, token: str, model_id: UUID) -> dict[str, Any]:
    """Ask again now for a model's validation (at 2) or training (at 3); its supervision state after."""
    return _overdue_row(models_api(models_url, f"/v1/ops/models/{model_id}/redrive", token, method="POST"))
