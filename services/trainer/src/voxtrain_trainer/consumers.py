"""Kafka entrypoints of the trainer service (thin: delegate to a handler)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from voxtrain_shared import events as ev

from . import handlers as h
from .domain import Answer


def requests(uow: h.TrainerWork, queued: Callable[[], None]) -> Callable[[ev.Envelope], Awaitable[None]]:
    """TrainingRequested: record (or answer) it once; ``queued`` is called when a new run waits."""

    async def handle(env: ev.Envelope) -> None:
        if await h.record_request(uow, env) is Answer.QUEUE:
            queued()

    return handle


#: The message types of the models topic the trainer acts on.
MODEL_TYPES = {"ModelDeleted", "TrainingCancelled"}


def models(uow: h.TrainerWork, cancelled: Callable[[uuid.UUID], None]) -> Callable[[ev.Envelope], Awaitable[None]]:
    """ModelDeleted: its runs are no longer served. TrainingCancelled: the run ends; ``cancelled`` is told of it
    (this replica ends its worker at once; another replica's heartbeat finds the run no longer held)."""

    async def handle(env: ev.Envelope) -> None:
        if env.type == "ModelDeleted":
            await h.model_deleted(uow, env)
        elif env.type == "TrainingCancelled" and (run_id := await h.cancel_run(uow, env)) is not None:
            cancelled(run_id)

    return handle
