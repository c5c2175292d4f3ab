"""Operations on a running voxtrain: the work behind the ``voxtrain`` command (``cli.py`` only parses and prints).

* migrations: apply one service's migrations and stop (the Kubernetes migration Jobs run this);
* read-only SQL on the services' own schemas: models by status, training runs by status, outbox backlog;
* a model's event history, from the services' outbox tables (every event voxtrain itself published,
  kept after relaying) or from the Kafka topics (also what other services sent, as long as Kafka keeps it);
* dead-letter topics: list them, and replay them onto the topic each message came from;
* the generated contracts: the AsyncAPI document of every topic and event, and each HTTP service's OpenAPI.

Every function takes what it needs as arguments (DSN, bootstrap servers, schema names) and returns
plain, JSON-ready data.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import aclosing, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from . import events as ev
from .db import check_identifier, migrate
from .topics import DEAD_LETTER_SUFFIX, DEFAULT_NAMESPACE, Topics, dead_letter
from .vocab import ModelStatus

#: The services, in the order they are listed everywhere; each owns the schema of the same name by default.
SERVICES = ("models", "datasets", "validator", "trainer")
RUN_STATUSES = ("queued", "running", "succeeded", "failed")
#: Headers the consumers add when they dead-letter a message (``kafka._dead_letter``, validator ``jobs``);
#: a replay drops them, so a message that fails again is dead-lettered with fresh ones.
DLT_HEADERS = ("x-dead-letter-", "x-original-", "x-consumer-group", "x-attempts")
REPLAYED_FROM = "x-replayed-from"
KAFKA_TIMEOUT_MS = 15_000


class OpsError(Exception):
    """An operation that cannot be done as asked (the message says why and what to do)."""


# ---------------------------------------------------------------- migrations


def migrations_folder(service: str) -> Path:
    """The migrations folder shipped in ``voxtrain_<service>`` (installed only in that service's image)."""
    if service not in SERVICES:
        raise OpsError(f"unknown service {service!r}; one of: {', '.join(SERVICES)}")
    try:
        folder = resources.files(f"voxtrain_{service}") / "migrations"
    except ModuleNotFoundError:
        raise OpsError(f"the {service} service is not installed here (each image holds only its own service; "
                       f"run this in the voxtrain-{service} image)") from None
    return Path(str(folder))


async def migrate_service(dsn: str, service: str, schema: str | None = None) -> list[str]:
    """Apply ``service``'s pending migrations to ``schema`` (default: the service name); returns those applied."""
    folder = migrations_folder(service)
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn, _schema(schema or service), folder)
    finally:
        await conn.close()


# ---------------------------------------------------------------- read-only SQL


@asynccontextmanager
async def _read_only(dsn: str) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(readonly=True):
            yield conn
    finally:
        await conn.close()


def _schema(name: str) -> str:
    try:
        return check_identifier(name)
    except ValueError:
        raise OpsError(f"{name!r} is not a schema name (lower-case letters, digits, underscores)") from None


async def _has_table(conn: asyncpg.Connection, schema: str, table: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f'"{_schema(schema)}".{table}')


async def list_models(dsn: str, schema: str = "models", *, status: int | None = None, tenant: str | None = None,
                      limit: int = 100) -> list[dict[str, Any]]:
    """Models (every tenant unless ``tenant``), optionally of one status code, oldest first."""
    if status is not None and status not in set(ModelStatus):
        raise OpsError(f"unknown model status {status}; one of 1..5")
    async with _read_only(dsn) as conn:
        if not await _has_table(conn, schema, "models"):
            raise OpsError(f'schema "{schema}" has no models table (is it the models service\'s schema?)')
        rows = await conn.fetch(
            f'SELECT id, tenant_id, name, language, status, run_id, last_error, created_at, updated_at '
            f'FROM "{schema}".models '
            f'WHERE ($1::smallint IS NULL OR status = $1) AND ($2::text IS NULL OR tenant_id = $2) '
            f'ORDER BY created_at, id LIMIT $3',
            status, tenant, limit)
    return [{
        "id": str(r["id"]), "tenant": r["tenant_id"], "name": r["name"], "language": r["language"],
        "status": r["status"], "status_name": ModelStatus(r["status"]).name,
        "run_id": str(r["run_id"]) if r["run_id"] else None,
        "error": (json.loads(r["last_error"]) or {}).get("code") if r["last_error"] else None,
        "created_at": r["created_at"], "updated_at": r["updated_at"],
    } for r in rows]


async def list_runs(dsn: str, schema: str = "trainer", *, status: str | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
    """Training runs, optionally of one status (queued, running, succeeded, failed), oldest first."""
    if status is not None and status not in RUN_STATUSES:
        raise OpsError(f"unknown run status {status!r}; one of: {', '.join(RUN_STATUSES)}")
    async with _read_only(dsn) as conn:
        if not await _has_table(conn, schema, "runs"):
            raise OpsError(f'schema "{schema}" has no runs table (is it the trainer service\'s schema?)')
        rows = await conn.fetch(
            f'SELECT run_id, tenant_id, model_id, status, owner, progress, error, created_at, started_at, '
            f'heartbeat_at, finished_at FROM "{schema}".runs WHERE ($1::text IS NULL OR status = $1) '
            f'ORDER BY created_at, run_id LIMIT $2',
            status, limit)
    out = []
    for r in rows:
        progress = json.loads(r["progress"]) if r["progress"] else {}
        error = json.loads(r["error"]) if r["error"] else {}
        out.append({
            "run_id": str(r["run_id"]), "tenant": r["tenant_id"], "model_id": str(r["model_id"]),
            "status": r["status"], "owner": r["owner"], "stage": progress.get("stage"),
            "percent": progress.get("percent"), "error": error.get("code"),
            "created_at": r["created_at"], "started_at": r["started_at"], "heartbeat_at": r["heartbeat_at"],
            "finished_at": r["finished_at"],
        })
    return out


async def outbox_status(dsn: str, schemas: Iterable[str] = SERVICES) -> list[dict[str, Any]]:
    """Per schema: events waiting to be relayed, the oldest one's age, and when the relay last sent."""
    out = []
    async with _read_only(dsn) as conn:
        for schema in schemas:
            if not await _has_table(conn, schema, "outbox"):
                out.append({"schema": schema, "present": False, "unsent": None, "oldest_age_seconds": None,
                            "last_sent_at": None})
                continue
            row = await conn.fetchrow(
                f'SELECT count(*) FILTER (WHERE sent_at IS NULL) AS unsent, '
                f'coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE sent_at IS NULL)), 0) AS age, '
                f'max(sent_at) AS last_sent FROM "{schema}".outbox')
            out.append({"schema": schema, "present": True, "unsent": int(row["unsent"]),
                        "oldest_age_seconds": round(float(row["age"]), 3), "last_sent_at": row["last_sent"]})
    return out


# ---------------------------------------------------------------- a model's history


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
    text = json.dumps(d, default=str, separators=(",", ":"))
    return text if len(text) <= 100 else text[:97] + "..."


def _history_row(env: ev.Envelope, source: str, topic: str, sent: bool | None) -> dict[str, Any]:
    return {"occurred_at": env.occurred_at, "source": source, "topic": topic, "type": env.type,
            "event_id": str(env.id), "correlation_id": str(env.correlation_id),
            "causation_id": str(env.causation_id) if env.causation_id else None, "sent": sent,
            "summary": _summary(env), "data": env.data}


async def history_from_outbox(dsn: str, model_id: UUID, schemas: Iterable[str] = SERVICES) -> list[dict[str, Any]]:
    """Every event the services published about ``model_id``, from their outbox tables, in time order.

    ``source`` is the schema (= the publishing service); ``sent`` says whether the relay has sent it yet.
    """
    rows: list[dict[str, Any]] = []
    key = str(model_id).encode()
    async with _read_only(dsn) as conn:
        for schema in schemas:
            if not await _has_table(conn, schema, "outbox"):
                continue
            for r in await conn.fetch(
                    f'SELECT topic, payload, sent_at FROM "{schema}".outbox WHERE msg_key = $1 ORDER BY seq', key):
                env = ev.Envelope.model_validate_json(bytes(r["payload"]))
                rows.append(_history_row(env, schema, r["topic"], r["sent_at"] is not None))
    return sorted(rows, key=lambda r: r["occurred_at"])  # stable: a schema's own order survives ties


async def history_from_kafka(bootstrap: str, model_id: UUID, topics: Iterable[str],
                             timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every message keyed by ``model_id`` on ``topics`` (and their dead-letter topics), read to the current end."""
    names = [n for t in topics for n in (t, dead_letter(t))]
    key = str(model_id).encode()
    rows: list[dict[str, Any]] = []
    async with _kafka_reader(bootstrap, None) as consumer:
        async for record in _read_to_end(consumer, await _partitions(bootstrap, names), timeout):
            if record.key != key:
                continue
            try:
                env = ev.Envelope.model_validate_json(record.value)
            except ValueError:
                continue  # not an envelope (a poison message in a DLT): `voxtrain dlt list` shows it
            rows.append(_history_row(env, "dead-letter" if record.topic.endswith(DEAD_LETTER_SUFFIX) else "kafka",
                                     record.topic, None))
    return sorted(rows, key=lambda r: r["occurred_at"])


# ---------------------------------------------------------------- Kafka reading


def _unreachable(bootstrap: str, exc: Exception) -> OpsError:
    return OpsError(f"Kafka at {bootstrap} does not answer ({exc}); check VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS")


@asynccontextmanager
async def _kafka_reader(bootstrap: str, group: str | None) -> Any:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaConnectionError

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", request_timeout_ms=KAFKA_TIMEOUT_MS)
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        raise _unreachable(bootstrap, exc) from None
    try:
        yield consumer
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topics: Iterable[str]) -> list[Any]:
    """The partitions of those ``topics`` that exist (asking never creates a topic)."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from aiokafka.errors import KafkaConnectionError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=KAFKA_TIMEOUT_MS)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise _unreachable(bootstrap, exc) from None
    try:
        described = await admin.describe_topics()  # every topic: naming some could auto-create them
    finally:
        await admin.close()
    by_name = {t["topic"]: sorted(p["partition"] for p in t["partitions"]) for t in described}
    return [TopicPartition(t, p) for t in topics for p in by_name.get(t, [])]


async def _read_to_end(consumer: Any, parts: list[Any], timeout: float, *, from_committed: bool = False) -> Any:
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


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode(errors="replace")


def _dlt_name(topic: str) -> tuple[str, str]:
    """(original topic, dead-letter topic) for a topic given with or without its ``.dlt`` suffix."""
    original = topic[: -len(DEAD_LETTER_SUFFIX)] if topic.endswith(DEAD_LETTER_SUFFIX) else topic
    return original, dead_letter(original)


def replay_group(topic: str) -> str:
    """The consumer group a replay of ``topic``'s dead letters commits its progress in."""
    return f"{_dlt_name(topic)[1]}.replay"


def _describe(record: Any, original: str) -> dict[str, Any]:
    headers = {k: _text(v) for k, v in (record.headers or ())}
    event_type, event_id = headers.get("event_type"), headers.get("event_id")
    try:
        env = json.loads(record.value)
        event_type, event_id = env.get("type", event_type), env.get("id", event_id)
    except (ValueError, AttributeError, TypeError):
        pass
    return {
        "partition": record.partition, "offset": record.offset,
        "timestamp": datetime.fromtimestamp(record.timestamp / 1000, UTC) if record.timestamp else None,
        "key": _text(record.key), "type": event_type, "event_id": event_id,
        "target": headers.get("x-original-topic") or original, "group": headers.get("x-consumer-group"),
        "attempts": headers.get("x-attempts"), "reason": headers.get("x-dead-letter-reason"),
    }


async def dlt_list(bootstrap: str, topic: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every message now in ``<topic>.dlt``, with why it is there and whether a replay already passed it."""
    original, dlt = _dlt_name(topic)
    rows = []
    async with _kafka_reader(bootstrap, replay_group(topic)) as consumer:
        parts = await _partitions(bootstrap, [dlt])
        committed = {tp.partition: await consumer.committed(tp) for tp in parts}
        async for record in _read_to_end(consumer, parts, timeout):
            row = _describe(record, original)
            done = committed.get(record.partition)
            row["replayed"] = done is not None and record.offset < done
            rows.append(row)
    return rows


async def dlt_replay(bootstrap: str, topic: str, *, limit: int | None = None, dry_run: bool = False,
                     timeout: float = 60.0) -> list[dict[str, Any]]:
    """Republish what is in ``<topic>.dlt`` and not replayed yet to each message's ``x-original-topic``.

    Reads with its own consumer group (:func:`replay_group`) from its committed offsets (from the
    beginning the first time), sends value, key and headers (minus the dead-letter ones, plus
    ``x-replayed-from``) through an idempotent producer and commits each message once Kafka acknowledged
    it: at least once, so the consumers' inboxes drop a message replayed twice. ``dry_run`` sends and
    commits nothing.
    """
    from aiokafka import AIOKafkaProducer

    original, dlt = _dlt_name(topic)
    rows: list[dict[str, Any]] = []
    async with _kafka_reader(bootstrap, replay_group(topic)) as consumer:
        producer = None
        if not dry_run:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                                        request_timeout_ms=KAFKA_TIMEOUT_MS)
            await producer.start()
        try:
            records = _read_to_end(consumer, await _partitions(bootstrap, [dlt]), timeout, from_committed=True)
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
    headers = [(k, v) for k, v in (record.headers or ())
               if not k.lower().startswith(DLT_HEADERS) and k.lower() != REPLAYED_FROM]
    headers.append((REPLAYED_FROM, f"{dlt}:{record.partition}:{record.offset}".encode()))
    if producer is not None:
        await producer.send_and_wait(row["target"], record.value, key=record.key, headers=headers)
        tp = TopicPartition(record.topic, record.partition)
        await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
    row["action"] = "replayed" if producer is not None else "would replay"
    return row


# ---------------------------------------------------------------- contracts: OpenAPI and AsyncAPI


@dataclass(frozen=True)
class BuiltService:
    name: str
    service: Any  # voxtrain_shared.service.Service


def _docs_settings(service: str, work_dir: str) -> Any:
    """The service's settings with placeholder values and nothing read from the environment."""
    from . import settings as st

    cls = {"models": st.ModelsSettings, "datasets": st.DatasetsSettings, "validator": st.ValidatorSettings,
           "trainer": st.TrainerSettings}[service]

    class DocsOnly(cls):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, **_others: Any) -> tuple[Any, ...]:
            return (init_settings,)

    values: dict[str, Any] = {"postgres": {"dsn": "postgresql://docs@localhost/docs"},
                              "auth": {"jwt_secret": "docs-only"}}
    if "minio" in cls.model_fields:
        values["minio"] = {"access_key": "docs", "secret_key": "docs-only"}
    if "work_dir" in cls.model_fields:
        values["work_dir"] = work_dir
    return DocsOnly(**values)


@contextmanager
def built_services() -> Iterator[list[BuiltService]]:
    """Each service's ``bootstrap.build`` with placeholder settings (nothing is started or connected)."""
    with tempfile.TemporaryDirectory(prefix="voxtrain-docs-") as work_dir:
        built = []
        for name in SERVICES:
            try:
                bootstrap = importlib.import_module(f"voxtrain_{name}.bootstrap")
            except ModuleNotFoundError as exc:
                raise OpsError(f"the contracts need every service installed ({exc}); "
                               "in the repository: uv sync --all-packages") from None
            built.append(BuiltService(name, bootstrap.build(_docs_settings(name, work_dir))))
        yield built


def openapi(service: Any) -> dict[str, Any]:
    """A built service's OpenAPI document."""
    return service.app.openapi()


def _version() -> str:
    return metadata.version("voxtrain-shared")


def asyncapi(services: list[BuiltService]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic and message in :data:`voxtrain_shared.events.REGISTRY`.

    Channels are the :class:`~voxtrain_shared.topics.Topics` (and their dead-letter topics); each message is
    the :class:`~voxtrain_shared.events.Envelope` with that type's payload in ``data``; ``receive``
    operations are the consumer groups the services' brokers subscribe (read from the built services).
    """
    from pydantic.json_schema import models_json_schema

    topics = Topics("{namespace}")
    classes = sorted(ev.REGISTRY.classes(), key=lambda c: (c.TOPIC, c.TYPE, c.VERSION))
    ref = "#/components/schemas/{model}"
    _, defs = models_json_schema([(c, "serialization") for c in classes] + [(ev.Envelope, "serialization")],
                                 ref_template=ref)
    schemas: dict[str, Any] = dict(sorted(defs["$defs"].items()))
    schemas["RelayHeaders"] = {
        "type": "object", "description": "Set by the outbox relay on every message voxtrain publishes.",
        "properties": {"event_type": {"type": "string", "description": "the envelope's type"},
                       "event_id": {"type": "string", "format": "uuid", "description": "the envelope's id"}},
    }
    schemas["CommandHeaders"] = {
        "type": "object", "required": ["authorization"],
        "properties": {"authorization": {
            "type": "string", "pattern": "^Bearer ",
            "description": "Bearer token naming the tenant; it must be the envelope's tenant_id."}},
    }
    schemas["DeadLetterHeaders"] = {
        "type": "object",
        "description": "The original message's headers plus these, added by the consumer that gave up on it.",
        "properties": {
            "x-dead-letter-reason": {"type": "string", "description": "the last error (at most 2000 characters)"},
            "x-original-topic": {"type": "string", "description": "the topic it came from; replays go there"},
            "x-original-partition": {"type": "string"}, "x-original-offset": {"type": "string"},
            "x-consumer-group": {"type": "string", "description": "the group that could not handle it"},
            "x-attempts": {"type": "string", "description": "how many times the handler ran"},
            REPLAYED_FROM: {"type": "string", "description": "set when `voxtrain dlt replay` sent it back before"},
        },
    }
    inbound_only = {"model_commands"}  # commands other services send; no voxtrain service publishes on it
    kafka_key = {"type": "string", "format": "uuid", "description": "the model id: a model's messages stay in order"}

    messages: dict[str, Any] = {}
    by_topic: dict[str, list[str]] = {}
    for cls in classes:
        name = cls.TYPE if cls.VERSION == 1 else f"{cls.TYPE}V{cls.VERSION}"
        by_topic.setdefault(cls.TOPIC, []).append(name)
        doc = (cls.__doc__ or "").strip()
        if doc == (ev.Message.__doc__ or "").strip():
            doc = ""
        messages[name] = {
            "name": cls.TYPE, "title": f"{cls.TYPE} v{cls.VERSION}",
            **({"summary": doc.splitlines()[0]} if doc else {}),
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/" + (
                "CommandHeaders" if cls.TOPIC in inbound_only else "RelayHeaders")},
            "payload": {"allOf": [
                {"$ref": ref.format(model="Envelope")},
                {"type": "object", "required": ["type", "version", "data"], "properties": {
                    "type": {"const": cls.TYPE}, "version": {"const": cls.VERSION},
                    "data": {"$ref": ref.format(model=cls.__name__)}}},
            ]},
            "correlationId": {"description": "follows a request across every service",
                              "location": "$message.payload#/correlation_id"},
            "bindings": {"kafka": {"key": kafka_key, "bindingVersion": "0.5.0"}},
        }
    messages["DeadLetter"] = {
        "name": "DeadLetter", "title": "A message a consumer gave up on",
        "summary": "The original message, byte for byte (usually an envelope of the channel's types, "
                   "possibly not JSON at all), with the dead-letter headers.",
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "payload": {"description": "the original message's bytes, unchanged"},
        "bindings": {"kafka": {"key": {"type": "string", "description": "the original message's key"},
                               "bindingVersion": "0.5.0"}},
    }

    namespace = {"namespace": {"default": DEFAULT_NAMESPACE, "description": (
        "VOXTRAIN_KAFKA__TOPIC_NAMESPACE: every topic lives under it (`voxtrain` in production).")}}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    keys = [k for k in ("models", "model_commands", "datasets", "validation", "training_commands",
                        "training_events", "status") if k in by_topic]
    assert sorted(keys) == sorted(by_topic), "every message TOPIC must be a Topics key"
    address_to_key = {Topics(DEFAULT_NAMESPACE).by_key(k): k for k in keys}
    for key in keys:
        doc = (getattr(Topics, key).__doc__ or "").strip()
        channels[key] = {
            "address": topics.by_key(key), "title": key, "description": f"{doc} Keyed by model id.",
            "parameters": namespace,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in by_topic[key]},
        }
        channels[f"{key}_dlt"] = {
            "address": dead_letter(topics.by_key(key)), "title": f"{key} dead letters",
            "description": f"Messages of {topics.by_key(key)} that a consumer could not handle after its retries. "
                           "`voxtrain dlt list|replay` reads them.",
            "parameters": namespace,
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        }
        if key not in inbound_only:
            operations[f"publish_{key}"] = {
                "action": "send", "channel": {"$ref": f"#/channels/{key}"},
                "summary": f"voxtrain publishes on {topics.by_key(key)} (through its transactional outbox)",
                "messages": [{"$ref": f"#/channels/{key}/messages/{m}"} for m in by_topic[key]],
            }
        operations[f"dead_letter_{key}"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{key}_dlt"},
            "summary": f"a consumer of {topics.by_key(key)} gives up on a message",
            "messages": [{"$ref": f"#/channels/{key}_dlt/messages/DeadLetter"}],
        }
    for b in services:
        for sub in sorted(b.service.broker.subscribers, key=lambda s: s.group_id):
            for topic in sorted(sub.topic_names):
                key = address_to_key[topic]
                group = sub.group_id.replace(f"{DEFAULT_NAMESPACE}.", "{namespace}.", 1)
                purpose = sub.group_id.rsplit(".", 1)[1]
                operations[f"receive_{b.name}_{purpose}"] = {
                    "action": "receive", "channel": {"$ref": f"#/channels/{key}"},
                    "summary": f"the {b.name} service consumes {topics.by_key(key)} in group {group} "
                               "(at least once; handlers skip the types they do not need)",
                    "messages": [{"$ref": f"#/channels/{key}/messages/{m}"} for m in by_topic[key]],
                    "bindings": {"kafka": {"groupId": {"type": "string", "enum": [group]},
                                           "bindingVersion": "0.5.0"}},
                }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "voxtrain events", "version": _version(),
            "description": "Every topic and message of voxtrain, generated from voxtrain_shared.events.REGISTRY "
                           "and voxtrain_shared.topics.Topics by `voxtrain docs` (do not edit by hand). Every "
                           "message is a JSON envelope whose `data` is the payload of its `type` and `version`.",
        },
        "defaultContentType": "application/json",
        "servers": {"kafka": {
            "host": "{bootstrap}", "protocol": "kafka",
            "description": "The Kafka cluster of a deployment (VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS).",
            "variables": {"bootstrap": {"default": "127.0.0.1:19092"}},
        }},
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {"schemas": schemas, "messages": messages},
    }


def contract_documents() -> dict[str, dict[str, Any]]:
    """``{relative path under docs/: document}`` for every generated contract."""
    with built_services() as built:
        docs = {"asyncapi.json": asyncapi(built)}
        for b in built:
            docs[f"openapi/{b.name}.json"] = openapi(b.service)
    return docs


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_docs(out: Path) -> list[Path]:
    """Write every generated contract under ``out``; returns the files written."""
    written = []
    for rel, doc in contract_documents().items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump(doc))
        written.append(path)
    return written


def docs_drift(out: Path) -> list[str]:
    """The contracts under ``out`` that differ from what the code generates now (empty: up to date)."""
    drift = []
    for rel, doc in contract_documents().items():
        path = out / rel
        if not path.is_file():
            drift.append(f"{path}: missing")
        elif json.loads(path.read_text()) != json.loads(_dump(doc)):
            drift.append(f"{path}: differs from the code")
    return drift
