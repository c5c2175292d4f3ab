"""Real Kafka: every kind of poison is dead-lettered within seconds and the good message behind it is handled;
the console's feed skips poison and keeps relaying."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from tests.support import TopicReader, unique
from voxtrain_shared import events as ev
from voxtrain_shared.kafka import ensure_topics, make_broker, subscribe
from voxtrain_shared.settings import KafkaSettings
from voxtrain_shared.topics import Topics, dead_letter

pytestmark = pytest.mark.integration


def _updated(name: str) -> ev.Envelope:
    return ev.wrap(ev.ModelUpdated(name=name, auto_train=True, changed=[]), tenant_id="acme", model_id=uuid.uuid4())


def _poison() -> list[tuple[str, bytes, list[tuple[str, bytes]]]]:
    good = _updated("x")
    return [
        ("deep", b"[" * 100_000 + b"\n", []),
        ("invalid json", b'{"id": ', []),
        ("not utf-8 body", b"\xff\xfe\xfa", []),
        ("not utf-8 header", good.to_bytes(), [("authorization", b"\xff\xfe")]),
        ("unknown type", good.model_copy(update={"type": "Bogus"}).to_bytes(), []),
        ("wrong schema", good.model_copy(update={"data": {"name": ["no"]}}).to_bytes(), []),
        ("oversized", b'{"pad": "' + b"x" * 900_000 + b'"}', []),
    ]


async def test_each_kind_of_poison_is_dead_lettered_within_seconds_and_the_next_message_is_handled(stack: Any) -> None:
    topic = unique("t.poison")
    await ensure_topics(stack.kafka_bootstrap, [topic], partitions=1)
    broker = make_broker(KafkaSettings(bootstrap_servers=stack.kafka_bootstrap), client_id="test")
    handled: list[str] = []

    async def handler(env: ev.Envelope) -> None:
        handled.append(env.data["name"])

    subscribe(broker, topic, group_id=unique("g"), handler=handler, max_message_bytes=512 * 1024)
    await broker.start()
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, max_request_size=2 * 1024 * 1024)
    await producer.start()
    poison = _poison()
    try:
        async with TopicReader(stack.kafka_bootstrap, dead_letter(topic)) as dlt:
            started = time.monotonic()
            for _, value, headers in poison:
                await producer.send_and_wait(topic, value, key=b"same-partition", headers=headers)
            await producer.send_and_wait(topic, _updated("good").to_bytes(), key=b"same-partition")
            dead = await dlt.read(len(poison), timeout=60)
            while "good" not in handled and time.monotonic() - started < 60:
                await asyncio.sleep(0.1)
            elapsed = time.monotonic() - started
    finally:
        await producer.stop()
        await broker.stop()
    assert handled == ["good"]
    assert elapsed < 30, f"poison took {elapsed:.1f} s to clear"
    reasons = [dict((k, v.decode("utf-8", "replace")) for k, v in r.headers)["x-dead-letter-reason"] for r in dead]
    assert [r.value for r in dead] == [value for _, value, _ in poison]
    expected = [
        "nested 100000 levels",
        "not JSON",
        "not JSON",
        "header 'authorization' is not UTF-8",
        "unknown message type",
        "invalid ModelUpdated",
        "exceeds the limit",
    ]
    for reason, want in zip(reasons, expected, strict=True):
        assert want in reason


async def test_the_console_feed_skips_poison_and_keeps_relaying(stack: Any) -> None:
    from tests.console.test_live import status_changed
    from voxtrain_console.feed import KafkaFeed
    from voxtrain_console.live import Hub

    topics = Topics(unique("feed"))
    hub = Hub()
    feed = KafkaFeed(KafkaSettings(bootstrap_servers=stack.kafka_bootstrap, topic_namespace=topics.namespace), hub)
    await feed.start()
    try:
        await feed.wait_ready(60)
        with hub.subscribe("acme") as sub:
            producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
            await producer.start()
            try:
                for _, value, headers in _poison()[:3]:
                    await producer.send_and_wait(topics.status, value, key=b"k", headers=headers)
                good = status_changed("acme", 2, 3, uuid.uuid4())
                await producer.send_and_wait(topics.status, good.to_bytes(), key=b"k")
            finally:
                await producer.stop()
            event = await sub.next(30)
    finally:
        await feed.stop()
    assert event is not None
