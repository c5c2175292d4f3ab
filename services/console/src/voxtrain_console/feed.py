"""Reads the public status topic and the training events topic and hands browser events to the hub.

A tail reader, not a worker: each console process has its own consumer group and starts at the
latest offsets, commits nothing, and neither retries nor dead-letters (there is no effect to
protect). A browser that missed something while disconnected re-reads the state from the APIs when
its EventSource reconnects, so nothing here needs to be replayed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from voxtrain_shared import wire
from voxtrain_shared.kafka import client_options, ensure_topics
from voxtrain_shared.logs import get_logger
from voxtrain_shared.settings import KafkaSettings

from .live import Hub, to_live

log = get_logger(__name__)


def group_id(namespace: str) -> str:
    """A consumer group of this process alone: every console replica sees every event."""
    host = socket.gethostname().split(".")[0][:40] or "host"
    return f"{namespace}.console.{host}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


class KafkaFeed:
    """TrainingStatusChanged and TrainingProgress, from Kafka to :class:`Hub`."""

    def __init__(self, settings: KafkaSettings, hub: Hub) -> None:
        self._settings = settings
        self._hub = hub
        self.topics = [settings.topics.status, settings.topics.training_events]
        self.group_id = group_id(settings.topics.namespace)
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._assigned = asyncio.Event()

    @property
    def ready(self) -> bool:
        """True once partitions are assigned and their (latest) start positions are fixed."""
        return self._assigned.is_set()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self._assigned.wait(), timeout)

    async def start(self) -> None:
        # The services create the topics too; doing it here as well keeps a console started first from
        # letting the broker auto-create them with other settings.
        await ensure_topics(self._settings, self._settings.topics.all(), self._settings.topic_partitions)
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            **client_options(self._settings),
            group_id=self.group_id,
            client_id="voxtrain-console",
            auto_offset_reset="latest",
            enable_auto_commit=False,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="console-kafka-feed")
        log.info("feed_started", topics=self.topics, group_id=self.group_id)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        self._assigned.clear()

    async def _run(self) -> None:
        consumer = self._consumer
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=500)
                if not self._assigned.is_set() and consumer.assignment():
                    # "latest" is resolved lazily; fix it now so nothing published after readiness is skipped
                    for tp in consumer.assignment():
                        await consumer.position(tp)
                    self._assigned.set()
                    log.info("feed_ready", partitions=len(consumer.assignment()))
            except KafkaError as exc:  # the broker is away: keep trying, browsers stay connected
                log.warning("feed_poll_failed", error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            for records in batch.values():
                for record in records:
                    try:
                        self.handle(record.value)
                    except Exception as exc:  # one message must never end the feed
                        log.error("feed_message_failed", error=repr(exc)[:300])

    def handle(self, raw: bytes) -> int:
        """Relay one message to the hub; returns how many browsers got it. Poison (see
        :func:`voxtrain_shared.wire.decode`) is skipped: a tail reader has nothing to dead-letter."""
        try:
            event = to_live(wire.decode(raw))
        except wire.Poison as exc:  # another producer's message: not ours to judge
            log.warning("feed_message_skipped", error=exc.reason[:300])
            return 0
        return self._hub.publish(event) if event is not None else 0
