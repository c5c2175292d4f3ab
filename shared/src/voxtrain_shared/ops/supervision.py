"""Supervision through the models service's ``/v1/ops`` routes: models overdue at 2/3, and re-driving one."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from uuid import UUID

from .common import OpsError

OVERDUE_COLUMNS = ("id", "tenant_id", "name", "status", "phase", "run_id", "redrives", "due_at")


def _api(base_url: str, path: str, token: str, method: str = "GET", timeout: float = 30.0) -> Any:
    """Call an operations route of a service; :class:`OpsError` with the service's own message on a refusal."""
    request = urllib.request.Request(
        base_url.rstrip("/") + path,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())["error"]
            detail = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            detail = f"HTTP {exc.code}"
        raise OpsError(f"{method} {path} refused: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise OpsError(
            f"cannot reach the models service at {base_url} ({exc}); set --models-url or VOXTRAIN_MODELS_URL"
        ) from None


def _overdue_row(m: dict[str, Any]) -> dict[str, Any]:
    return {**m, "status": m["status"]["code"], "status_name": m["status"]["name"]}


def overdue_models(models_url: str, token: str, limit: int = 100) -> list[dict[str, Any]]:
    """Models of every tenant at 2/3 whose supervision deadline passed (operator token)."""
    return [_overdue_row(m) for m in _api(models_url, f"/v1/ops/models/overdue?limit={int(limit)}", token)]


def redrive_model(models_url: str, token: str, model_id: UUID) -> dict[str, Any]:
    """Ask again now for a model's validation (at 2) or training (at 3); its supervision state after."""
    return _overdue_row(_api(models_url, f"/v1/ops/models/{model_id}/redrive", token, method="POST"))
