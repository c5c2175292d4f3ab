"""What every operation shares: the services, the error type, read-only database access, and reaching a
service's own package (installed only in that service's image)."""

from __future__ import annotations

import importlib
import json
import urllib.error
import urllib.request
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import asyncpg

from ..db import check_identifier

#: The services, in the order they are listed everywhere; each owns the schema of the same name by default.
SERVICES = ("models", "datasets", "validator", "trainer", "webhooks", "identity")


class OpsError(Exception):
    """An operation that cannot be done as asked (the message says why and what to do)."""


def call_api(
    base_url: str,
    path: str,
    token: str,
    method: str = "GET",
    *,
    body: Any = None,
    service: str = "models",
    timeout: float = 30.0,
) -> Any:
    """Call a route of a service; :class:`OpsError` with the service's own message on a refusal."""
    request = urllib.request.Request(
        base_url.rstrip("/") + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Type": "application/json"},
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
        option = f"--{service}-url or VOXTRAIN_{service.upper()}_URL"
        raise OpsError(f"cannot reach the {service} service at {base_url} ({exc}); set {option}") from None


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


def models_api(
    base_url: str, path: str, token: str, method: str = "GET", body: Any = None, timeout: float = 30.0
) -> Any:
    """Call an operations route of the models service (``body``: sent as JSON); see :func:`call_api`."""
    return call_api(base_url, path, token, method, body=body, service="models", timeout=timeout)
