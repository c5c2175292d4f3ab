"""All SQL of the identity service (its own schema; the pool sets search_path)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from voxtrain_shared.vocab import Scope

from .domain import ApiKey

_KEY = "id, tenant_id, label, scopes, secret_hash, hint, created_by, created_at, expires_at, revoked_at, last_used_at"


class IdentityRepository:
    """API keys, on one connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def add(self, k: ApiKey) -> None:
        await self._conn.execute(
            f"INSERT INTO api_keys ({_KEY}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
            k.id,
            k.tenant_id,
            k.label,
            sorted(k.scopes),
            k.secret_hash,
            k.hint,
            k.created_by,
            k.created_at,
            k.expires_at,
            k.revoked_at,
            k.last_used_at,
        )

    async def key(self, key_id: uuid.UUID, *, tenant_id: str | None = None, lock: bool = False) -> ApiKey | None:
        """The key ``key_id`` (of ``tenant_id`` when given: a tenant never sees another's keys)."""
        row = await self._conn.fetchrow(
            f"SELECT {_KEY} FROM api_keys WHERE id=$1 AND ($2::text IS NULL OR tenant_id=$2)"
            + (" FOR UPDATE" if lock else ""),
            key_id,
            tenant_id,
        )
        return _key(row) if row else None

    async def keys(self, tenant_id: str) -> list[ApiKey]:
        rows = await self._conn.fetch(
            f"SELECT {_KEY} FROM api_keys WHERE tenant_id=$1 ORDER BY created_at, id", tenant_id
        )
        return [_key(r) for r in rows]

    async def count_unrevoked(self, tenant_id: str) -> int:
        return int(
            await self._conn.fetchval(
                "SELECT count(*) FROM api_keys WHERE tenant_id=$1 AND revoked_at IS NULL", tenant_id
            )
        )

    async def save(self, k: ApiKey) -> None:
        """Store the parts of a key that change: label, revocation, last use."""
        await self._conn.execute(
            "UPDATE api_keys SET label=$2, revoked_at=$3, last_used_at=$4 WHERE id=$1",
            k.id,
            k.label,
            k.revoked_at,
            k.last_used_at,
        )

    async def touch(self, key_id: uuid.UUID, at: datetime) -> None:
        await self._conn.execute("UPDATE api_keys SET last_used_at=$2 WHERE id=$1", key_id, at)


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        tenant_id=row["tenant_id"],
        label=row["label"],
        scopes=frozenset(Scope(s) for s in row["scopes"]),
        secret_hash=row["secret_hash"],
        hint=row["hint"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )
