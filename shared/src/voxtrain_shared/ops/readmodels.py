"""Models and training runs of every tenant, read through each service's own repository (its read model).

The SQL lives in the service that owns the tables (``ModelRepository.operator_listing``,
``TrainerRepository.operator_listing``); this module only connects read-only to the service's schema and shapes
the rows for printing. Like ``voxtrain migrate``, it needs that service installed (it is, in its image).
"""

from __future__ import annotations

import json
from typing import Any

from ..vocab import ModelStatus
from .common import OpsError, has_table, read_only, schema_name, service_module

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


async def list_models(
    dsn: str, schema: str = "models", *, status: int | None = None, tenant: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Models (every tenant unless ``tenant``), optionally of one status code, oldest first."""
    if status is not None and status not in set(ModelStatus):
        raise OpsError(f"unknown model status {status}; one of 1..5")
    repository = service_module("models", "repository").ModelRepository
    async with read_only(dsn) as conn:
        if not await has_table(conn, schema, "models"):
            raise OpsError(f'schema "{schema}" has no models table (is it the models service\'s schema?)')
        await conn.execute(f'SET LOCAL search_path TO "{schema_name(schema)}"')
        rows = await repository(conn).operator_listing(status, tenant, limit)
    return [
        {
            "id": str(r["id"]),
            "tenant": r["tenant_id"],
            "name": r["name"],
            "language": r["language"],
            "status": r["status"],
            "status_name": ModelStatus(r["status"]).name,
            "run_id": str(r["run_id"]) if r["run_id"] else None,
            "error": (json.loads(r["last_error"]) or {}).get("code") if r["last_error"] else None,
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
        }
        for r in rows
    ]


async def list_runs(
    dsn: str, schema: str = "trainer", *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Training runs, optionally of one status (queued, running, succeeded, failed, cancelled), oldest first."""
    if status is not None and status not in RUN_STATUSES:
        raise OpsError(f"unknown run status {status!r}; one of: {', '.join(RUN_STATUSES)}")
    repository = service_module("trainer", "repository").TrainerRepository
    async with read_only(dsn) as conn:
        if not await has_table(conn, schema, "runs"):
            raise OpsError(f'schema "{schema}" has no runs table (is it the trainer service\'s schema?)')
        await conn.execute(f'SET LOCAL search_path TO "{schema_name(schema)}"')
        rows = await repository(conn).operator_listing(status, limit)
    out = []
    for r in rows:
        progress = json.loads(r["progress"]) if r["progress"] else {}
        error = json.loads(r["error"]) if r["error"] else {}
        out.append(
            {
                "run_id": str(r["run_id"]),
                "tenant": r["tenant_id"],
                "model_id": str(r["model_id"]),
                "status": r["status"],
                "attempt": r["attempt"],
                "owner": r["owner"],
                "stage": progress.get("stage"),
                "percent": progress.get("percent"),
                "eta_seconds": progress.get("eta_seconds"),
                "error": error.get("code"),
                "created_at": r["created_at"],
                "started_at": r["started_at"],
                "heartbeat_at": r["heartbeat_at"],
                "finished_at": r["finished_at"],
            }
        )
    return out
