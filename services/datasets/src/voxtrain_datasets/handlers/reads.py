"""Reads: a model's datasets, one dataset, a download URL."""

from __future__ import annotations

import uuid
from datetime import datetime

from voxtrain_shared.vocab import ErrorCode, ModelStatus

from .. import domain as d
from .deps import DOWNLOAD_TTL, Deps, now
from .guards import model_status


async def list_datasets(deps: Deps, tenant_id: str, model_id: uuid.UUID) -> tuple[ModelStatus, list[d.Dataset]]:
    status = await model_status(deps, tenant_id, model_id)
    async with deps.uow.reading() as repo:
        return status, await repo.list_datasets(tenant_id, model_id)


async def get_dataset(deps: Deps, tenant_id: str, model_id: uuid.UUID, dataset_id: uuid.UUID) -> d.Dataset:
    await model_status(deps, tenant_id, model_id)
    async with deps.uow.reading() as repo:
        ds = await repo.get_dataset(tenant_id, model_id, dataset_id)
    if ds is None:
        raise d.Rejected(ErrorCode.NOT_FOUND, f"No dataset {dataset_id} in this model.")
    return ds


async def download_url(
    deps: Deps, tenant_id: str, model_id: uuid.UUID, dataset_id: uuid.UUID
) -> tuple[d.Dataset, str, datetime]:
    """A short-lived presigned GET URL for the dataset's bytes."""
    ds = await get_dataset(deps, tenant_id, model_id, dataset_id)
    ttl = min(DOWNLOAD_TTL, deps.presign_ttl)
    return ds, deps.store.presign_get(ds.object_key, ttl, ds.file_name), now() + ttl
