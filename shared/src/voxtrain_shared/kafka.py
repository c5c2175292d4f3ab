"""Kafka: the FastStream broker factory and an at-least-once consumer that never blocks on poison and
never loses a message to a passing outage.

* Producer: idempotent, ``acks=all``.
* Consumers: one group per (service, purpose); offsets are committed only when a record is finished with
  (``AckPolicy.MANUAL``). FastStream hands us the raw record: a custom parser that decodes no header and a
  decoder that returns the bytes as they are, so nothing can raise before our code does.
* Poison — a record that cannot be decoded or parsed (not UTF-8 headers, oversized, too deeply nested or
  invalid JSON, unknown type, wrong schema; see :mod:`voxtrain_shared.wire`) — goes to ``<topic>.dlt`` at
  once with its reason in ``x-dead-letter-reason``; the consumer moves on.
* Handler errors are classified by :func:`voxtrain_shared.faults.classify`:
  - permanent (:class:`PermanentError`, validation, data errors): dead-lettered at once;
  - transient (PostgreSQL/Kafka/MinIO away, timeouts, serialization failures, deadlocks): retried with capped
    exponential backoff for as long as it lasts — first in place for a few seconds, then the record is
    rewound (``seek`` to its offset, nothing committed) and the consumer's partitions are *paused* until the
    next attempt, so it takes no new work while it keeps polling (no rebalance for a slow handler). Meanwhile
    :class:`~voxtrain_shared.health.Health` says which dependency it waits for (``/health/ready`` → 503);
  - unknown (a bug): retried ``max_retries`` times, then dead-lettered.
  A dead-letter publish that fails is itself a transient Kafka fault: the record is rewound, not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka import errors as kafka_errors
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.security import parse_security
from faststream.message import StreamMessage
from faststream.security import BaseSecurity, SASLScram256, SASLScram512
from opentelemetry.trace import SpanKind

from . import wire
from .events import Envelope
from .faults import Fault, Kind, PermanentError, backoff, classify
from .health import DEFAULT_TTL, Health
from .logs import bind_message, get_logger, unbind_message
from .metrics import CONSUMER_LAG, EVENTS_CONSUMED, EVENTS_DEAD_LETTERED, HANDLER_SECONDS
from .settings import KafkaSettings
from .topics import DEAD_LETTER_SUFFIX, dead_letter
from .tracing import Tracing, continued
from .tracing import off as tracing_off

__all__ = [
    "BrokerPublisher",
    "Handler",
    "PermanentError",
    "client_options",
    "current_headers",
    "ensure_topics",
    "make_broker",
    "security",
    "subscribe",
]

log = get_logger(__name__)
Handler = Callable[[Envelope], Awaitable[None]]
_HEADERS: ContextVar[dict[str, str]] = ContextVar("voxtrain_message_headers")


def current_headers() -> dict[str, str]:
    """Headers of the message being handled (e.g. the ``authorization`` of a command)."""
    return _HEADERS.get({})


def security(settings: KafkaSettings) -> BaseSecurity | None:
    """How to reach the brokers: TLS (verified against ``ssl_ca_file``, else the system CAs) and/or a SCRAM user,
    as FastStream's security object; None for PLAINTEXT."""
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    tls = protocol in ("SSL", "SASL_SSL")
    context = ssl.create_default_context(cafile=settings.ssl_ca_file) if tls else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    scram = SASLScram512 if settings.sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
    return scram(settings.sasl_username, settings.sasl_password.get_secret_value(), ssl_context=context, use_ssl=tls)


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for a plain aiokafka client (producer, consumer, admin) with the same brokers and
    security as :func:`make_broker`'s."""
    return {"bootstrap_servers": settings.bootstrap_servers, **parse_security(security(settings))}


def make_broker(settings: KafkaSettings, *, client_id: str, **kwargs: Any) -> KafkaBroker:
    """A broker whose producer is idempotent (``acks=all``), with the settings' TLS and SASL."""
    return KafkaBroker(
        settings.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        client_id=client_id,
        security=security(settings),
        **kwargs,
    )


class BrokerPublisher:
    """The outbox relay's :class:`~voxtrain_shared.outbox.Publisher` on a FastStream broker."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish(self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]) -> None:
        await self._broker.publish(value, topic=topic, key=key, headers=headers)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How a consumer retries: ``max_retries`` for unknown errors; backoff from ``base`` doubling up to ``cap``
    for transient ones, in place for at most ``inline_seconds`` before the record is rewound and paused."""

    max_retries: int = 3
    base: float = 0.2
    cap: float = 30.0
    inline_seconds: float = 5.0
    publish_timeout: float = 30.0


async def _raw_parser(record: ConsumerRecord[Any, Any], original: Callable[..., Awaitable[Any]]) -> Any:
    """FastStream's parser minus its strict header decoding; the untouched record stays ``raw_message``."""
    msg: StreamMessage[Any] = await original(dataclasses.replace(record, headers=()))
    msg.raw_message = record
    return msg


async def _raw_decoder(msg: StreamMessage[Any]) -> Any:
    """The body as bytes: decoding is ours (:func:`voxtrain_shared.wire.decode`)."""
    return msg.body


class _Consumer:
    """The handler FastStream calls for each record of one subscription."""

    def __init__(
        self,
        broker: KafkaBroker,
        topic: str,
        group_id: str,
        handler: Handler,
        types: set[str] | None,
        policy: RetryPolicy,
        health: Health | None,
        max_message_bytes: int,
        tracing: Tracing,
    ) -> None:
        self._broker, self._topic, self._group, self._handler = broker, topic, group_id, handler
        self._types, self._policy, self._health, self._max_bytes = types, policy, health, max_message_bytes
        self._tracing = tracing
        self.component = f"consumer {group_id}"
        self._failures = 0  # consecutive transient failures: drives the backoff across redeliveries

    async def __call__(self, msg: KafkaMessage) -> None:
        record = msg.raw_message
        assert isinstance(record, ConsumerRecord)
        delay = await self._process(record, can_pause=hasattr(msg.consumer, "pause"))
        if delay is None:
            try:
                await msg.ack()
            except Exception as exc:  # a rebalance: the record comes again and the inbox makes it a no-op
                log.warning("commit_failed", topic=self._topic, error=repr(exc))
        else:
            self._rewind(msg.consumer, record, delay)

    async def _process(self, record: ConsumerRecord[Any, Any], *, can_pause: bool) -> float | None:
        """None when the record is finished with (handled, skipped, dead-lettered); else the delay before
        it is tried again."""
        try:
            headers = wire.decode_headers(record.headers)
            env = wire.decode(record.value, max_bytes=self._max_bytes)
        except wire.Poison as exc:
            log.warning(
                "message_poison", topic=self._topic, reason=exc.reason, partition=record.partition, offset=record.offset
            )
            return await self._dead_letter(record, exc.reason, attempts=0, kind="poison")
        if self._types is not None and env.type not in self._types:
            EVENTS_CONSUMED.labels(topic=self._topic, outcome="skipped").inc()
            return None
        bind_message(env.id, env.correlation_id, event_type=env.type)
        _HEADERS.set(headers)
        started = time.perf_counter()
        try:
            with continued(  # the handler's span continues the trace of whatever emitted the message
                self._tracing,
                f"{self._topic} process",
                headers,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": self._topic,
                    "messaging.consumer.group.name": self._group,
                    "messaging.message.id": str(env.id),
                    "voxtrain.event_type": env.type,
                },
            ):
                return await self._handle(record, env, started, can_pause)
        finally:
            HANDLER_SECONDS.labels(topic=self._topic).observe(time.perf_counter() - started)
            unbind_message()

    async def _handle(
        self, record: ConsumerRecord[Any, Any], env: Envelope, started: float, can_pause: bool
    ) -> float | None:
        attempts = 0
        while True:
            attempts += 1
            try:
                await self._handler(env)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                fault = classify(exc)
                if fault.transient:
                    delay = self._transient(fault)
                    if can_pause and time.perf_counter() - started + delay > self._policy.inline_seconds:
                        return delay  # rewind and pause: the outage is not a blip
                    await asyncio.sleep(delay)
                    continue
                if fault.kind is Kind.UNKNOWN and attempts <= self._policy.max_retries:
                    log.warning("message_retry", topic=self._topic, attempts=attempts, error=repr(exc))
                    await asyncio.sleep(backoff(attempts, base=self._policy.base, cap=10.0))
                    continue
                log.error(
                    "message_failed", topic=self._topic, attempts=attempts, kind=fault.kind.value, error=repr(exc)
                )
                return await self._dead_letter(record, repr(exc), attempts, kind=fault.kind.value)
            self._recovered()
            EVENTS_CONSUMED.labels(topic=self._topic, outcome="ok").inc()
            return None

    def _transient(self, fault: Fault) -> float:
        self._failures += 1
        delay = backoff(self._failures, base=self._policy.base, cap=self._policy.cap)
        if self._health is not None:
            self._health.blocked(self.component, fault.dependency, fault.reason, ttl=max(DEFAULT_TTL, 3 * delay))
        log.warning(
            "message_waits_for_dependency",
            topic=self._topic,
            dependency=fault.dependency or "unknown",
            error=fault.reason,
            retry_in=round(delay, 2),
            failures=self._failures,
        )
        return delay

    def _recovered(self) -> None:
        if self._failures:
            log.info("dependency_back", topic=self._topic, after_failures=self._failures)
        self._failures = 0
        if self._health is not None:
            self._health.clear(self.component)

    async def _dead_letter(
        self, record: ConsumerRecord[Any, Any], reason: str, attempts: int, kind: str
    ) -> float | None:
        headers = {str(k): (v or b"").decode("utf-8", "backslashreplace") for k, v in record.headers or ()}
        headers.update(
            {
                "x-dead-letter-reason": reason[:2000],
                "x-dead-letter-kind": kind,
                "x-original-topic": record.topic,
                "x-original-partition": str(record.partition),
                "x-original-offset": str(record.offset),
                "x-consumer-group": self._group,
                "x-attempts": str(attempts),
            }
        )
        value: bytes = record.value or b""
        try:
            try:
                await self._publish_dead_letter(value, record.key, headers)
            except Exception as exc:
                if not classify(exc).permanent:
                    raise
                # too large even for the DLT: keep the evidence that it existed, without its bytes
                headers["x-dead-letter-value-dropped"] = f"{len(value)} bytes: {exc!r}"[:500]
                await self._publish_dead_letter(b"", record.key, headers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Kafka is away: the record stays uncommitted and is tried again
            return self._transient(classify(exc))
        self._recovered()
        EVENTS_DEAD_LETTERED.labels(topic=self._topic).inc()
        EVENTS_CONSUMED.labels(topic=self._topic, outcome="dead_lettered").inc()
        log.warning(
            "message_dead_lettered",
            topic=self._topic,
            dead_letter_topic=dead_letter(self._topic),
            attempts=attempts,
            kind=kind,
            reason=reason[:300],
        )
        return None

    async def _publish_dead_letter(self, value: bytes, key: bytes | None, headers: dict[str, str]) -> None:
        try:  # bounded: a producer waiting for a broker that is gone must not hold the consumer forever
            await asyncio.wait_for(
                self._broker.publish(value, topic=dead_letter(self._topic), key=key, headers=headers),
                timeout=self._policy.publish_timeout,
            )
        except TimeoutError as exc:
            raise kafka_errors.KafkaTimeoutError(
                f"the dead-letter topic did not acknowledge in {self._policy.publish_timeout} s"
            ) from exc

    def _rewind(self, consumer: Any, record: ConsumerRecord[Any, Any], delay: float) -> None:
        """Seek back to ``record`` (nothing is committed past it) and pause every partition of the consumer
        for ``delay`` seconds; it keeps polling (heartbeats, no rebalance) but takes no new work."""
        tp = TopicPartition(record.topic, record.partition)
        consumer.seek(tp, record.offset)
        if not hasattr(consumer, "pause"):  # FastStream's test consumer (it never redelivers)
            return
        try:
            paused = set(consumer.assignment())
            consumer.pause(*paused)
        except Exception as exc:  # mid-rebalance: the record comes back from its committed offset anyway
            log.warning("pause_failed", topic=self._topic, error=repr(exc))
            return
        asyncio.get_running_loop().call_later(delay, self._resume, consumer, paused)

    def _resume(self, consumer: Any, paused: set[TopicPartition]) -> None:
        try:
            still = paused & set(consumer.assignment())
            if still:
                consumer.resume(*still)
        except Exception as exc:  # stopped or rebalanced consumer: a new assignment starts unpaused
            log.debug("resume_failed", topic=self._topic, error=repr(exc))


def subscribe(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    handler: Handler,
    max_retries: int = 3,
    types: set[str] | None = None,
    retry_wait: float = 0.2,
    retry_cap: float = 30.0,
    inline_retry_seconds: float = 5.0,
    health: Health | None = None,
    max_message_bytes: int = wire.MAX_MESSAGE_BYTES,
    tracing: Tracing | None = None,
) -> Any:
    """Register an at-least-once consumer of ``topic`` calling ``handler`` with parsed envelopes.

    ``types`` limits which message types reach the handler (others are acknowledged and skipped). See the
    module docstring for what happens to poison, permanent, transient and unknown failures. Each record is
    handled in a consumer span of ``tracing`` continuing the trace its headers carry.
    """
    consumer = _Consumer(
        broker,
        topic,
        group_id,
        handler,
        types,
        RetryPolicy(max_retries, retry_wait, retry_cap, inline_retry_seconds),
        health,
        max_message_bytes,
        tracing or tracing_off(),
    )

    async def consume(msg: KafkaMessage) -> None:
        await consumer(msg)

    return broker.subscriber(
        topic,
        group_id=group_id,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        parser=_raw_parser,
        decoder=_raw_decoder,
    )(consume)


async def measure_lag(broker: KafkaBroker) -> None:
    """Set ``voxtrain_consumer_lag{topic, group}``: per subscriber, the records between each assigned
    partition's position and its end offset (asked of Kafka: a blocked handler stops the fetches that would
    otherwise tell), summed over the partitions."""
    for sub in broker.subscribers:
        consumer: Any = getattr(sub, "consumer", None)
        group = getattr(sub, "group_id", None)
        if consumer is None or not group:
            continue
        assigned = list(consumer.assignment())
        if not assigned:
            continue
        ends = await asyncio.wait_for(consumer.end_offsets(assigned), timeout=15)
        lag: dict[str, int] = {}
        for tp in assigned:
            position = await consumer.position(tp)
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, ends.get(tp, position) - position)
        for topic, n in lag.items():
            CONSUMER_LAG.labels(topic=topic, group=group).set(n)


async def ensure_topics(
    kafka: KafkaSettings | str, topics: list[str], partitions: int = 3, with_dead_letters: bool = True
) -> None:
    """Create topics (and their DLTs) that do not exist yet; existing ones are left alone. ``kafka``: the settings
    (brokers and security), or a PLAINTEXT bootstrap address.

    A dead-letter topic has one partition: it is read rarely and in full, and each partition costs the broker
    open files."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    names = list(topics) + ([dead_letter(t) for t in topics] if with_dead_letters else [])
    settings = KafkaSettings(bootstrap_servers=kafka) if isinstance(kafka, str) else kafka
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica won the race
                await admin.create_topics(
                    [
                        NewTopic(
                            n, num_partitions=1 if n.endswith(DEAD_LETTER_SUFFIX) else partitions, replication_factor=1
                        )
                        for n in missing
                    ]
                )
    finally:
        await admin.close()
