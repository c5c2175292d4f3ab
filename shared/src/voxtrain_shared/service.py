"""One service process: PostgreSQL pool + migrations, the FastStream broker, the outbox relay and
the FastAPI app, started and stopped together. Each service's ``bootstrap`` builds one of these,
adds its routes and subscribers, and nothing else wires dependencies.

Start-up waits (with backoff, up to ``startup_timeout`` seconds) for PostgreSQL and Kafka instead of
crashing when one of them is still starting; afterwards every long-lived part heals on its own (pool,
consumers, relay) and reports to :attr:`Service.health` while it waits.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from . import http, logs
from .auth import authenticate
from .bodyguard import BodyGuard
from .db import connector, create_pool, migrate
from .faults import backoff, classify
from .health import Health
from .kafka import BrokerPublisher, Handler, ensure_topics, make_broker, measure_lag, subscribe
from .loops import Loop
from .outbox import OutboxRelay
from .settings import ServiceSettings
from .topics import Topics
from .tracing import Tracing
from .tracing import setup as setup_tracing

log = logs.get_logger(__name__)
Hook = Callable[["Service"], Awaitable[None]]
T = TypeVar("T")
#: How often ``voxtrain_consumer_lag`` is refreshed.
LAG_SECONDS = 15.0


class Service:
    """Runtime of one service; ``pool`` exists between start and stop."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        migrations: Path | None,
        title: str,
        version: str = "1.0.0",
        description: str = "",
        relay: bool = True,
        startup_timeout: float = 120.0,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.schema = settings.postgres.schema_name
        self.topics: Topics = settings.kafka.topics
        self.broker: KafkaBroker = make_broker(settings.kafka, client_id=f"voxtrain-{settings.service_name}")
        self._migrations = migrations
        self._relay_enabled = relay
        self._startup_timeout = startup_timeout
        #: what the consumers and the relay report while they wait for a dependency (readiness, metrics)
        self.health = Health()
        self._pool: asyncpg.Pool | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        self._loops: list[Loop] = []
        self.loop("consumer-lag", lambda: measure_lag(self.broker), every=LAG_SECONDS)
        self.checks: dict[str, http.Check] = {"postgres": self._check_db, "kafka": self._check_kafka}
        self.app = FastAPI(title=title, version=version, description=description, lifespan=self._lifespan)
        self.app.state.auth_settings = settings.auth
        self.app.state.service = self
        #: spans of this service (the ``OTEL_*`` variables choose the exporter; off by default)
        self.tracing = tracing if tracing is not None else setup_tracing(settings.service_name)
        self.tracing.instrument_app(self.app)
        http.install(self.app, self.checks, self.health)
        # outermost: an anonymous or oversized body is refused before anything reads it
        self.app.add_middleware(
            BodyGuard,
            authenticate=functools.partial(authenticate, settings.auth),
            max_body_bytes=settings.http.max_body_bytes,
        )

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("service not started")
        return self._pool

    @property
    def stopping(self) -> asyncio.Event:
        return self._stop

    def consumer(self, topic: str, purpose: str, handler: Handler, types: set[str] | None = None) -> None:
        """Subscribe ``handler`` to ``topic`` in the group ``<namespace>.<service>.<purpose>``."""
        group = f"{self.topics.namespace}.{self.settings.service_name}.{purpose}"
        subscribe(
            self.broker,
            topic,
            group_id=group,
            handler=handler,
            types=types,
            max_retries=self.settings.kafka.max_retries,
            retry_cap=self.settings.kafka.retry_max_seconds,
            health=self.health,
            tracing=self.tracing,
        )

    def on_start(self, hook: Hook) -> None:
        """Run ``hook`` after the pool and broker are up."""
        self._on_start.append(hook)

    def on_stop(self, hook: Hook) -> None:
        self._on_stop.append(hook)

    def loop(self, name: str, step: Callable[[], Awaitable[object]], *, every: float) -> Loop:
        """A :class:`Loop` started with the service (after the on-start hooks) whose outages show in readiness."""
        lp = Loop(name, step, every=every, health=self.health)
        self._loops.append(lp)
        return lp

    def background(self, coro: Awaitable[Any]) -> None:
        """Run a task for the life of the service (cancelled at stop)."""
        self._tasks.append(asyncio.ensure_future(coro))

    async def start(self) -> None:
        s = self.settings
        logs.configure(s.service_name, s.log_level)
        self._stop.clear()
        pg = s.postgres
        dsn = pg.dsn.get_secret_value()
        self._pool = await self._until_up(
            "postgres",
            lambda: create_pool(
                dsn,
                self.schema,
                pg.pool_min,
                pg.pool_max,
                command_timeout=pg.command_timeout,
                acquire_timeout=pg.acquire_timeout,
                connect_timeout=pg.connect_timeout,
            ),
        )
        await self._until_up("migrations", self._migrate)
        await self._until_up("kafka", lambda: ensure_topics(s.kafka, self.topics.all(), s.kafka.topic_partitions))
        await self._until_up("kafka", self.broker.start)
        await self._await_assignments(timeout=30.0)
        if self._relay_enabled:
            relay = OutboxRelay(
                connector(
                    dsn,
                    self.schema,
                    role="relay",
                    command_timeout=pg.command_timeout,
                    connect_timeout=pg.connect_timeout,
                ),
                self.schema,
                BrokerPublisher(self.broker),
                health=self.health,
                tracing=self.tracing,
            )
            self.background(relay.run(self._stop))
        for hook in self._on_start:
            await hook(self)
        for lp in self._loops:
            self.background(lp.run(self._stop))
        log.info("service_started", service=s.service_name, schema=self.schema, port=s.http.port)

    async def _migrate(self) -> None:
        async with self.pool.acquire() as conn:
            await migrate(conn, self.schema, self._migrations)

    async def _until_up(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """``step()``, retried with backoff while it fails transiently (a dependency still starting)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._startup_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return await step()
            except Exception as exc:
                fault = classify(exc)
                if not fault.transient or loop.time() > deadline:
                    raise
                log.warning(
                    "waiting_for_dependency",
                    step=what,
                    dependency=fault.dependency or what,
                    error=fault.reason,
                    attempt=attempt,
                )
                await asyncio.sleep(backoff(attempt, base=0.5, cap=5.0))

    async def _await_assignments(self, timeout: float) -> None:
        """Wait (bounded) until each consumer holds partitions, so events published right after start
        are not left waiting for a group to form. With more replicas than partitions a consumer may
        legitimately get none: then this just times out and the service starts anyway."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            consumers = [getattr(sub, "consumer", None) for sub in self.broker.subscribers]
            if all(c is not None and c.assignment() for c in consumers):
                return
            await asyncio.sleep(0.1)
        log.warning("consumers_without_partitions", timeout=timeout)

    async def stop(self) -> None:
        self._stop.set()
        for hook in self._on_stop:
            await hook(self)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.broker.stop()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await asyncio.to_thread(self.tracing.flush)  # exports what is buffered (a restart goes on exporting)
        log.info("service_stopped", service=self.settings.service_name)

    @asynccontextmanager
    async def _lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def _check_db(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def _check_kafka(self) -> None:
        if not await self.broker.ping(timeout=3):
            raise ConnectionError("Kafka does not answer")
