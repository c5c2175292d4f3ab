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
from types import SimpleNamespace
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


# ------------------------------------------------------------------ object storage read by ranges


class FakeResponse:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self.closed = self.released = False

    def read(self) -> bytes:
        return self._data

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        self.released = True


class FakeObjectStore:
    """Objects in memory; records each GET; can fail the next few calls on purpose."""

    def __init__(self, **objects: bytes) -> None:
        self.objects = objects
        self.gets: list[tuple[int, int, dict[str, str] | None]] = []
        self.responses: list[FakeResponse] = []
        self.failures: list[BaseException] = []
        self.truncate_next = 0

    def get_object(self, bucket_name, object_name, offset=0, length=0, request_headers=None):
        self.gets.append((offset, length, request_headers))
        if self.failures:
            raise self.failures.pop(0)
        data = self.objects[f"{bucket_name}/{object_name}"]
        chunk = data[offset : offset + length] if length else data[offset:]
        if self.truncate_next:
            self.truncate_next -= 1
            chunk = chunk[: len(chunk) // 2]
        response = FakeResponse(chunk)
        self.responses.append(response)
        return response

    def stat_object(self, bucket_name, object_name):
        data = self.objects[f"{bucket_name}/{object_name}"]
        return SimpleNamespace(size=len(data), etag="etag-1")
