"""Unit of work: one PostgreSQL transaction in which a service changes its state, emits events
through the outbox and records handled messages in the inbox — all or nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import asyncpg

from . import events as ev
from . import outbox
from .topics import Topics


@dataclass(frozen=True)
class Context:
    """Who asks, and which request or message caused it (for correlation)."""

    tenant_id: str
    correlation_id: uuid.UUID
    causation: ev.Envelope | None = None


class Tx:
    """One open transaction: the connection, plus emitting through the outbox and claiming in the inbox."""

    def __init__(self, conn: asyncpg.Connection, schema: str, topics: Topics, ctx: Context) -> None:
        self.conn, self._schema, self._topics, self.ctx = conn, schema, topics, ctx

    async def emit(self, message: ev.Message, model_id: uuid.UUID | None) -> None:
        """Write ``message`` (in the context's envelope) to the outbox of this transaction."""
        env = ev.wrap(message, tenant_id=self.ctx.tenant_id, model_id=model_id,
                      correlation_id=self.ctx.correlation_id, causation=self.ctx.causation)
        await outbox.add(self.conn, self._schema, self._topics, env)

    async def claim(self, consumer: str, event_id: uuid.UUID) -> bool:
        """Record a handled message; False if ``consumer`` handled it before (skip the effects)."""
        return await outbox.claim(self.conn, self._schema, consumer, event_id)


T = TypeVar("T", bound=Tx)


class UnitOfWork(Generic[T]):
    """Opens transactions on the service's pool (given as a callable: the pool exists once started)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], schema: str, topics: Topics,
                 tx: Callable[[asyncpg.Connection, str, Topics, Context], T] = Tx) -> None:  # type: ignore[assignment]
        self._pool, self._schema, self._topics, self._tx = pool, schema, topics, tx

    @asynccontextmanager
    async def __call__(self, ctx: Context) -> AsyncIterator[T]:
        async with self._pool().acquire() as conn, conn.transaction():
            yield self._tx(conn, self._schema, self._topics, ctx)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[asyncpg.Connection]:
        """A plain connection for reads."""
        async with self._pool().acquire() as conn:
            yield conn
