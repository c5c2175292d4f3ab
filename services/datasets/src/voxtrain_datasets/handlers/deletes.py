"""Deleting a dataset: the record and its DatasetDeleted in one transaction, then its object."""

from __future__ import annotations

import uuid

from voxtrain_shared import events as ev
from voxtrain_shared.logs import get_logger
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import ErrorCode

from .. import domain as d
from .deps import Deps
from .guards import guard_in
from .recording import forget_objects

log = get_logger(__name__)


async def delete_dataset(deps: Deps, ctx: Context, model_id: uuid.UUID, dataset_id: uuid.UUID) -> None:
    """Forget the dataset and publish DatasetDeleted (one transaction), then remove its object."""
    async with deps.uow(ctx) as tx:
        await guard_in(tx.repo, ctx.tenant_id, model_id)
        ds = await tx.repo.get_dataset(ctx.tenant_id, model_id, dataset_id, lock=True)
        if ds is None:
            raise d.Rejected(ErrorCode.NOT_FOUND, f"No dataset {dataset_id} in this model.")
        await tx.repo.delete_dataset(ds.id)
        await tx.repo.abandon_objects([ds.object_key])  # until the object is gone, the sweeper's to remove
        await tx.emit(ev.DatasetDeleted(dataset_id=ds.id, dataset_type=ds.type), model_id)
    log.info("dataset_deleted", dataset_id=str(ds.id), model_id=str(model_id))
    await forget_objects(deps, ctx, [ds.object_key], storage_down=False)
