"""A running service through a PostgreSQL crash and restart (its own PostgreSQL; Kafka is the shared one).

While the database is away: HTTP answers 503 ``dependency_unavailable``, ``/health/ready`` names PostgreSQL,
a message that arrives is retried (never dead-lettered). Once it is back — without restarting the service —
the message is handled, the relay publishes again (an event committed before the crash included), and
readiness is 200.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi import APIRouter

from tests.support import TopicReader, eventually, publish, running, settings_for, unique
from voxtrain_shared import events as ev
from voxtrain_shared.service import Service
from voxtrain_shared.settings import ServiceSettings
from voxtrain_shared.topics import dead_letter
from voxtrain_shared.uow import Context, UnitOfWork, handle_once

pytestmark = pytest.mark.integration


class EffectsRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def record(self, event_id: uuid.UUID, name: str) -> None:
        await self.conn.execute("INSERT INTO effects(event_id, name) VALUES ($1, $2)", event_id, name)

    async def names(self) -> list[str]:
        return [r["name"] for r in await self.conn.fetch("SELECT name FROM effects ORDER BY name")]


def build(settings: ServiceSettings, migrations: Path) -> Service:
    svc = Service(settings, migrations=migrations, title="outage test")
    uow = UnitOfWork(lambda: svc.pool, svc.schema, svc.topics, EffectsRepository)

    async def apply(tx: Any, env: ev.Envelope) -> None:
        await tx.repo.record(env.id, env.data["name"])

    async def handler(env: ev.Envelope) -> None:
        await handle_once(uow, env, "effects", apply)

    svc.consumer(svc.topics.models, "effects", handler)
    router = APIRouter()

    @router.get("/effects")
    async def effects() -> list[str]:
        async with uow.reading() as repo:
            return await repo.names()

    @router.post("/emit/{name}")
    async def emit(name: str) -> dict[str, str]:
        async with uow(Context("acme", uuid.uuid4())) as tx:
            await tx.emit(ev.ModelUpdated(name=name, auto_train=True, changed=["name"]), uuid.uuid4())
        return {"emitted": name}

    svc.app.include_router(router)
    return svc


def _updated(name: str) -> ev.Envelope:
    return ev.wrap(ev.ModelUpdated(name=name, auto_train=True, changed=[]), tenant_id="acme", model_id=uuid.uuid4())


async def test_a_postgres_crash_is_waited_out_and_everything_goes_on_without_a_restart(
    stack: Any, private_postgres: Any, tmp_path: Path
) -> None:
    (tmp_path / "0001_effects.sql").write_text("CREATE TABLE effects (event_id uuid PRIMARY KEY, name text);")
    settings = settings_for(
        ServiceSettings,
        stack,
        VOXTRAIN_POSTGRES__DSN=private_postgres.endpoints.postgres_dsn,
        VOXTRAIN_SERVICE_NAME="outage",
        VOXTRAIN_KAFKA__RETRY_MAX_SECONDS="2",
        VOXTRAIN_POSTGRES__ACQUIRE_TIMEOUT="3",
        VOXTRAIN_POSTGRES__CONNECT_TIMEOUT="3",
    )
    svc = build(settings, tmp_path)
    topic = svc.topics.models
    async with (
        running(svc) as client,
        TopicReader(stack.kafka_bootstrap, topic) as events,
        TopicReader(stack.kafka_bootstrap, dead_letter(topic)) as dead,
    ):
        await publish(stack.kafka_bootstrap, topic, _updated("before"))
        await eventually(lambda: _names(client, "before"), timeout=60)
        assert (await client.get("/health/ready")).status_code == 200

        # An event committed just before the crash: durable, relayed after the restart.
        assert (await client.post("/emit/committed-before-crash")).status_code == 200
        private_postgres.server.kill()

        r = await client.get("/effects")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "dependency_unavailable"
        assert r.json()["error"]["details"] == {"dependency": "postgres"}
        assert "PostgreSQL" in r.json()["error"]["message"] and r.headers["Retry-After"]

        await publish(stack.kafka_bootstrap, topic, _updated("during"))

        async def blocked_on_postgres() -> dict[str, Any] | None:
            r = await client.get("/health/ready")
            body = r.json()
            waiting = [v for k, v in body["blocked"].items() if k.startswith("consumer") and "PostgreSQL" in v]
            return body if r.status_code == 503 and "postgres" in body["missing"] and waiting else None

        ready = await eventually(blocked_on_postgres, timeout=60, interval=0.5)
        assert any(k.startswith("outbox relay") for k in ready["blocked"]) or ready["checks"]["postgres"] != "ok"

        private_postgres.server.up(timeout=180)

        await eventually(lambda: _names(client, "during"), timeout=90, interval=0.5)
        assert (await client.post("/emit/after-restart")).status_code == 200
        await events.until(
            lambda recs: (
                {"committed-before-crash", "after-restart"} <= {ev.REGISTRY.parse(r.value).data["name"] for r in recs}
            ),
            timeout=60,
        )

        async def ready_again() -> bool:
            return (await client.get("/health/ready")).status_code == 200

        await eventually(ready_again, timeout=60, interval=0.5)
        await dead.settle(1.0)
        assert dead.records == []  # nothing from a transient fault was dead-lettered
    # each message's effect exactly once (the relayed events come back to this same consumer too)
    assert await _effects(private_postgres.endpoints.postgres_dsn, svc.schema) == {
        "before": 1,
        "during": 1,
        "committed-before-crash": 1,
        "after-restart": 1,
    }


async def _names(client: Any, name: str) -> bool:
    r = await client.get("/effects")
    return r.status_code == 200 and name in r.json()


async def _effects(dsn: str, schema: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f'SELECT name, count(*) AS n FROM "{schema}".effects GROUP BY name')
        return {r["name"]: int(r["n"]) for r in rows}
    finally:
        await conn.close()


async def test_the_relay_heals_its_listener_after_a_postgres_restart(stack: Any, private_postgres: Any) -> None:
    """Only NOTIFY can wake the relay quickly (long poll): after the restart its new LISTEN must work."""
    from voxtrain_shared import outbox
    from voxtrain_shared.db import connector, create_pool, migrate
    from voxtrain_shared.health import Health
    from voxtrain_shared.kafka import BrokerPublisher, ensure_topics, make_broker
    from voxtrain_shared.settings import KafkaSettings
    from voxtrain_shared.topics import Topics

    dsn, schema, topics = private_postgres.endpoints.postgres_dsn, unique("heal"), Topics(unique("ns"))
    await ensure_topics(stack.kafka_bootstrap, topics.all(), partitions=1, with_dead_letters=False)
    broker = make_broker(KafkaSettings(bootstrap_servers=stack.kafka_bootstrap), client_id="test")
    await broker.start()
    health, stop = Health(), asyncio.Event()
    relay = outbox.OutboxRelay(
        connector(dsn, schema, role="relay", connect_timeout=2),
        schema,
        BrokerPublisher(broker),
        poll_interval=30,
        health=health,
        retry_cap=1.0,
    )
    pool = await create_pool(dsn, schema, acquire_timeout=3, connect_timeout=2)
    async with pool.acquire() as c:
        await migrate(c, schema, None)
        # the devstack's PostgreSQL (make run, the tests) is durable: a crash keeps every commit
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            assert await c.fetchval(f"SHOW {setting}") == "on"
    task = asyncio.create_task(relay.run(stop))

    async def add(name: str) -> None:
        async with pool.acquire() as c, c.transaction():
            await outbox.add(c, schema, topics, _updated(name))

    try:
        async with TopicReader(stack.kafka_bootstrap, topics.models) as reader:
            await add("first")
            await reader.read(1, timeout=30)

            async def sent() -> bool:
                async with pool.acquire() as c:
                    return (await outbox.backlog(c, schema)).unsent == 0

            await eventually(sent, timeout=30)
            private_postgres.server.stop()  # a clean restart this time (the other test crashes it)
            await eventually(lambda: _async(bool(health.problems())), timeout=30)
            assert "PostgreSQL" in next(iter(health.problems().values()))
            private_postgres.server.up(timeout=180)
            await eventually(lambda: _async(not health.problems()), timeout=60)

            async def added() -> bool:
                try:
                    await add("second")
                    return True
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    return False  # a pooled connection from before the restart: the pool replaces it

            await eventually(added, timeout=30)
            # well within the 30 s poll: the relay was woken by the NOTIFY on its new connection
            await reader.until(lambda recs: len(recs) >= 2, timeout=10)
    finally:
        stop.set()
        await task
        await pool.close()
        await broker.stop()
    assert [ev.REGISTRY.parse(r.value).data["name"] for r in reader.records] == ["first", "second"]


async def _async(value: bool) -> bool:
    return value
