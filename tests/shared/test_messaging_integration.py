"""Real Kafka: idempotent produce, consumer groups, bounded retries and the dead-letter topic."""

import asyncio
from uuid import uuid4

import pytest

from tests.support import TopicReader, unique
from voxtrain_shared import events as ev
from voxtrain_shared.kafka import PermanentError, ensure_topics, make_broker, subscribe
from voxtrain_shared.settings import KafkaSettings
from voxtrain_shared.topics import dead_letter

pytestmark = pytest.mark.integration


def _env(n: int, model_id=None) -> ev.Envelope:
    return ev.wrap(
        ev.ModelUpdated(name=f"m{n}", auto_train=True, changed=["name"]), tenant_id="acme", model_id=model_id or uuid4()
    )


async def test_idempotent_producer_and_group_consumer_see_every_event_in_order(stack) -> None:
    topic = unique("t.order")
    await ensure_topics(stack.kafka_bootstrap, [topic], partitions=3)
    broker = make_broker(KafkaSettings(bootstrap_servers=stack.kafka_bootstrap), client_id="test")
    await broker.start()
    model = uuid4()
    sent = [_env(i, model) for i in range(20)]
    try:
        kwargs = broker._connection_kwargs  # what the aiokafka producer was built with
        assert kwargs["enable_idempotence"] is True and kwargs["acks"] == "all"
        for e in sent:
            await broker.publish(e.to_bytes(), topic=topic, key=e.key())
    finally:
        await broker.stop()
    async with TopicReader(stack.kafka_bootstrap, topic) as reader:
        records = await reader.read(20)
    got = [ev.REGISTRY.parse(r.value).id for r in records]
    assert got == [e.id for e in sent]  # one key → one partition → order kept
    assert {r.partition for r in records} == {records[0].partition}


async def test_poison_messages_go_to_the_dead_letter_topic_and_the_consumer_keeps_going(stack) -> None:
    topic = unique("t.poison")
    await ensure_topics(stack.kafka_bootstrap, [topic], partitions=1)
    broker = make_broker(KafkaSettings(bootstrap_servers=stack.kafka_bootstrap), client_id="test")
    handled: list[str] = []
    attempts: dict[str, int] = {}

    async def handler(env: ev.Envelope) -> None:
        name = env.payload().name
        attempts[name] = attempts.get(name, 0) + 1
        if name == "always-fails":
            raise RuntimeError("boom")
        if name == "permanent":
            raise PermanentError("cannot ever work")
        if name == "flaky" and attempts[name] < 2:
            raise ConnectionError("transient")
        handled.append(name)

    subscribe(broker, topic, group_id=unique("g"), handler=handler, max_retries=2, retry_wait=0.01)
    await broker.start()
    try:
        msgs = [b"\x00garbage"] + [
            ev.wrap(ev.ModelUpdated(name=name, auto_train=True, changed=[]), tenant_id="a", model_id=uuid4()).to_bytes()
            for name in ("always-fails", "permanent", "flaky", "fine")
        ]
        for m in msgs:
            await broker.publish(m, topic=topic)
        async with TopicReader(stack.kafka_bootstrap, dead_letter(topic)) as dlt:
            dead = await dlt.read(3, timeout=60)
        for _ in range(100):
            if "fine" in handled:
                break
            await asyncio.sleep(0.1)
    finally:
        await broker.stop()
    assert handled == ["flaky", "fine"]
    assert attempts["always-fails"] == 3 and attempts["permanent"] == 1 and attempts["flaky"] == 2
    reasons = {r.value: dict((k, v.decode()) for k, v in r.headers) for r in dead}
    assert set(reasons) == {msgs[0], msgs[1], msgs[2]}
    assert "RuntimeError('boom')" in reasons[msgs[1]]["x-dead-letter-reason"]
    assert reasons[msgs[1]]["x-attempts"] == "3"
    assert reasons[msgs[0]]["x-original-topic"] == topic


async def test_consumer_lag_counts_the_records_a_group_has_not_handled_yet(stack) -> None:
    from voxtrain_shared.kafka import measure_lag
    from voxtrain_shared.metrics import CONSUMER_LAG

    topic, group = unique("t.lag"), unique("g")
    await ensure_topics(stack.kafka_bootstrap, [topic], partitions=1)
    broker = make_broker(KafkaSettings(bootstrap_servers=stack.kafka_bootstrap), client_id="test")
    release, handled = asyncio.Event(), []

    async def handler(env: ev.Envelope) -> None:
        await release.wait()
        handled.append(env.id)

    subscribe(broker, topic, group_id=group, handler=handler)
    await broker.start()
    try:
        for i in range(5):
            await broker.publish(_env(i).to_bytes(), topic=topic, key=b"one-partition")
        lag = CONSUMER_LAG.labels(topic=topic, group=group)
        for _ in range(300):  # the first record is being handled; the other four wait
            await measure_lag(broker)
            if lag._value.get() == 4:
                break
            await asyncio.sleep(0.1)
        assert lag._value.get() == 4
        release.set()
        for _ in range(300):
            if len(handled) == 5:
                break
            await asyncio.sleep(0.1)
        await measure_lag(broker)
        assert lag._value.get() == 0
    finally:
        await broker.stop()
