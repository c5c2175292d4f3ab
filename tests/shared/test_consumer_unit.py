"""The consumer's decisions with FastStream's in-memory broker: poison, permanent, transient, unknown errors."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import asyncpg
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from voxtrain_shared import events as ev
from voxtrain_shared.faults import PermanentError
from voxtrain_shared.health import Health
from voxtrain_shared.kafka import subscribe
from voxtrain_shared.topics import dead_letter

TOPIC = "unit.topic"


def _env(name: str) -> bytes:
    return ev.wrap(ev.ModelUpdated(name=name, auto_train=True, changed=[]), tenant_id="a", model_id=uuid4()).to_bytes()


class Recorder:
    def __init__(self, broker: KafkaBroker, *, fail: dict[str, list[BaseException]] | None = None) -> None:
        self.handled: list[str] = []
        self.calls: dict[str, int] = {}
        self.dead: list[tuple[bytes, dict[str, str]]] = []
        self._fail = fail or {}

        async def raw(msg: StreamMessage[object]) -> object:
            return msg.body

        @broker.subscriber(dead_letter(TOPIC), decoder=raw)
        async def dlt(msg: KafkaMessage) -> None:
            self.dead.append((msg.body, dict(msg.headers)))

    async def handle(self, env: ev.Envelope) -> None:
        name = env.data["name"]
        self.calls[name] = self.calls.get(name, 0) + 1
        errors = self._fail.get(name, [])
        if errors:
            raise errors.pop(0)
        self.handled.append(name)


def _broker_with(
    rec_fail: dict[str, list[BaseException]] | None = None, **kwargs: object
) -> tuple[KafkaBroker, Recorder, Health]:
    broker = KafkaBroker()
    rec = Recorder(broker, fail=rec_fail)
    health = Health()
    subscribe(
        broker, TOPIC, group_id="g", handler=rec.handle, retry_wait=0.001, retry_cap=0.01, health=health, **kwargs
    )
    return broker, rec, health


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"[" * 100_000, "nested"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b'"a string"', "not an object"),
        (b'{"type": "Nope", "version": 1}', "not a voxtrain envelope"),
        (
            ev.wrap(ev.ModelDeleted(), tenant_id="a", model_id=uuid4())
            .model_copy(update={"type": "Unknown"})
            .to_bytes(),
            "unknown message type",
        ),
        (
            ev.wrap(ev.ModelUpdated(name="x", auto_train=True, changed=[]), tenant_id="a", model_id=uuid4())
            .model_copy(update={"data": {"name": 3}})
            .to_bytes(),
            "invalid ModelUpdated",
        ),
        (b"{" + b" " * 2_000_000 + b"}", "exceeds the limit"),
    ],
)
async def test_poison_is_dead_lettered_at_once_with_its_reason_and_the_next_message_is_handled(
    raw: bytes, reason: str
) -> None:
    broker, rec, _ = _broker_with()
    async with TestKafkaBroker(broker) as br:
        await br.publish(raw, topic=TOPIC)
        await br.publish(_env("good"), topic=TOPIC)
    assert rec.handled == ["good"]
    assert len(rec.dead) == 1
    body, headers = rec.dead[0]
    assert body == raw
    assert reason in headers["x-dead-letter-reason"]
    assert headers["x-dead-letter-kind"] == "poison" and headers["x-original-topic"] == TOPIC


async def test_permanent_errors_are_dead_lettered_without_retries() -> None:
    broker, rec, _ = _broker_with({"bad": [PermanentError("the message is wrong")]})
    async with TestKafkaBroker(broker) as br:
        await br.publish(_env("bad"), topic=TOPIC)
    assert rec.calls == {"bad": 1}
    assert rec.dead[0][1]["x-dead-letter-kind"] == "permanent" and rec.dead[0][1]["x-attempts"] == "1"


async def test_unknown_errors_are_retried_a_bounded_number_of_times_then_dead_lettered() -> None:
    broker, rec, _ = _broker_with({"bug": [RuntimeError("boom")] * 10}, max_retries=2)
    async with TestKafkaBroker(broker) as br:
        await br.publish(_env("bug"), topic=TOPIC)
    assert rec.calls == {"bug": 3}
    assert "RuntimeError('boom')" in rec.dead[0][1]["x-dead-letter-reason"]


async def test_transient_errors_are_retried_until_the_dependency_is_back_and_never_dead_lettered() -> None:
    outage = [
        ConnectionRefusedError("connect to 127.0.0.1:15432 refused"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        TimeoutError(),
    ] * 4
    broker, rec, health = _broker_with({"flaky": outage}, max_retries=0)
    seen: list[dict[str, str]] = []

    async def watch() -> None:
        while not rec.handled:
            seen.append(health.problems())
            await asyncio.sleep(0.001)

    async with TestKafkaBroker(broker) as br:
        watcher = asyncio.create_task(watch())
        await br.publish(_env("flaky"), topic=TOPIC)
        await watcher
    assert rec.handled == ["flaky"] and rec.calls == {"flaky": 21}
    assert rec.dead == []
    assert any("PostgreSQL" in v for p in seen for v in p.values())  # readiness named the missing dependency
    assert health.problems() == {}  # and is clear again once the work went on
