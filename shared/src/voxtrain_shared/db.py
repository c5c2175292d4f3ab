"""PostgreSQL: pool factory and a migrations runner (one schema per service, plain SQL files).

Migrations are ``NNNN_name.sql`` files applied in order inside the service's schema, each in its
own transaction, under a transaction-level advisory lock, recorded in ``<schema>.schema_migrations``.
Running them again is a no-op; several replicas starting at once apply each file exactly once.
The shared outbox/inbox tables come first, from this package's ``migrations`` folder.

Every database call is bounded in time: a connection is opened within ``connect_timeout``, taken from the pool
within ``acquire_timeout`` (:class:`Pool` makes that the default of ``acquire()``) and each statement gets
``command_timeout`` (asyncpg cancels it server-side). A timeout is an ``asyncio.TimeoutError``, which
:mod:`voxtrain_shared.faults` treats as transient. TCP keepalives make a half-dead connection fail in seconds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

from .logs import get_logger

log = get_logger(__name__)
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_identifier(name: str) -> str:
    """A schema name we can safely interpolate into SQL."""
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


#: Per-session settings of every connection: keepalives so a peer that vanished is noticed within ~30 s.
_KEEPALIVE = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}
#: A migration may rewrite a big table: it gets far longer than an ordinary statement.
MIGRATION_TIMEOUT = 3600.0
Connector = Callable[[], Awaitable[asyncpg.Connection]]


def _server_settings(schema: str, role: str) -> dict[str, str]:
    return {"search_path": f"{schema},public", "application_name": f"voxtrain-{schema}{role}", **_KEEPALIVE}


class Pool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg ships no type hints: its Pool is Any
    """An asyncpg pool whose ``acquire()`` waits at most ``acquire_timeout`` seconds unless told otherwise."""

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def create_pool(
    dsn: str,
    schema: str,
    min_size: int = 1,
    max_size: int = 10,
    *,
    command_timeout: float = 30.0,
    acquire_timeout: float = 10.0,
    connect_timeout: float = 10.0,
) -> asyncpg.Pool:
    """A pool whose connections have ``search_path`` set to the service schema, with bounded waits."""
    check_identifier(schema)
    pool = Pool(
        dsn,
        acquire_timeout=acquire_timeout,
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=command_timeout,
        timeout=connect_timeout,
        server_settings=_server_settings(schema, ""),
    )
    await pool
    return pool


def connector(
    dsn: str, schema: str, *, role: str, command_timeout: float = 30.0, connect_timeout: float = 10.0
) -> Connector:
    """Opens dedicated (non-pooled) connections, e.g. for a LISTEN that must outlive pool recycling."""
    check_identifier(schema)

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(
            dsn,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            server_settings=_server_settings(schema, f"-{role}"),
        )

    return connect


def _files(folder: Path | None) -> list[tuple[str, str]]:
    shared = resources.files("voxtrain_shared") / "migrations"
    out = [
        (f"shared_{p.name}", p.read_text())
        for p in sorted(shared.iterdir(), key=lambda p: p.name)
        if _NAME.match(p.name)
    ]
    if folder is not None:
        for p in sorted(folder.iterdir()):
            if _NAME.match(p.name):
                out.append((p.name, p.read_text()))
            elif p.suffix == ".sql":
                raise ValueError(f"migration file {p.name} must be named NNNN_lower_case.sql")
    return out


async def migrate(conn: asyncpg.Connection, schema: str, folder: Path | None) -> list[str]:
    """Apply pending migrations to ``schema``; returns the names applied now."""
    check_identifier(schema)
    lock_key = int.from_bytes(hashlib.sha256(f"voxtrain-migrate-{schema}".encode()).digest()[:8], "big", signed=True)
    applied_now: list[str] = []
    for name, sql in _files(folder):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations '
                "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = await conn.fetchval(f'SELECT 1 FROM "{schema}".schema_migrations WHERE name=$1', name)
            if done:
                continue
            await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
            await conn.execute(sql, timeout=MIGRATION_TIMEOUT)
            await conn.execute(f'INSERT INTO "{schema}".schema_migrations(name) VALUES ($1)', name)
            applied_now.append(name)
            log.info("migration_applied", schema=schema, migration=name)
    return applied_now
