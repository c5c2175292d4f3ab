"""The status guard: datasets change only while the model (as projected from its events) allows it."""

from __future__ import annotations

import asyncio
import uuid

from voxtrain_shared.logs import get_logger
from voxtrain_shared.vocab import ModelStatus

from .. import domain as d
from ..repository import DatasetRepository
from .deps import Deps

log = get_logger(__name__)


async def _status(deps: Deps, tenant_id: str, model_id: uuid.UUID) -> ModelStatus | None:
    """The projected status; a model no event has mentioned yet gets a short grace to appear."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.unknown_model_grace.total_seconds()
    while True:
        async with deps.uow.reading() as repo:
            status = await repo.model_status(tenant_id, model_id)
            known = status is not None or await repo.model_known(model_id)
            if known and status is None:  # it may have arrived between the two reads: read it again
                status = await repo.model_status(tenant_id, model_id)
        if known or loop.time() >= deadline:
            if status is None:
                log.info(
                    "model_not_in_projection",
                    model_id=str(model_id),
                    waited=round(deps.unknown_model_grace.total_seconds() - (deadline - loop.time()), 2),
                )
            return status
        await asyncio.sleep(0.1)


async def guard(deps: Deps, tenant_id: str, model_id: uuid.UUID) -> None:
    """The model exists for the tenant and accepts dataset changes (checked before any byte is read)."""
    d.check_model_accepts_changes(model_id, await _status(deps, tenant_id, model_id))


async def guard_in(repo: DatasetRepository, tenant_id: str, model_id: uuid.UUID) -> None:
    """The same check inside a transaction, holding the model's status until it commits."""
    d.check_model_accepts_changes(model_id, await repo.model_status(tenant_id, model_id, lock=True))


async def model_status(deps: Deps, tenant_id: str, model_id: uuid.UUID) -> ModelStatus:
    """The model's status (for reads); not found when unknown, deleted or another tenant's."""
    status = await _status(deps, tenant_id, model_id)
    if status is None:
        raise d.model_not_found(model_id)
    return status
