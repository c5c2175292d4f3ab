"""Kafka entrypoints of the datasets service (thin: parse, then apply once through ``handle_once``).

The inbox claim and the effects commit in one transaction, so a redelivered message changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from voxtrain_shared import events as ev
from voxtrain_shared.kafka import Handler
from voxtrain_shared.uow import handle_once

from .handlers import projections as p
from .handlers.deps import DatasetTx, DatasetWork

#: Message types each consumer reads (others on the topic are skipped).
MODEL_TYPES = {ev.ModelCreated.TYPE, ev.ModelDeleted.TYPE}
STATUS_TYPES = {ev.TrainingStatusChanged.TYPE}
VALIDATION_TYPES = {ev.ValidationPassed.TYPE, ev.ValidationFailed.TYPE}
PUBLISHED_TYPES = {ev.DatasetUploaded.TYPE}


async def _models(tx: DatasetTx, env: ev.Envelope) -> None:
    msg = env.payload()
    if env.model_id is None:
        return
    if isinstance(msg, ev.ModelCreated):
        await p.model_created(tx, env.model_id, env, msg)
    elif isinstance(msg, ev.ModelDeleted):
        await p.model_deleted(tx, env.model_id, env)


async def _status(tx: DatasetTx, env: ev.Envelope) -> None:
    msg = env.payload()
    if env.model_id is not None and isinstance(msg, ev.TrainingStatusChanged):
        await p.status_changed(tx, env.model_id, env, msg)


async def _validation(tx: DatasetTx, env: ev.Envelope) -> None:
    msg = env.payload()
    if isinstance(msg, (ev.ValidationPassed, ev.ValidationFailed)):
        await p.validated(tx, env, msg)


async def _published(tx: DatasetTx, env: ev.Envelope) -> None:
    msg = env.payload()
    if isinstance(msg, ev.DatasetUploaded):
        await p.dataset_published(tx, env, msg)


def _once(uow: DatasetWork, consumer: str, apply: Callable[[DatasetTx, ev.Envelope], Awaitable[None]]) -> Handler:
    async def handle(env: ev.Envelope) -> None:
        if env.model_id is not None:  # every fact this service projects is about a model
            await handle_once(uow, env, consumer, apply)

    return handle


def models(uow: DatasetWork) -> Handler:
    return _once(uow, "models", _models)


def status(uow: DatasetWork) -> Handler:
    return _once(uow, "status", _status)


def validation(uow: DatasetWork) -> Handler:
    return _once(uow, "validation", _validation)


def published(uow: DatasetWork) -> Handler:
    return _once(uow, "published", _published)
