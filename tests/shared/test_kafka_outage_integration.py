"""A Kafka crash and restart (a Kafka of this test alone): the relay is blocked on Kafka and counts its
backlog meanwhile, then publishes again; the consumer goes on; nothing restarts, nothing is dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.support import eventually, unique
from voxtrain_shared import events as ev
from voxtrain_shared import outbox
from voxtrain_shared.db import connector, create_pool, migrate
from voxtrain_shared.health import Health
from voxtrain_shared.kafka import BrokerPublisher, ensure_topics, make_broker, subscribe
from voxtrain_shared.metrics import EVENTS_DEAD_LETTERED, OUTBOX_BACKLOG
from voxtrain_shared.settings import KafkaSettings
from voxtrain_shared.topics import Topics

pytestmark = pytest.mark.integration


async def test_relay_and_consumer_go_on_after_a_kafka_crash(stack: Any, private_kafka: Any) -> None:
    bootstrap = private_kafka.endpoints.kafka_bootstrap
    schema, topics = unique("kout"), Topics(unique("ns"))
    await ensure_topics(bootstrap, topics.all(), partitions=1)
    broker = make_broker(KafkaSettings(bootstrap_servers=bootstrap), client_id="test")
    health, stop = Health(), asyncio.Event()
    handled: list[str] = []

    async def handler(env: ev.Envelope) -> None:
        handled.append(env.data["name"])

    subscribe(broker, topics.models, group_id=unique("g"), handler=handler, health=health, retry_cap=1.0)
    pool = await create_pool(stack.postgres_dsn, schema)
    async with pool.acquire() as c:
        await migrate(c, schema, None)
    await broker.start()
    relay = outbox.OutboxRelay(
        connector(stack.postgres_dsn, schema, role="relay"),
        schema,
        BrokerPublisher(broker),
        poll_interval=0.5,
        health=health,
        retry_cap=1.0,
        publish_timeout=5,
    )
    task = asyncio.create_task(relay.run(stop))

    async def add(name: str) -> None:
        async with pool.acquire() as c, c.transaction():
            await outbox.add(
                c,
                schema,
                topics,
                ev.wrap(
                    ev.ModelUpdated(name=name, auto_train=True, changed=[]), tenant_id="acme", model_id=uuid.uuid4()
                ),
            )

    async def has(name: str) -> bool:
        return name in handled

    dead_before = EVENTS_DEAD_LETTERED.labels(topic=topics.models)._value.get()
    try:
        await add("before")
        await eventually(lambda: has("before"), timeout=60)
        private_kafka.server.kill()
        await add("during")

        async def relay_blocked() -> bool:
            return (
                "kafka" in health.missing()
                and f"outbox relay {schema}" in health.problems()
                and OUTBOX_BACKLOG.labels(schema=schema)._value.get() == 1
            )

        await eventually(relay_blocked, timeout=120, interval=0.5)
        private_kafka.server.up(timeout=240)
        await eventually(lambda: has("during"), timeout=180, interval=0.5)

        async def clear() -> bool:
            return health.problems() == {}

        await eventually(clear, timeout=60, interval=0.5)
    finally:
        stop.set()
        await task
        await broker.stop()
        await pool.close()
    # at least once, in order: a publish whose acknowledgement the crash swallowed may come twice (the inbox of a
    # real consumer absorbs it); nothing is lost or dead-lettered
    assert list(dict.fromkeys(handled)) == ["before", "during"]
    assert EVENTS_DEAD_LETTERED.labels(topic=topics.models)._value.get() == dead_before
