"""Reading topics to their end, for the history and the dead-letter commands."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from contextlib import asynccontextmanager
from typing import Any

from ..settings import KafkaSettings
from .common import OpsError

KAFKA_TIMEOUT_MS = 15_000


def unreachable(kafka: KafkaSettings, exc: Exception) -> OpsError:
    return OpsError(
        f"Kafka at {kafka.bootstrap_servers} does not answer ({exc}); check VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS "
        "(and VOXTRAIN_KAFKA__SECURITY_PROTOCOL, __SASL_USERNAME, __SASL_PASSWORD, __SSL_CA_FILE)"
    )


@asynccontextmanager
async def kafka_reader(kafka: KafkaSettings, group: str | None) -> Any:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaConnectionError

    from ..kafka import client_options

    consumer = AIOKafkaConsumer(
        **client_options(kafka),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=KAFKA_TIMEOUT_MS,
    )
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        raise unreachable(kafka, exc) from None
    try:
        yield consumer
    finally:
        await consumer.stop()


async def partitions(kafka: KafkaSettings, topics: Iterable[str]) -> list[Any]:
    """The partitions of those ``topics`` that exist (asking never creates a topic)."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaConnectionError

    from ..kafka import client_options

    admin = AIOKafkaAdminClient(**client_options(kafka), request_timeout_ms=KAFKA_TIMEOUT_MS)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise unreachable(kafka, exc) from None
    try:
        described = await admin.describe_topics()  # every topic: naming some could auto-create them
    finally:
        await admin.close()
    by_name = {t["topic"]: sorted(p["partition"] for p in t["partitions"]) for t in described}
    return [TopicPartition(t, p) for t in topics for p in by_name.get(t, [])]


async def read_to_end(consumer: Any, parts: list[Any], timeout: float, *, from_committed: bool = False) -> Any:
    """Yield the records of ``parts`` from the beginning (or the group's committed offsets) to the end
    offsets as they were when the read started, in offset order per partition."""
    if not parts:
        return
    consumer.assign(parts)
    end = await consumer.end_offsets(parts)
    begin = await consumer.beginning_offsets(parts)
    position: dict[Any, int] = {}
    for tp in parts:
        committed = await consumer.committed(tp) if from_committed else None
        start = max(committed, begin[tp]) if committed is not None else begin[tp]
        consumer.seek(tp, start)
        position[tp] = start
    deadline = asyncio.get_running_loop().time() + timeout
    while pending := [tp for tp in parts if position[tp] < end[tp]]:
        if asyncio.get_running_loop().time() > deadline:
            raise OpsError(f"reading {', '.join(sorted({tp.topic for tp in parts}))} took longer than {timeout:.0f} s")
        batch = await consumer.getmany(*pending, timeout_ms=500)
        for tp, records in sorted(batch.items(), key=lambda kv: (kv[0].topic, kv[0].partition)):
            for record in records:
                if record.offset < end[tp]:
                    yield record
        for tp in pending:  # the fetch position also steps over offsets that hold no record
            position[tp] = max(position[tp], await consumer.position(tp))


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode(errors="replace")
