"""Apply one service's migrations and stop (the Kubernetes migration Jobs run this)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import asyncpg

from ..db import migrate
from .common import SERVICES, OpsError, schema_name


def migrations_folder(service: str) -> Path:
    """The migrations folder shipped in ``voxtrain_<service>`` (installed only in that service's image)."""
    if service not in SERVICES:
        raise OpsError(f"unknown service {service!r}; one of: {', '.join(SERVICES)}")
    try:
        folder = resources.files(f"voxtrain_{service}") / "migrations"
    except ModuleNotFoundError:
        raise OpsError(
            f"the {service} service is not installed here (each image holds only its own service; "
            f"run this in the voxtrain-{service} image)"
        ) from None
    return Path(str(folder))


async def migrate_service(dsn: str, service: str, schema: str | None = None) -> list[str]:
    """Apply ``service``'s pending migrations to ``schema`` (default: the service name); returns those applied."""
    folder = migrations_folder(service)
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn, schema_name(schema or service), folder)
    finally:
        await conn.close()
