"""Kafka entrypoints of the trainer service (thin: delegate to a handler)."""

from __future__ import annotations

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


def models(uow: h.TrainerWork) -> Callable[[ev.Envelope], Awaitable[None]]:
    """ModelDeleted: its runs are no longer served."""

    async def handle(env: ev.Envelope) -> None:
        await h.model_deleted(uow, env)

    return handle
