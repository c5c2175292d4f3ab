"""Real PostgreSQL + Kafka: migrations, the transactional outbox and the inbox."""

import asyncio
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from tests.support import TopicReader, unique
from voxtrain_shared import events as ev
from voxtrain_shared import inbox, outbox
from voxtrain_shared.db import connector, create_pool, migrate
from voxtrain_shared.kafka import BrokerPublisher, ensure_topics, make_broker
from voxtrain_shared.settings import KafkaSettings
from voxtrain_shared.topics import Topics

pytestmark = pytest.mark.integration


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    (tmp_path / "0001_things.sql").write_text("CREATE TABLE things (id uuid PRIMARY KEY, name text NOT NULL);")
    (tmp_path / "0002_effects.sql").write_text("CREATE TABLE effects (event_id uuid NOT NULL, n int NOT NULL);")
    return tmp_path


async def test_migrations_apply_once_even_when_run_twice_and_concurrently(stack, migrations: Path) -> None:
    schema = unique("mig")
    conns = [await asyncpg.connect(stack.postgres_dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c, schema, migrations) for c in conns))
        applied = sorted(name for r in results for name in r)
        assert applied == [
            "0001_things.sql",
            "0002_effects.sql",
            "shared_0001_outbox_inbox.sql",
            "shared_0002_outbox_parking.sql",
            "shared_0003_outbox_trace_context.sql",
        ]
        assert await migrate(conns[0], schema, migrations) == []
        assert await conns[0].fetchval(f"SELECT count(*) FROM {schema}.schema_migrations") == 5
    finally:
        for c in conns:
            await c.close()


class CrashAfterPublish:
    """Publishes, then dies before the relay can mark the rows sent (a crash between the two)."""

    def __init__(self, inner: outbox.Publisher) -> None:
        self.inner = inner

    async def publish(self, topic, value, key, headers) -> None:
        await self.inner.publish(topic, value, key, headers)
        raise ConnectionResetError("relay killed after publishing")


async def test_outbox_survives_crashes_and_the_inbox_keeps_effects_single(stack, migrations: Path) -> None:
    schema = unique("obx")
    topics = Topics(unique("ns"))
    await ensure_topics(stack.kafka_bootstrap, topics.all(), partitions=1, with_dead_letters=False)
    pool = await create_pool(stack.postgres_dsn, schema)
    broker = make_broker(KafkaSettings(bootstrap_servers=stack.kafka_bootstrap), client_id="test")
    await broker.start()
    try:
        async with pool.acquire() as c:
            await migrate(c, schema, migrations)
        # State and event commit together; the process "dies" before any relay runs.
        model = uuid4()
        env = ev.wrap(ev.ModelCreated(name="n", language="en-US"), tenant_id="acme", model_id=model)
        async with pool.acquire() as c, c.transaction():
            await c.execute("INSERT INTO things VALUES ($1, 'n')", model)
            await outbox.add(c, schema, topics, env)
        # A rolled-back transaction leaves no event behind.
        with pytest.raises(RuntimeError):
            async with pool.acquire() as c, c.transaction():
                await outbox.add(c, schema, topics, ev.wrap(ev.ModelDeleted(), tenant_id="acme", model_id=model))
                raise RuntimeError("handler failed after writing")
        async with pool.acquire() as c:
            assert (await outbox.backlog(c, schema)).unsent == 1

        # First relay publishes but crashes before marking: the row stays unsent.
        connect = connector(stack.postgres_dsn, schema, role="test")
        crashing = outbox.OutboxRelay(connect, schema, CrashAfterPublish(BrokerPublisher(broker)))
        with pytest.raises(outbox.PublishFailed) as failed:
            await crashing.run_once()
        assert isinstance(failed.value.__cause__, ConnectionResetError)
        await crashing.close()
        # The restarted relay publishes it again and marks it.
        relay = outbox.OutboxRelay(connect, schema, BrokerPublisher(broker))
        assert await relay.drain() == 1
        await relay.close()
        async with pool.acquire() as c:
            assert (await outbox.backlog(c, schema)).unsent == 0

        async with TopicReader(stack.kafka_bootstrap, topics.models) as reader:
            await reader.read(2)
            await reader.settle(1.0)
        assert len(reader.records) == 2  # delivered twice: at least once
        # A consumer with the inbox applies the effect once.
        for r in reader.records:
            got = ev.REGISTRY.parse(r.value)
            async with pool.acquire() as c, c.transaction():
                if await inbox.claim(c, schema, "test-consumer", got.id):
                    await c.execute("INSERT INTO effects VALUES ($1, 1)", got.id)
        async with pool.acquire() as c:
            assert await c.fetchval("SELECT count(*) FROM effects") == 1
    finally:
        await broker.stop()
        await pool.close()


async def test_relay_is_woken_by_notify(stack, migrations: Path) -> None:
    schema = unique("obn")
    topics = Topics(unique("ns"))
    await ensure_topics(stack.kafka_bootstrap, topics.all(), partitions=1, with_dead_letters=False)
    pool = await create_pool(stack.postgres_dsn, schema)
    broker = make_broker(KafkaSettings(bootstrap_servers=stack.kafka_bootstrap), client_id="test")
    await broker.start()
    stop = asyncio.Event()
    relay = outbox.OutboxRelay(
        connector(stack.postgres_dsn, schema, role="test"), schema, BrokerPublisher(broker), poll_interval=60
    )  # only NOTIFY can wake it
    task = asyncio.create_task(relay.run(stop))
    try:
        async with pool.acquire() as c:
            await migrate(c, schema, migrations)
        await asyncio.sleep(0.5)
        async with TopicReader(stack.kafka_bootstrap, topics.models) as reader:
            async with pool.acquire() as c, c.transaction():
                await outbox.add(c, schema, topics, ev.wrap(ev.ModelDeleted(), tenant_id="acme", model_id=uuid4()))
            await reader.read(1, timeout=15)
    finally:
        stop.set()
        await task
        await broker.stop()
        await pool.close()
