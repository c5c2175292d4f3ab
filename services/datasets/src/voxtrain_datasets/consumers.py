"""Kafka entrypoints of the datasets service (thin: claim the message in the inbox, delegate).

The inbox claim and the effects commit in one transaction, so a redelivered message changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from voxtrain_shared import events as ev
from voxtrain_shared.kafka import Handler

from . import handlers as h

#: Message types each consumer reads (others on the topic are skipped).
MODEL_TYPES = {ev.ModelCreated.TYPE, ev.ModelDeleted.TYPE}
STATUS_TYPES = {ev.TrainingStatusChanged.TYPE}
VALIDATION_TYPES = {ev.ValidationPassed.TYPE, ev.ValidationFailed.TYPE}
PUBLISHED_TYPES = {ev.DatasetUploaded.TYPE}


def once(uow: h.UnitOfWork, consumer: str, apply: Callable[[h.Tx, ev.Envelope], Awaitable[None]]) -> Handler:
    """A handler that applies ``apply`` to each message exactly once (inbox in the same transaction)."""

    async def handle(env: ev.Envelope) -> None:
        if env.model_id is None:
            return
        async with uow(h.Context(env.tenant_id, env.correlation_id, env)) as tx:
            if await tx.claim(consumer, env.id):
                await apply(tx, env)

    return handle


async def _models(tx: h.Tx, env: ev.Envelope) -> None:
    msg = env.payload()
    if isinstance(msg, ev.ModelCreated):
        await h.model_created(tx, env, msg)
    elif isinstance(msg, ev.ModelDeleted):
        await h.model_deleted(tx, env)


async def _status(tx: h.Tx, env: ev.Envelope) -> None:
    msg = env.payload()
    if isinstance(msg, ev.TrainingStatusChanged):
        await h.status_changed(tx, env, msg)


async def _validation(tx: h.Tx, env: ev.Envelope) -> None:
    msg = env.payload()
    if isinstance(msg, (ev.ValidationPassed, ev.ValidationFailed)):
        await h.validated(tx, env, msg)


async def _published(tx: h.Tx, env: ev.Envelope) -> None:
    msg = env.payload()
    if isinstance(msg, ev.DatasetUploaded):
        await h.dataset_published(tx, env, msg)


def models(uow: h.UnitOfWork) -> Handler:
    return once(uow, "models", _models)


def status(uow: h.UnitOfWork) -> Handler:
    return once(uow, "status", _status)


def validation(uow: h.UnitOfWork) -> Handler:
    return once(uow, "validation", _validation)


def published(uow: h.UnitOfWork) -> Handler:
    return once(uow, "published", _published)
