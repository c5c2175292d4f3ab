"""Transactional outbox (the inbox, its consumer-side partner, is :mod:`voxtrain_shared.inbox`).

:func:`add` writes an event into ``<schema>.outbox`` inside the caller's transaction (so the
state change and its event commit or roll back together) and NOTIFYs the relay. :class:`OutboxRelay`
locks a batch of unsent rows with ``FOR UPDATE SKIP LOCKED``, publishes them in order through the
idempotent producer, waits for every ack, then marks them sent in the same transaction. A crash
after publishing but before the commit publishes the batch again: consumers dedupe with the inbox.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from .db import check_identifier
from .events import Envelope
from .logs import get_logger
from .loops import wait_any
from .metrics import EVENTS_PRODUCED, OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE
from .topics import Topics

log = get_logger(__name__)


class Publisher(Protocol):
    """Sends one record to Kafka and returns once the broker acknowledged it."""

    async def publish(self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]) -> None: ...


def channel(schema: str) -> str:
    """LISTEN/NOTIFY channel that wakes a schema's relay."""
    return f"voxtrain_outbox_{check_identifier(schema)}"


async def add(conn: asyncpg.Connection, schema: str, topics: Topics, env: Envelope) -> None:
    """Write ``env`` to the outbox inside the caller's open transaction."""
    topic = topics.by_key(env.payload().TOPIC)
    await conn.execute(
        f'INSERT INTO "{schema}".outbox(event_id, topic, msg_key, payload, event_type) VALUES ($1,$2,$3,$4,$5)',
        env.id, topic, env.key(), env.to_bytes(), env.type,
    )
    await conn.execute("SELECT pg_notify($1, '')", channel(schema))



@dataclass(frozen=True)
class Backlog:
    unsent: int
    oldest_age_seconds: float


async def backlog(conn: asyncpg.Connection, schema: str) -> Backlog:
    """How many events wait to be relayed, and the age of the oldest."""
    row = await conn.fetchrow(
        f'SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age '
        f'FROM "{schema}".outbox WHERE sent_at IS NULL'
    )
    return Backlog(int(row["n"]), float(row["age"]))


class OutboxRelay:
    """Publishes a schema's outbox to Kafka; run one per service process."""

    def __init__(self, pool: asyncpg.Pool, schema: str, publisher: Publisher,
                 batch_size: int = 200, poll_interval: float = 2.0) -> None:
        self._pool = pool
        self._schema = check_identifier(schema)
        self._publisher = publisher
        self._batch = batch_size
        self._poll = poll_interval
        self._wake = asyncio.Event()

    async def run_once(self) -> int:
        """Relay one batch; returns how many events were published."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f'SELECT seq, topic, msg_key, payload, event_type, event_id FROM "{self._schema}".outbox '
                "WHERE sent_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch,
            )
            if not rows:
                return 0
            for r in rows:  # in order: a model's events keep their order
                await self._publisher.publish(
                    r["topic"], bytes(r["payload"]), bytes(r["msg_key"]) if r["msg_key"] else None,
                    {"event_type": r["event_type"], "event_id": str(r["event_id"])},
                )
                EVENTS_PRODUCED.labels(topic=r["topic"]).inc()
            await conn.execute(
                f'UPDATE "{self._schema}".outbox SET sent_at = now() WHERE seq = ANY($1::bigint[])',
                [r["seq"] for r in rows],
            )
            return len(rows)

    async def drain(self) -> int:
        """Relay until nothing is left; returns the total published."""
        total = 0
        while n := await self.run_once():
            total += n
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set: woken by NOTIFY, polling as a safety net, retrying on errors."""
        listener: asyncpg.Connection | None = None
        try:
            while not stop.is_set():
                try:
                    if listener is None or listener.is_closed():
                        listener = await self._pool.acquire()
                        await listener.add_listener(channel(self._schema), self._on_notify)
                    self._wake.clear()
                    await self.drain()
                    async with self._pool.acquire() as conn:
                        b = await backlog(conn, self._schema)
                    OUTBOX_BACKLOG.labels(schema=self._schema).set(b.unsent)
                    OUTBOX_OLDEST_AGE.labels(schema=self._schema).set(b.oldest_age_seconds)
                except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                    log.warning("outbox_relay_retry", schema=self._schema, error=str(exc))
                except Exception as exc:  # Kafka errors: keep the rows, try again later
                    log.warning("outbox_relay_retry", schema=self._schema, error=repr(exc))
                await wait_any(self._wake, stop, timeout=self._poll)
        finally:
            if listener is not None and not listener.is_closed():
                await listener.remove_listener(channel(self._schema), self._on_notify)
                await self._pool.release(listener)

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()

