"""Background use cases of the models service, driven by :class:`voxtrain_shared.loops.Loop`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from voxtrain_shared.loops import Loop
from voxtrain_shared.metrics import MODELS_OVERDUE
from voxtrain_shared.settings import SupervisionSettings

from . import handlers as h
from .domain import Supervision


def policy(s: SupervisionSettings) -> Supervision:
    return Supervision(
        validation=timedelta(seconds=s.validation_seconds),
        start=timedelta(seconds=s.start_seconds),
        heartbeat=timedelta(seconds=s.heartbeat_seconds),
        max_redrives=s.max_redrives,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def supervisor(uow: h.ModelWork, rules: Supervision, every: float, *, clock: Callable[[], datetime] = utc_now) -> Loop:
    """Every ``every`` seconds: re-request or fail the models at 2/3 whose deadline passed, then set
    ``voxtrain_models_overdue{status}`` (models asked again that have not answered yet)."""

    async def step() -> None:
        now = clock()
        await h.supervise(uow, rules, now)
        for status, n in (await h.count_overdue(uow, rules, now)).items():
            MODELS_OVERDUE.labels(status.name).set(n)

    return Loop("supervisor", step, every=every)
