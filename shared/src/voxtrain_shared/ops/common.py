"""What every operation shares: the services, the error type, read-only database access, and reaching a
service's own package (installed only in that service's image)."""

from __future__ import annotations

import importlib
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import asyncpg

from ..db import check_identifier

#: The services, in the order they are listed everywhere; each owns the schema of the same name by default.
SERVICES = ("models", "datasets", "validator", "trainer", "webhooks")


class OpsError(Exception):
    """An operation that cannot be done as asked (the message says why and what to do)."""


@asynccontextmanager
async def read_only(dsn: str) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(readonly=True):
            yield conn
    finally:
        await conn.close()


def schema_name(name: str) -> str:
    try:
        return check_identifier(name)
    except ValueError:
        raise OpsError(f"{name!r} is not a schema name (lower-case letters, digits, underscores)") from None


async def has_table(conn: asyncpg.Connection, schema: str, table: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f'"{schema_name(schema)}".{table}'))


async def has_column(conn: asyncpg.Connection, schema: str, table: str, column: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM information_schema.columns WHERE table_schema=$1 AND table_name=$2 AND column_name=$3",
            schema,
            table,
            column,
        )
    )


def service_module(service: str, module: str) -> ModuleType:
    """``voxtrain_<service>.<module>``: the service's own code, where its tables are known (its migrations, its
    repository). Each image holds only its own service, so elsewhere this says where to run the command."""
    if service not in SERVICES:
        raise OpsError(f"unknown service {service!r}; one of: {', '.join(SERVICES)}")
    try:
        return importlib.import_module(f"voxtrain_{service}.{module}")
    except ModuleNotFoundError:
        raise OpsError(
            f"the {service} service is not installed here (each image holds only its own service; "
            f"run this in the voxtrain-{service} image)"
        ) from None
