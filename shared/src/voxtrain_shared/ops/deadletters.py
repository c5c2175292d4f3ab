"""Dead-letter topics: list what consumers gave up on, and replay it onto the topic it came from."""

from __future__ import annotations

import json
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

from ..settings import KafkaSettings
from ..topics import DEAD_LETTER_SUFFIX, dead_letter
from .kafkaread import KAFKA_TIMEOUT_MS, kafka_reader, partitions, read_to_end, text

#: Headers the consumers add when they dead-letter a message (``kafka._dead_letter``, validator ``jobs``);
#: a replay drops them, so a message that fails again is dead-lettered with fresh ones.
DLT_HEADERS = ("x-dead-letter-", "x-original-", "x-consumer-group", "x-attempts")


REPLAYED_FROM = "x-replayed-from"


def _dlt_name(topic: str) -> tuple[str, str]:
    """(original topic, dead-letter topic) for a topic given with or without its ``.dlt`` suffix."""
    original = topic[: -len(DEAD_LETTER_SUFFIX)] if topic.endswith(DEAD_LETTER_SUFFIX) else topic
    return original, dead_letter(original)


def replay_group(topic: str) -> str:
    """The consumer group a replay of ``topic``'s dead letters commits its progress in."""
    return f"{_dlt_name(topic)[1]}.replay"


def _describe(record: Any, original: str) -> dict[str, Any]:
    headers = {k: text(v) for k, v in (record.headers or ())}
    event_type, event_id = headers.get("event_type"), headers.get("event_id")
    try:
        env = json.loads(record.value)
        event_type, event_id = env.get("type", event_type), env.get("id", event_id)
    except (ValueError, AttributeError, TypeError):
        pass
    return {
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": datetime.fromtimestamp(record.timestamp / 1000, UTC) if record.timestamp else None,
        "key": text(record.key),
        "type": event_type,
        "event_id": event_id,
        "target": headers.get("x-original-topic") or original,
        "group": headers.get("x-consumer-group"),
        "attempts": headers.get("x-attempts"),
        "kind": headers.get("x-dead-letter-kind"),
        "reason": headers.get("x-dead-letter-reason"),
    }


async def dlt_list(kafka: KafkaSettings, topic: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every message now in ``<topic>.dlt``, with why it is there and whether a replay already passed it."""
    original, dlt = _dlt_name(topic)
    rows = []
    async with kafka_reader(kafka, replay_group(topic)) as consumer:
        parts = await partitions(kafka, [dlt])
        committed = {tp.partition: await consumer.committed(tp) for tp in parts}
        async for record in read_to_end(consumer, parts, timeout):
            row = _describe(record, original)
            done = committed.get(record.partition)
            row["replayed"] = done is not None and record.offset < done
            rows.append(row)
    return rows


async def dlt_replay(
    kafka: KafkaSettings, topic: str, *, limit: int | None = None, dry_run: bool = False, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Republish what is in ``<topic>.dlt`` and not replayed yet to each message's ``x-original-topic``.

    Reads with its own consumer group (:func:`replay_group`) from its committed offsets (from the
    beginning the first time), sends value, key and headers (minus the dead-letter ones, plus
    ``x-replayed-from``) through an idempotent producer and commits each message once Kafka acknowledged
    it: at least once, so the consumers' inboxes drop a message replayed twice. ``dry_run`` sends and
    commits nothing.
    """
    from aiokafka import AIOKafkaProducer

    from ..kafka import client_options

    original, dlt = _dlt_name(topic)
    rows: list[dict[str, Any]] = []
    async with kafka_reader(kafka, replay_group(topic)) as consumer:
        producer = None
        if not dry_run:
            producer = AIOKafkaProducer(
                **client_options(kafka), enable_idempotence=True, acks="all", request_timeout_ms=KAFKA_TIMEOUT_MS
            )
            await producer.start()
        try:
            records = read_to_end(consumer, await partitions(kafka, [dlt]), timeout, from_committed=True)
            async with aclosing(records):
                async for record in records:
                    if limit is not None and len(rows) >= limit:
                        break
                    rows.append(await _replay_one(consumer, producer, record, original, dlt))
        finally:
            if producer is not None:
                await producer.stop()
    return rows


async def _replay_one(consumer: Any, producer: Any, record: Any, original: str, dlt: str) -> dict[str, Any]:
    from aiokafka import TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    row = _describe(record, original)
    headers = [
        (k, v)
        for k, v in (record.headers or ())
        if not k.lower().startswith(DLT_HEADERS) and k.lower() != REPLAYED_FROM
    ]
    headers.append((REPLAYED_FROM, f"{dlt}:{record.partition}:{record.offset}".encode()))
    if producer is not None:
        await producer.send_and_wait(row["target"], record.value, key=record.key, headers=headers)
        tp = TopicPartition(record.topic, record.partition)
        await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
    row["action"] = "replayed" if producer is not None else "would replay"
    return row
