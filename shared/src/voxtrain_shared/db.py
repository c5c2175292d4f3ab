"""PostgreSQL: pool factory and a migrations runner (one schema per service, plain SQL files).

Migrations are ``NNNN_name.sql`` files applied in order inside the service's schema, each in its
own transaction, under a transaction-level advisory lock, recorded in ``<schema>.schema_migrations``.
Running them again is a no-op; several replicas starting at once apply each file exactly once.
The shared outbox/inbox tables come first, from this package's ``migrations`` folder.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from pathlib import Path

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


async def create_pool(dsn: str, schema: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections have ``search_path`` set to the service schema."""
    check_identifier(schema)
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": f"{schema},public", "application_name": f"voxtrain-{schema}"},
    )


def _files(folder: Path | None) -> list[tuple[str, str]]:
    shared = resources.files("voxtrain_shared") / "migrations"
    out = [(f"shared_{p.name}", p.read_text()) for p in sorted(shared.iterdir(), key=lambda p: p.name)
           if _NAME.match(p.name)]
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
            await conn.execute(sql)
            await conn.execute(f'INSERT INTO "{schema}".schema_migrations(name) VALUES ($1)', name)
            applied_now.append(name)
            log.info("migration_applied", schema=schema, migration=name)
    return applied_now
