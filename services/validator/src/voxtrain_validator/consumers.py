"""Kafka entrypoints of the validator (thin: hand the message to its use case, then wake the job loop)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from voxtrain_shared import events as ev

from . import handlers as h
from .domain import Answer

#: The message types each subscription passes on (the others on those topics are skipped).
DATASET_TYPES = {"DatasetUploaded", "DatasetDeleted"}
REQUEST_TYPES = {"ValidationRequested", "TrainingCancelled"}


def datasets(uow: h.ValidatorWork, wake: Callable[[], None]) -> Callable[[ev.Envelope], Awaitable[None]]:
    """DatasetUploaded queues a job (the check itself runs in the job loop, so a 10 GB file never holds up a
    partition); DatasetDeleted forgets the dataset."""

    async def handle(env: ev.Envelope) -> None:
        if env.type == "DatasetUploaded":
            if await h.record_upload(uow, env):
                wake()
        elif env.type == "DatasetDeleted":
            await h.forget_dataset(uow, env)

    return handle


def requests(
    uow: h.ValidatorWork, wake: Callable[[], None], stop: Callable[[list[uuid.UUID]], None]
) -> Callable[[ev.Envelope], Awaitable[None]]:
    """On the models topic: ValidationRequested (answer models' request for a dataset's verdict) and
    TrainingCancelled (drop the model's jobs; ``stop`` ends the checks of those running here)."""

    async def handle(env: ev.Envelope) -> None:
        if env.type == "ValidationRequested" and await h.answer_request(uow, env) is Answer.REQUEUE:
            wake()
        elif env.type == "TrainingCancelled":
            stop(await h.cancel_jobs(uow, env))

    return handle
