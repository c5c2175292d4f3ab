"""A model's events in order: from the services' outbox tables (every event voxtrain published), or from the
topics (also what other services sent, as long as Kafka keeps it)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from .. import events as ev
from ..settings import KafkaSettings
from ..topics import DEAD_LETTER_SUFFIX, dead_letter
from .common import SERVICES, has_table, read_only
from .kafkaread import kafka_reader, partitions, read_to_end


def _summary(env: ev.Envelope) -> str:
    d = env.data
    if env.type == "TrainingStatusChanged":
        return f"{d.get('old_status')} -> {d.get('new_status')} ({d.get('status_name')}): {d.get('reason')}"
    if env.type == "DatasetUploaded":
        ds = d.get("dataset", {})
        return f"{ds.get('dataset_id')} {ds.get('file_name')}"
    if env.type in ("ValidationFailed", "TrainingFailed"):
        return f"{(d.get('error') or {}).get('code')}: {(d.get('error') or {}).get('message')}"
    if env.type == "TrainingProgress":
        return f"{d.get('stage')} {d.get('percent')}%"
    if env.type in ("CreditsReserved", "CreditsCharged", "CreditsRefunded"):
        return f"{d.get('amount')} credits (balance {d.get('balance_after')}) by {d.get('actor')}: {d.get('reason')}"
    text = json.dumps(d, default=str, separators=(",", ":"))
    return text if len(text) <= 100 else text[:97] + "..."


def _history_row(env: ev.Envelope, source: str, topic: str, sent: bool | None) -> dict[str, Any]:
    return {
        "occurred_at": env.occurred_at,
        "source": source,
        "topic": topic,
        "type": env.type,
        "event_id": str(env.id),
        "correlation_id": str(env.correlation_id),
        "causation_id": str(env.causation_id) if env.causation_id else None,
        "sent": sent,
        "summary": _summary(env),
        "data": env.data,
    }


async def history_from_outbox(dsn: str, model_id: UUID, schemas: Iterable[str] = SERVICES) -> list[dict[str, Any]]:
    """Every event the services published about ``model_id``, from their outbox tables, in time order.

    ``source`` is the schema (= the publishing service); ``sent`` says whether the relay has sent it yet.
    """
    rows: list[dict[str, Any]] = []
    key = str(model_id).encode()
    async with read_only(dsn) as conn:
        for schema in schemas:
            if not await has_table(conn, schema, "outbox"):
                continue
            for r in await conn.fetch(
                f'SELECT topic, payload, sent_at FROM "{schema}".outbox WHERE msg_key = $1 ORDER BY seq', key
            ):
                env = ev.Envelope.model_validate_json(bytes(r["payload"]))
                rows.append(_history_row(env, schema, r["topic"], r["sent_at"] is not None))
    return sorted(rows, key=lambda r: r["occurred_at"])  # stable: a schema's own order survives ties


async def history_from_kafka(
    kafka: KafkaSettings, model_id: UUID, topics: Iterable[str], timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Every message keyed by ``model_id`` on ``topics`` (and their dead-letter topics), read to the current end."""
    names = [n for t in topics for n in (t, dead_letter(t))]
    key = str(model_id).encode()
    rows: list[dict[str, Any]] = []
    async with kafka_reader(kafka, None) as consumer:
        async for record in read_to_end(consumer, await partitions(kafka, names), timeout):
            if record.key != key:
                continue
            try:
                env = ev.Envelope.model_validate_json(record.value)
            except ValueError:
                continue  # not an envelope (a poison message in a DLT): `voxtrain dlt list` shows it
            rows.append(
                _history_row(
                    env, "dead-letter" if record.topic.endswith(DEAD_LETTER_SUFFIX) else "kafka", record.topic, None
                )
            )
    return sorted(rows, key=lambda r: r["occurred_at"])
