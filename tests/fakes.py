"""Fakes every test folder can use: the unit of work without PostgreSQL.

A service's handler tests build ``FakeUnitOfWork(repo)`` with an in-memory repository of that service
(which lives beside the tests of that service) and then assert on ``uow.emitted`` and ``uow.claimed``.
Like the real one, a transaction's emitted messages and inbox claims take effect only when its block
ends without an exception; repository changes are the fake repository's own business.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from voxtrain_shared import events as ev
from voxtrain_shared.uow import Context

R = TypeVar("R")


@dataclass
class FakeTx(Generic[R]):
    ctx: Context
    repo: R
    emitted: list[tuple[ev.Message, uuid.UUID | None]] = field(default_factory=list)
    claimed: set[tuple[str, uuid.UUID]] = field(default_factory=set)
    _seen: set[tuple[str, uuid.UUID]] = field(default_factory=set)

    async def emit(self, message: ev.Message, model_id: uuid.UUID | None) -> None:
        self.emitted.append((message, model_id))

    async def claim(self, consumer: str, event_id: uuid.UUID) -> bool:
        key = (consumer, event_id)
        if key in self._seen or key in self.claimed:
            return False
        self.claimed.add(key)
        return True


class FakeUnitOfWork(Generic[R]):
    """The :class:`voxtrain_shared.uow.Work` port in memory."""

    def __init__(self, repo: R) -> None:
        self.repo = repo
        self.emitted: list[tuple[ev.Message, uuid.UUID | None]] = []
        self.claimed: set[tuple[str, uuid.UUID]] = set()
        self.commits = 0

    @asynccontextmanager
    async def __call__(self, ctx: Context) -> AsyncIterator[FakeTx[R]]:
        tx = FakeTx(ctx, self.repo, _seen=set(self.claimed))
        yield tx
        self.emitted.extend(tx.emitted)
        self.claimed |= tx.claimed
        self.commits += 1

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[R]:
        yield self.repo

    def messages(self, kind: type[ev.Message] | None = None) -> list[ev.Message]:
        """The committed messages, optionally only those of one type."""
        return [m for m, _ in self.emitted if kind is None or isinstance(m, kind)]
