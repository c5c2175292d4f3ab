"""An in-memory IdentityRepository for handler tests (same contract as the real one)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from voxtrain_identity.domain import ApiKey


class FakeIdentityRepository:
    def __init__(self) -> None:
        self.keys_: dict[uuid.UUID, ApiKey] = {}

    async def add(self, k: ApiKey) -> None:
        self.keys_[k.id] = k

    async def key(self, key_id: uuid.UUID, *, tenant_id: str | None = None, lock: bool = False) -> ApiKey | None:
        k = self.keys_.get(key_id)
        return k if k is not None and tenant_id in (None, k.tenant_id) else None

    async def keys(self, tenant_id: str) -> list[ApiKey]:
        return sorted((k for k in self.keys_.values() if k.tenant_id == tenant_id), key=lambda k: (k.created_at, k.id))

    async def count_unrevoked(self, tenant_id: str) -> int:
        return sum(1 for k in await self.keys(tenant_id) if k.revoked_at is None)

    async def save(self, k: ApiKey) -> None:
        old = self.keys_[k.id]
        self.keys_[k.id] = replace(old, label=k.label, revoked_at=k.revoked_at, last_used_at=k.last_used_at)

    async def touch(self, key_id: uuid.UUID, at: datetime) -> None:
        self.keys_[key_id] = replace(self.keys_[key_id], last_used_at=at)
