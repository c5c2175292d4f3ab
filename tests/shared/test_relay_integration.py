"""Real PostgreSQL + Kafka: a row that cannot be published is parked while the rows behind it flow; two relays
of one schema keep every model's events in order; a relay that cannot reach Kafka is blocked and counts its
backlog; the trace context current when an event is written travels with its row and leaves as Kafka headers."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import defaultdict
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support import TopicReader, eventually, unique
from voxtrain_shared import events as ev
from voxtrain_shared import ops, outbox, tracing
from voxtrain_shared.db import connector, create_pool, migrate
from voxtrain_shared.health import Health
from voxtrain_shared.kafka import BrokerPublisher, ensure_topics, make_broker
from voxtrain_shared.metrics import OUTBOX_BACKLOG, OUTBOX_PARKED
from voxtrain_shared.settings import KafkaSettings
from voxtrain_shared.topics import Topics

pytestmark = pytest.mark.integration


def _updated(name: str, model_id: uuid.UUID | None = None, reason: str = "") -> ev.Envelope:
    return ev.wrap(
        ev.ModelUpdated(name=name, description=reason or None, auto_train=True, changed=[]),
        tenant_id="acme",
        model_id=model_id or uuid.uuid4(),
    )


class Setup:
    def __init__(self, stack: Any) -> None:
        self.stack, self.schema, self.topics = stack, unique("rly"), Topics(unique("ns"))

    async def __aenter__(self) -> Setup:
        await ensure_topics(self.stack.kafka_bootstrap, self.topics.all(), partitions=1, with_dead_letters=False)
        self.pool = await create_pool(self.stack.postgres_dsn, self.schema)
        async with self.pool.acquire() as c:
            await migrate(c, self.schema, None)
        self.broker = make_broker(KafkaSettings(bootstrap_servers=self.stack.kafka_bootstrap), client_id="test")
        await self.broker.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.broker.stop()
        await self.pool.close()

    def relay(self, publisher: Any = None, **kwargs: Any) -> outbox.OutboxRelay:
        return outbox.OutboxRelay(
            connector(self.stack.postgres_dsn, self.schema, role="test"),
            self.schema,
            publisher or BrokerPublisher(self.broker),
            **kwargs,
        )

    async def add(self, *envs: ev.Envelope) -> None:
        async with self.pool.acquire() as c, c.transaction():
            for env in envs:
                await outbox.add(c, self.schema, self.topics, env)


async def test_an_event_kafka_refuses_is_parked_and_the_rows_behind_it_flow(stack: Any) -> None:
    async with Setup(stack) as s:
        model = uuid.uuid4()
        # 2 MB of text in one field: nothing to cut, and over Kafka's 1 MiB limit
        huge = _updated("huge", model, reason="x" * 2_000_000)
        await s.add(_updated("a", model), huge, _updated("b", model))
        # the producer itself refuses it (the relay's own size guard is lifted to let Kafka decide)
        relay = s.relay(max_event_bytes=10 * 1024 * 1024)
        async with TopicReader(stack.kafka_bootstrap, s.topics.models) as reader:
            assert await relay.drain() == 3
            await reader.read(2, timeout=30)
            await reader.settle(1.0)
        await relay.close()
        async with s.pool.acquire() as c:
            b = await outbox.backlog(c, s.schema)
            parked = await c.fetchrow(
                f"SELECT event_id, park_reason FROM {s.schema}.outbox WHERE parked_at IS NOT NULL"
            )
        assert [ev.REGISTRY.parse(r.value).data["name"] for r in reader.records] == ["a", "b"]
        assert (b.unsent, b.parked) == (0, 1)
        assert parked["event_id"] == huge.id and "Kafka refused it" in parked["park_reason"]
        rows = await ops.outbox_status(stack.postgres_dsn, [s.schema])
        assert rows[0]["parked"] == 1 and "Kafka refused it" in rows[0]["last_park_reason"]

        # and with the relay's own guard (Kafka's default limit), it is parked before any publish is tried
        await s.add(_updated("c", model), _updated("huge2", model, reason="y" * 2_000_000))
        stop = asyncio.Event()
        task = asyncio.create_task(s.relay(poll_interval=0.2).run(stop))
        try:
            await eventually(lambda: _parked_metric(s.schema, 2), timeout=30)
        finally:
            stop.set()
            await task


async def _parked_metric(schema: str, n: int) -> bool:
    return OUTBOX_PARKED.labels(schema=schema)._value.get() == n


class SlowPublisher:
    """Publishes with random small delays, so two relays' batches would interleave if they could."""

    def __init__(self, inner: outbox.Publisher) -> None:
        self.inner = inner

    async def publish(self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]) -> None:
        await asyncio.sleep(random.uniform(0, 0.004))
        await self.inner.publish(topic, value, key, headers)


async def test_two_relays_of_one_schema_keep_each_models_events_in_order(stack: Any) -> None:
    async with Setup(stack) as s:
        models = [uuid.uuid4() for _ in range(4)]
        stop = asyncio.Event()
        relays = [s.relay(SlowPublisher(BrokerPublisher(s.broker)), batch_size=3, poll_interval=0.05) for _ in range(2)]
        tasks = [asyncio.create_task(r.run(stop)) for r in relays]
        per_model = 40

        async def writer(model: uuid.UUID) -> None:
            for i in range(per_model):  # one transaction per event, as the services write them
                await s.add(_updated(f"{i:03d}", model))
                await asyncio.sleep(random.uniform(0, 0.003))

        try:
            async with TopicReader(stack.kafka_bootstrap, s.topics.models) as reader:
                await asyncio.gather(*(writer(m) for m in models))
                await reader.until(lambda recs: len({r.value for r in recs}) >= per_model * len(models), timeout=120)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    seen: dict[str, list[str]] = defaultdict(list)
    for r in reader.records:
        env = ev.REGISTRY.parse(r.value)
        names = seen[str(env.model_id)]
        if env.data["name"] not in names:  # a redelivery may repeat; first occurrences must be in order
            names.append(env.data["name"])
    assert set(seen) == {str(m) for m in models}
    for names in seen.values():
        assert names == [f"{i:03d}" for i in range(per_model)]


class DownPublisher:
    async def publish(self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]) -> None:
        from aiokafka.errors import KafkaConnectionError

        raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1, <AddressFamily.AF_INET: 2>)]")


async def test_a_relay_that_cannot_publish_is_blocked_on_kafka_and_counts_its_backlog(stack: Any) -> None:
    async with Setup(stack) as s:
        await s.add(_updated("a"), _updated("b"), _updated("c"))
        health, stop = Health(), asyncio.Event()
        task = asyncio.create_task(s.relay(DownPublisher(), poll_interval=0.2, health=health, retry_cap=0.5).run(stop))
        try:

            async def blocked() -> bool:
                return health.missing() == ["kafka"] and OUTBOX_BACKLOG.labels(schema=s.schema)._value.get() == 3

            await eventually(blocked, timeout=30)
            assert "Kafka" in health.problems()[f"outbox relay {s.schema}"]
        finally:
            stop.set()
            await task
        async with s.pool.acquire() as c:
            assert (await outbox.backlog(c, s.schema)).unsent == 3  # nothing parked, nothing lost


TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


async def _relay_traced(stack: Any, t: tracing.Tracing, headers: dict[str, str] | None) -> tuple[Any, dict[str, str]]:
    """Write one event inside the context ``headers`` carry (if any), relay it with ``t``; the row's stored context
    and the Kafka record's headers."""
    async with Setup(stack) as s:
        env = _updated("traced")
        with tracing.attached(headers):
            await s.add(env)
        async with s.pool.acquire() as c:
            stored = await c.fetchval(f'SELECT trace_context FROM "{s.schema}".outbox WHERE event_id=$1', env.id)
        relay = s.relay(tracing=t)
        async with TopicReader(stack.kafka_bootstrap, s.topics.models) as reader:
            assert await relay.drain() == 1
            (record,) = await reader.read(1)
        await relay.close()
        return stored, {k: v.decode() for k, v in record.headers}


async def test_the_writers_trace_context_travels_with_the_row_and_leaves_as_kafka_headers(stack: Any) -> None:
    spans = InMemorySpanExporter()
    stored, headers = await _relay_traced(stack, tracing.setup("models", exporter=spans), {"traceparent": TRACEPARENT})
    assert json.loads(stored) == {"traceparent": TRACEPARENT}
    (publish,) = spans.get_finished_spans()
    assert publish.kind is trace.SpanKind.PRODUCER and publish.name.endswith(" publish")
    assert trace.format_trace_id(publish.context.trace_id) == TRACE_ID
    assert publish.parent is not None and trace.format_span_id(publish.parent.span_id) == "b7ad6b7169203331"
    # the consumer's parent is the relay's publish span, in the writer's trace
    assert headers["traceparent"] == f"00-{TRACE_ID}-{trace.format_span_id(publish.context.span_id)}-01"
    assert headers["event_type"] == "ModelUpdated"


async def test_with_tracing_off_the_stored_context_is_passed_on_as_it_was(stack: Any) -> None:
    stored, headers = await _relay_traced(stack, tracing.off(), {"traceparent": TRACEPARENT})
    assert json.loads(stored) == {"traceparent": TRACEPARENT} and headers["traceparent"] == TRACEPARENT


async def test_without_a_context_nothing_is_stored_and_no_trace_header_is_sent(stack: Any) -> None:
    stored, headers = await _relay_traced(stack, tracing.off(), None)
    assert stored is None
    assert not {"traceparent", "tracestate"} & set(headers) and headers["event_type"] == "ModelUpdated"


GAUGES = "FILTER (WHERE parked_at IS NULL)"  #: in the backlog gauges' query (outbox.backlog)


class Statements:
    """The relay's connector, recording every statement its connections run (asyncpg's query logger)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.sql = inner, []

    async def __call__(self) -> Any:
        conn = await self.inner()
        conn.add_query_logger(lambda q: self.sql.append(q.query))
        return conn

    def count(self, text: str) -> int:
        return sum(text in q for q in self.sql)


async def test_a_short_batch_ends_the_drain_and_a_full_one_does_not(stack: Any) -> None:
    async with Setup(stack) as s:
        seen = Statements(connector(s.stack.postgres_dsn, s.schema, role="test"))
        relay = outbox.OutboxRelay(seen, s.schema, BrokerPublisher(s.broker), batch_size=2)
        await s.add(*(_updated(n) for n in "abcde"))
        assert await relay.drain() == 5  # batches of 2, 2, 1: the short one is the last
        assert seen.count("ORDER BY seq LIMIT") == 3  # no 4th, empty batch
        await s.add(_updated("f"), _updated("g"))
        assert await relay.drain() == 2  # a full batch: one more looks for what may follow
        assert seen.count("ORDER BY seq LIMIT") == 5
        await relay.close()


async def test_a_relay_woken_per_event_refreshes_its_backlog_gauges_once_per_poll_interval(stack: Any) -> None:
    async with Setup(stack) as s:
        seen = Statements(connector(s.stack.postgres_dsn, s.schema, role="test"))
        stop = asyncio.Event()
        relay = outbox.OutboxRelay(seen, s.schema, BrokerPublisher(s.broker), poll_interval=3600)
        task = asyncio.create_task(relay.run(stop))

        async def first_round_done() -> bool:
            return seen.count(GAUGES) == 1

        try:
            await eventually(first_round_done, timeout=30)  # its first round (empty) refreshed the gauges
            async with TopicReader(stack.kafka_bootstrap, s.topics.models) as reader:
                for i, name in enumerate("abc", start=1):  # each NOTIFY wakes the relay for a batch of its own
                    await s.add(_updated(name))
                    await reader.read(i, timeout=30)
            assert seen.count("ORDER BY seq LIMIT") >= 3
            assert seen.count(GAUGES) == 1  # not again for these three wakes: once per poll interval
            assert OUTBOX_BACKLOG.labels(schema=s.schema)._value.get() == 0
        finally:
            stop.set()
            await task
