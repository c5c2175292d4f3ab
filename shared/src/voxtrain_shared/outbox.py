"""Transactional outbox (the inbox, its consumer-side partner, is :mod:`voxtrain_shared.inbox`).

:func:`add` writes an event into ``<schema>.outbox`` inside the caller's transaction (so the state change and
its event commit or roll back together) and NOTIFYs the relay. An event larger than
:data:`~voxtrain_shared.wire.MAX_EVENT_BYTES` has its long detail lists cut first (:func:`voxtrain_shared.wire.fit`).

:class:`OutboxRelay` publishes the rows in ``seq`` order through the idempotent producer, waits for every ack,
then marks them sent in the same transaction. A crash after publishing but before the commit publishes the
batch again: consumers dedupe with the inbox.

**Per-model order with any number of replicas.** Every replica runs a relay, but a batch is relayed only
inside a transaction holding the schema's transaction-level advisory lock (``pg_try_advisory_xact_lock``):
at most one batch of a schema is in flight at any moment, it takes the oldest unsent rows (``FOR UPDATE``,
no ``SKIP LOCKED``), and a relay that finds the lock taken simply waits for its next wake-up. Rows of one
model are written in commit order (their writers lock the model's row), so they are published in order
whichever replica relays them. There is no leader to elect or fail over: the lock lives exactly as long as
the batch's transaction, so a relay killed mid-batch releases it the moment PostgreSQL sees its connection
go (its batch is rolled back and the next relay re-publishes it — duplicates, never a reordering: each
relay publishes from the oldest unsent row upwards).

**Healing.** Each relay has one dedicated connection (not from the pool) on which it LISTENs and runs its
batches. Any error drops it; the relay reconnects with capped exponential backoff, re-LISTENs and goes on —
a PostgreSQL restart costs a few seconds of delay, never a stuck relay. While it cannot publish (PostgreSQL or
Kafka away) it reports itself blocked to :class:`~voxtrain_shared.health.Health` (readiness 503) and keeps
the backlog gauge current when the database answers.

**Parking.** A row that cannot be published — larger than Kafka accepts, refused permanently by the broker,
or failing ``max_attempts`` times for an unknown reason — is parked (``parked_at``, ``park_reason``) and the
rows behind it flow; ``voxtrain outbox`` and ``voxtrain_outbox_parked`` show it. Transient failures (Kafka
away) never park: the batch stops, what was published is marked sent, and the rest waits in order.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from opentelemetry.trace import SpanKind

from . import wire
from .db import Connector, check_identifier
from .events import Envelope
from .faults import KAFKA, Kind, backoff, classify
from .health import DEFAULT_TTL, Health
from .logs import get_logger
from .loops import wait_any
from .metrics import EVENTS_PRODUCED, OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PARKED
from .topics import Topics
from .tracing import Tracing, carrier, continued
from .tracing import off as tracing_off

log = get_logger(__name__)


class Publisher(Protocol):
    """Sends one record to Kafka and returns once the broker acknowledged it."""

    async def publish(self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]) -> None: ...


def channel(schema: str) -> str:
    """LISTEN/NOTIFY channel that wakes a schema's relay."""
    return f"voxtrain_outbox_{check_identifier(schema)}"


def relay_lock_key(schema: str) -> int:
    """The advisory lock a schema's relays take around each batch (a signed 64-bit key)."""
    digest = hashlib.sha256(f"voxtrain-outbox-{check_identifier(schema)}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def add(conn: asyncpg.Connection, schema: str, topics: Topics, env: Envelope) -> None:
    """Write ``env`` (cut to size, see :func:`voxtrain_shared.wire.fit`) to the outbox inside the caller's open
    transaction, with the current trace context (sent as Kafka headers)."""
    topic = topics.by_key(env.payload().TOPIC)
    fitted = wire.fit(env)
    if fitted is not env:
        log.info("event_truncated", event_type=env.type, event_id=str(env.id), size=wire.size(fitted))
    trace_context = carrier()
    await conn.execute(
        f'INSERT INTO "{schema}".outbox(event_id, topic, msg_key, payload, event_type, trace_context) '
        "VALUES ($1,$2,$3,$4,$5,$6::jsonb)",
        env.id,
        topic,
        env.key(),
        fitted.to_bytes(),
        env.type,
        json.dumps(trace_context) if trace_context else None,
    )
    await conn.execute("SELECT pg_notify($1, '')", channel(schema))


@dataclass(frozen=True)
class Backlog:
    unsent: int
    oldest_age_seconds: float
    parked: int = 0


async def backlog(conn: asyncpg.Connection, schema: str) -> Backlog:
    """How many events wait to be relayed (parked ones apart), the age of the oldest, and how many are parked."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE parked_at IS NULL) AS n, "
        "coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)), 0) AS age, "
        "count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked "
        f'FROM "{schema}".outbox WHERE sent_at IS NULL'
    )
    return Backlog(int(row["n"]), float(row["age"]), int(row["parked"]))


class _Stop(Exception):
    """Ends a batch early (after committing what was done) and re-raises ``cause`` to the caller."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.cause = cause


class PublishFailed(Exception):
    """Kafka did not take an event (the cause says why); the batch stops there, in order."""


class OutboxRelay:
    """Publishes a schema's outbox to Kafka; every service process runs one (see the module docstring).

    ``connect`` opens the relay's dedicated connection (:func:`voxtrain_shared.db.connector`).
    """

    def __init__(
        self,
        connect: Connector,
        schema: str,
        publisher: Publisher,
        batch_size: int = 200,
        poll_interval: float = 2.0,
        *,
        health: Health | None = None,
        max_event_bytes: int = wire.MAX_MESSAGE_BYTES,
        max_attempts: int = 5,
        retry_cap: float = 10.0,
        publish_timeout: float = 30.0,
        tracing: Tracing | None = None,
    ) -> None:
        self._connect = connect
        self._schema = check_identifier(schema)
        self._publisher = publisher
        self._batch = batch_size
        self._poll = poll_interval
        self._health = health
        self._max_bytes = max_event_bytes
        self._max_attempts = max_attempts
        self._retry_cap = retry_cap
        self._publish_timeout = publish_timeout
        self._tracing = tracing or tracing_off()
        self._wake = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._gauged = -math.inf  #: when the backlog gauges were last refreshed (time.monotonic())
        self._key = relay_lock_key(schema)
        self.component = f"outbox relay {schema}"

    # ------------------------------------------------------------ one batch

    async def run_once(self) -> int:
        """Relay one batch; returns how many rows were done with (published or parked). 0 when there is
        nothing to do or another relay of the schema holds the batch lock right now."""
        conn = await self._connection()
        done: list[int] = []
        stop: _Stop | None = None
        async with conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._key):
                return 0  # another replica's relay is publishing a batch; it will take our rows too
            rows = await conn.fetch(
                "SELECT seq, topic, msg_key, payload, event_type, event_id, attempts, trace_context "
                f'FROM "{self._schema}".outbox '
                "WHERE sent_at IS NULL AND parked_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE",
                self._batch,
            )
            for r in rows:  # in order: a model's events keep their order
                try:
                    if await self._relay_row(conn, r):
                        done.append(r["seq"])
                except _Stop as exc:
                    stop = exc
                    break
            if done:
                await conn.execute(
                    f'UPDATE "{self._schema}".outbox SET sent_at = now() '
                    "WHERE seq = ANY($1::bigint[]) AND parked_at IS NULL",
                    done,
                )
        if stop is not None:
            raise stop.cause
        return len(rows) if rows else 0

    async def _relay_row(self, conn: asyncpg.Connection, r: asyncpg.Record) -> bool:
        """Publish one row: True when published, False when parked; :class:`_Stop` ends the batch."""
        payload = bytes(r["payload"])
        if len(payload) > self._max_bytes:
            await self._park(
                conn, r, f"event of {len(payload)} bytes exceeds the publish limit of {self._max_bytes} bytes"
            )
            return False
        try:  # bounded: a producer waiting for a broker that is gone must not hold the batch (and its lock)
            with continued(
                self._tracing,
                f"{r['topic']} publish",
                json.loads(r["trace_context"]) if r["trace_context"] else None,
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": r["topic"],
                    "messaging.message.id": str(r["event_id"]),
                    "voxtrain.event_type": r["event_type"],
                },
            ):
                headers = {"event_type": r["event_type"], "event_id": str(r["event_id"]), **carrier()}
                await asyncio.wait_for(
                    self._publisher.publish(
                        r["topic"], payload, bytes(r["msg_key"]) if r["msg_key"] else None, headers
                    ),
                    timeout=self._publish_timeout,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            fault = classify(exc)
            if fault.permanent:
                await self._park(conn, r, f"Kafka refused it: {fault.reason}")
                return False
            if fault.kind is Kind.UNKNOWN:
                attempts = await conn.fetchval(
                    f'UPDATE "{self._schema}".outbox SET attempts = attempts + 1 WHERE seq = $1 RETURNING attempts',
                    r["seq"],
                )
                if attempts >= self._max_attempts:
                    await self._park(conn, r, f"failed {attempts} times: {fault.reason}")
                    return False
            failed = PublishFailed(f"publishing {r['event_type']} {r['event_id']} failed: {fault.reason}")
            failed.__cause__ = exc
            raise _Stop(failed) from exc
        EVENTS_PRODUCED.labels(topic=r["topic"]).inc()
        return True

    async def _park(self, conn: asyncpg.Connection, r: asyncpg.Record, reason: str) -> None:
        await conn.execute(
            f'UPDATE "{self._schema}".outbox SET parked_at = now(), park_reason = $2 WHERE seq = $1', r["seq"], reason
        )
        log.error(
            "outbox_event_parked",
            schema=self._schema,
            seq=r["seq"],
            event_type=r["event_type"],
            event_id=str(r["event_id"]),
            reason=reason,
        )

    async def drain(self) -> int:
        """Relay until nothing is left (or another relay holds the lock); returns the total done.

        A batch shorter than ``batch_size`` took every row committed before it: it ends the drain without one more
        (empty) batch. A row committed since NOTIFYs this relay, which wakes :meth:`run` again at once."""
        total = 0
        while n := await self.run_once():
            total += n
            if n < self._batch:
                break
        return total

    # ------------------------------------------------------------ the long run

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set: woken by NOTIFY, polling as a safety net, healing after any error."""
        failures = 0
        try:
            while not stop.is_set():
                try:
                    self._wake.clear()
                    await self.drain()
                    if time.monotonic() - self._gauged >= self._poll:  # per poll, not per event: a query each
                        await self._gauge()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    await self._failed(exc, failures)
                    await wait_any(stop, timeout=backoff(failures, base=0.5, cap=self._retry_cap))
                    continue
                if failures:
                    log.info("outbox_relay_recovered", schema=self._schema, after_failures=failures)
                failures = 0
                if self._health is not None:
                    self._health.clear(self.component)
                await wait_any(self._wake, stop, timeout=self._poll)
        finally:
            await self.close()

    async def _failed(self, exc: Exception, failures: int) -> None:
        fault = classify(exc)
        dependency = fault.dependency or (KAFKA if isinstance(exc, PublishFailed) else "unknown")
        log.warning(
            "outbox_relay_retry", schema=self._schema, dependency=dependency, error=fault.reason, failures=failures
        )
        if self._health is not None:
            ttl = max(DEFAULT_TTL, 3 * (self._retry_cap + self._publish_timeout))
            self._health.blocked(self.component, dependency, fault.reason, ttl=ttl)
        if dependency == KAFKA and self._conn is not None and not self._conn.is_closed():
            try:  # the database answers: keep the backlog gauge true while Kafka is away
                await self._gauge()
            except Exception as gauge_exc:  # the relay's own retry handles the connection
                log.debug("outbox_gauge_failed", error=repr(gauge_exc))
                await self.close()
        else:
            await self.close()  # a fresh connection next time (re-LISTEN included)

    async def _gauge(self) -> None:
        self._gauged = time.monotonic()
        b = await backlog(await self._connection(), self._schema)
        OUTBOX_BACKLOG.labels(schema=self._schema).set(b.unsent)
        OUTBOX_OLDEST_AGE.labels(schema=self._schema).set(b.oldest_age_seconds)
        OUTBOX_PARKED.labels(schema=self._schema).set(b.parked)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        await self.close()
        conn = await self._connect()
        try:
            await conn.add_listener(channel(self._schema), self._on_notify)
            conn.add_termination_listener(self._on_notify)  # a dropped connection wakes the loop at once
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        return conn

    async def close(self) -> None:
        """Close the relay's connection (a later call opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.close(), timeout=2)
        except Exception:  # a broken connection cannot close politely
            conn.terminate()

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()
