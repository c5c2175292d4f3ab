"""Kafka entrypoints of the webhooks service: the public status topic (and training events for progress),
consumed like any other subscriber does, so webhooks never hold up the training flow."""

from __future__ import annotations

from voxtrain_shared import events as ev
from voxtrain_shared.kafka import Handler
from voxtrain_shared.uow import handle_once

from . import handlers as h

STATUS_TYPES = {ev.TrainingStatusChanged.TYPE}
PROGRESS_TYPES = {ev.TrainingProgress.TYPE}


def published(uow: h.HookWork, consumer: str) -> Handler:
    """Queue deliveries for an event, once (inbox claim and the queued deliveries commit together)."""

    async def handle(env: ev.Envelope) -> None:
        await handle_once(uow, env, consumer, h.event_published)

    return handle
