"""Unit of work: one PostgreSQL transaction in which a service changes its state (through its
repository), emits events through the outbox and records handled messages in the inbox — all or nothing.

Every service builds one ``UnitOfWork`` in its bootstrap, with its own repository class (all of the
service's SQL lives there). Use cases open ``async with uow(ctx) as tx`` and touch only ``tx.repo``,
``tx.emit`` and ``tx.claim``; reads use ``async with uow.reading() as repo``. Unit tests pass a fake with
the same shape (``tests/fakes.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import asyncpg

from . import events as ev
from . import inbox, outbox
from .topics import Topics

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True)
class Context:
    """Who asks, and which request or message caused it (for correlation)."""

    tenant_id: str
    correlation_id: uuid.UUID
    causation: ev.Envelope | None = None

    @classmethod
    def of(cls, env: ev.Envelope) -> Context:
        """The context of handling ``env``: its tenant and correlation, caused by it."""
        return cls(env.tenant_id, env.correlation_id, env)


class Transaction(Protocol[R_co]):
    """What a use case sees of an open unit of work."""

    ctx: Context

    @property
    def repo(self) -> R_co:
        """The service's repository, bound to this transaction."""
        ...

    async def emit(self, message: ev.Message, model_id: uuid.UUID | None) -> None:
        """Write ``message`` (in the context's envelope) to the outbox; published only if this commits."""
        ...

    async def claim(self, consumer: str, event_id: uuid.UUID) -> bool:
        """Record a handled message; False if ``consumer`` handled it before (skip the effects)."""
        ...


class Work(Protocol[R_co]):
    """The unit-of-work port: transactions for changes, a repository for reads."""

    def __call__(self, ctx: Context) -> AbstractAsyncContextManager[Transaction[R_co]]:
        """Open a transaction; it commits when the block ends without an exception."""
        ...

    def reading(self) -> AbstractAsyncContextManager[R_co]:
        """A repository for reads (no transaction is held open)."""
        ...


class Tx(Generic[R]):
    """One open PostgreSQL transaction."""

    def __init__(self, conn: asyncpg.Connection, schema: str, topics: Topics, ctx: Context, repo: R) -> None:
        self.conn, self._schema, self._topics, self.ctx, self._repo = conn, schema, topics, ctx, repo

    @property
    def repo(self) -> R:
        return self._repo

    async def emit(self, message: ev.Message, model_id: uuid.UUID | None) -> None:
        env = ev.wrap(
            message,
            tenant_id=self.ctx.tenant_id,
            model_id=model_id,
            correlation_id=self.ctx.correlation_id,
            causation=self.ctx.causation,
        )
        await outbox.add(self.conn, self._schema, self._topics, env)

    async def claim(self, consumer: str, event_id: uuid.UUID) -> bool:
        return await inbox.claim(self.conn, self._schema, consumer, event_id)


class UnitOfWork(Generic[R]):
    """Opens transactions on the service's pool (given as a callable: the pool exists once started).

    ``repository`` builds the service's repository on a connection.
    """

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        schema: str,
        topics: Topics,
        repository: Callable[[asyncpg.Connection], R],
    ) -> None:
        self._pool, self._schema, self._topics, self._repository = pool, schema, topics, repository

    @asynccontextmanager
    async def __call__(self, ctx: Context) -> AsyncIterator[Tx[R]]:
        async with self._pool().acquire() as conn, conn.transaction():
            yield Tx(conn, self._schema, self._topics, ctx, self._repository(conn))

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[R]:
        async with self._pool().acquire() as conn:
            yield self._repository(conn)


async def handle_once(
    uow: Work[R],
    env: ev.Envelope,
    consumer: str,
    apply: Callable[[Transaction[R], ev.Envelope], Awaitable[None]],
) -> bool:
    """Apply ``apply`` to ``env`` exactly once for ``consumer`` (inbox claim in the same transaction).

    Returns False for a redelivered message (nothing was applied).
    """
    async with uow(Context.of(env)) as tx:
        if not await tx.claim(consumer, env.id):
            return False
        await apply(tx, env)
        return True
