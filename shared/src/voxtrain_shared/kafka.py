"""Kafka: the FastStream broker factory and an at-least-once consumer with bounded retries + DLT.

* Producer: idempotent, ``acks=all``.
* Consumers: one group per (service, purpose), offsets committed only after the handler finished
  (``AckPolicy.NACK_ON_ERROR``). The handler is retried ``max_retries`` times with backoff; a
  message that still fails, or cannot be parsed at all, is published to ``<topic>.dlt`` with the
  error in its headers and then acknowledged, so one bad message never blocks its partition. Only
  when even the dead-letter publish fails does the message stay uncommitted (redelivered later).
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from tenacity import AsyncRetrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from .events import REGISTRY, Envelope, UnknownMessage
from .logs import bind_message, get_logger, unbind_message
from .metrics import EVENTS_CONSUMED, EVENTS_DEAD_LETTERED, HANDLER_SECONDS
from .settings import KafkaSettings
from .topics import dead_letter

log = get_logger(__name__)
Handler = Callable[[Envelope], Awaitable[None]]
_HEADERS: ContextVar[dict[str, str]] = ContextVar("voxtrain_message_headers", default={})


def current_headers() -> dict[str, str]:
    """Headers of the message being handled (e.g. the ``authorization`` of a command)."""
    return _HEADERS.get()


class PermanentError(Exception):
    """A message that can never succeed: skip the retries, dead-letter it at once."""


def make_broker(settings: KafkaSettings, *, client_id: str, **kwargs: Any) -> KafkaBroker:
    """A broker whose producer is idempotent (``acks=all``)."""
    return KafkaBroker(
        settings.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        client_id=client_id,
        **kwargs,
    )


class BrokerPublisher:
    """The outbox relay's :class:`~voxtrain_shared.outbox.Publisher` on a FastStream broker."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish(self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]) -> None:
        await self._broker.publish(value, topic=topic, key=key, headers=headers)


def subscribe(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    handler: Handler,
    max_retries: int = 3,
    types: set[str] | None = None,
    retry_wait: float = 0.2,
) -> Any:
    """Register an at-least-once consumer of ``topic`` calling ``handler`` with parsed envelopes.

    ``types`` limits which message types reach the handler (others are acknowledged and skipped).
    """

    async def consume(msg: KafkaMessage) -> None:
        raw: bytes = msg.body
        headers = dict(msg.headers or {})
        try:
            env = REGISTRY.parse(raw)
        except UnknownMessage as exc:
            await _dead_letter(broker, topic, msg, raw, headers, group_id, exc, attempts=0)
            return
        if types is not None and env.type not in types:
            EVENTS_CONSUMED.labels(topic=topic, outcome="skipped").inc()
            return
        bind_message(env.id, env.correlation_id, event_type=env.type)
        _HEADERS.set({str(k).lower(): (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
                      for k, v in headers.items()})
        started = time.perf_counter()
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(max_retries + 1),
                wait=wait_exponential(multiplier=retry_wait, max=10),
                retry=retry_if_not_exception_type(PermanentError),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    await handler(env)
            EVENTS_CONSUMED.labels(topic=topic, outcome="ok").inc()
        except Exception as exc:  # every failure is dead-lettered, never a crash loop
            log.error("message_failed", topic=topic, attempts=attempts, error=repr(exc))
            await _dead_letter(broker, topic, msg, raw, headers, group_id, exc, attempts)
        finally:
            HANDLER_SECONDS.labels(topic=topic).observe(time.perf_counter() - started)
            unbind_message()

    return broker.subscriber(
        topic,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
    )(consume)


async def _dead_letter(
    broker: KafkaBroker, topic: str, msg: Any, raw: bytes, headers: dict[str, Any], group_id: str,
    exc: BaseException, attempts: int,
) -> None:
    dlt_headers = {str(k): (v.decode() if isinstance(v, bytes) else str(v)) for k, v in headers.items()}
    dlt_headers.update({
        "x-dead-letter-reason": repr(exc)[:2000],
        "x-original-topic": topic,
        "x-original-partition": str(getattr(msg.raw_message, "partition", "")),
        "x-original-offset": str(getattr(msg.raw_message, "offset", "")),
        "x-consumer-group": group_id,
        "x-attempts": str(attempts),
    })
    key = getattr(msg.raw_message, "key", None)
    await broker.publish(raw, topic=dead_letter(topic), key=key, headers=dlt_headers)
    EVENTS_DEAD_LETTERED.labels(topic=topic).inc()
    EVENTS_CONSUMED.labels(topic=topic, outcome="dead_lettered").inc()
    log.warning("message_dead_lettered", topic=topic, dead_letter_topic=dead_letter(topic), attempts=attempts)


async def ensure_topics(bootstrap: str, topics: list[str], partitions: int = 3, with_dead_letters: bool = True) -> None:
    """Create topics (and their DLTs) that do not exist yet; existing ones are left alone."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    names = list(topics) + ([dead_letter(t) for t in topics] if with_dead_letters else [])
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another replica won the race
    finally:
        await admin.close()
