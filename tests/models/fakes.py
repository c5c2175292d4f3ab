"""An in-memory ModelRepository for handler tests (with tests/fakes.py::FakeUnitOfWork)."""

from __future__ import annotations

import copy
import dataclasses
import uuid
from datetime import datetime

from voxtrain_models.credits import Account, Entry, EntryKind
from voxtrain_models.domain import CustomModel, Phase
from voxtrain_shared.vocab import ModelStatus


class InMemoryModels:
    """The parts of :class:`voxtrain_models.repository.ModelRepository` the handlers use, in memory."""

    def __init__(self) -> None:
        self.models: dict[uuid.UUID, CustomModel] = {}
        self.accounts: dict[str, Account] = {}
        self.ledger: list[Entry] = []

    def add(self, *models: CustomModel) -> None:
        for m in models:
            self.models[m.id] = copy.deepcopy(m)

    async def get(self, tenant_id: str, model_id: uuid.UUID, *, lock: bool = False) -> CustomModel | None:
        m = self.models.get(model_id)
        return copy.deepcopy(m) if m is not None and m.tenant_id == tenant_id else None

    async def save(self, m: CustomModel) -> None:
        stored = copy.deepcopy(m)
        stored.events = []
        self.models[m.id] = stored

    async def find_tenant(self, model_id: uuid.UUID) -> str | None:
        m = self.models.get(model_id)
        return m.tenant_id if m else None

    async def overdue(
        self, cutoffs: dict[Phase, datetime], limit: int, *, asked_again: bool = False
    ) -> list[tuple[str, uuid.UUID]]:
        due = [m for m in self.models.values() if _overdue(m, cutoffs, asked_again)]
        return [(m.tenant_id, m.id) for m in sorted(due, key=lambda m: m.watched_since or datetime.min)][:limit]

    async def count_overdue(self, cutoffs: dict[Phase, datetime]) -> dict[ModelStatus, int]:
        counts = {ModelStatus.READY_TO_RUN: 0, ModelStatus.RUNNING: 0}
        for m in self.models.values():
            if _overdue(m, cutoffs, True):
                counts[m.status] += 1
        return counts

    # credits: accounts and an append-only ledger whose keys are unique, like the real tables

    async def account(self, tenant_id: str, *, lock: bool = False) -> Account | None:
        return self.accounts.get(tenant_id)

    async def open_account(self, account: Account, grant: Entry | None) -> bool:
        if account.tenant_id in self.accounts:
            return False
        self.accounts[account.tenant_id] = account
        if grant is not None:
            await self.append_entry(grant)
        return True

    async def append_entry(self, entry: Entry) -> bool:
        if entry.key is not None and any(e.key == entry.key for e in self.ledger):
            return False
        self.ledger.append(dataclasses.replace(entry, id=len(self.ledger) + 1))
        return True

    async def entry_by_key(self, key: str) -> Entry | None:
        return next((e for e in self.ledger if e.key == key), None)

    async def set_account(self, account: Account) -> None:
        self.accounts[account.tenant_id] = account

    async def entries(self, tenant_id: str, limit: int, before: int | None = None) -> list[Entry]:
        mine = [e for e in reversed(self.ledger) if e.tenant_id == tenant_id and (before is None or e.id < before)]
        return mine[:limit]

    async def entry_sums(self, tenant_id: str) -> dict[EntryKind, int]:
        sums = {k: 0 for k in EntryKind}
        for e in self.ledger:
            if e.tenant_id == tenant_id:
                sums[e.kind] += e.amount
        return sums


def _overdue(m: CustomModel, cutoffs: dict[Phase, datetime], asked_again: bool) -> bool:
    if m.phase is None or m.watched_since is None:
        return False
    return m.watched_since <= cutoffs[m.phase] or (asked_again and m.redrives > 0)
