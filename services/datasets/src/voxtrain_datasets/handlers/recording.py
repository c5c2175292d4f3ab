"""Recording stored files as datasets (both upload paths), and forgetting objects that must not stay."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from voxtrain_shared import events as ev
from voxtrain_shared.logs import get_logger
from voxtrain_shared.uow import Context

from .. import domain as d
from ..storage import StorageUnavailable
from .deps import Deps
from .guards import guard_in

log = get_logger(__name__)


def _uploaded(ds: d.Dataset, batch: list[uuid.UUID]) -> ev.DatasetUploaded:
    return ev.DatasetUploaded(
        dataset=ev.DatasetObject(
            dataset_id=ds.id,
            dataset_type=ds.type,
            file_name=ds.file_name,
            bucket=ds.bucket,
            object_key=ds.object_key,
            size=ds.size,
            sha256=ds.sha256,
        ),
        content_type=ds.content_type,
        batch=batch,
    )


async def record(
    deps: Deps,
    ctx: Context,
    model_id: uuid.UUID,
    datasets: list[d.Dataset],
    completed_sessions: Sequence[uuid.UUID] = (),
) -> list[d.Dataset]:
    """Record stored files as datasets and publish DatasetUploaded for each, in one transaction."""
    async with deps.uow(ctx) as tx:
        await guard_in(tx.repo, ctx.tenant_id, model_id)  # the status may have changed while bytes flowed
        saved = [await tx.repo.insert_dataset(ds) for ds in datasets]
        await tx.repo.unstage_objects([ds.object_key for ds in saved])
        for session_id in completed_sessions:
            await tx.repo.set_session_state(session_id, "completed")
        batch = [ds.id for ds in saved]
        for ds in saved:
            await tx.emit(_uploaded(ds, batch), model_id)
    for ds in saved:
        log.info(
            "dataset_uploaded",
            dataset_id=str(ds.id),
            model_id=str(model_id),
            dataset_type=ds.type.name,
            size=ds.size,
            source=ds.source,
        )
    return saved


async def stage(deps: Deps, ctx: Context, key: str) -> None:
    """Note, before the first byte is stored, that ``key`` may soon exist without a record."""
    async with deps.uow(ctx) as tx:
        await tx.repo.stage_object(key)


async def abandon(deps: Deps, ctx: Context, keys: list[str]) -> None:
    """Leave these objects (and unfinished uploads of their keys) to the sweeper."""
    async with deps.uow(ctx) as tx:
        await tx.repo.abandon_objects(keys)


async def forget_objects(deps: Deps, ctx: Context, keys: list[str], *, storage_down: bool) -> None:
    """Remove objects that must not stay; what cannot be removed now is left to the sweeper."""
    if not keys:
        return
    removed = False
    if not storage_down:
        try:
            for key in keys:
                await deps.store.remove(key)
            removed = True
        except StorageUnavailable:
            pass
    try:
        async with deps.uow(ctx) as tx:
            if removed:
                await tx.repo.unstage_objects(keys)  # nothing left to track
            else:
                await tx.repo.abandon_objects(keys)
    except (OSError, asyncpg.PostgresError) as exc:  # still staged: swept once older than the TTL
        log.warning("cleanup_deferred", keys=len(keys), error=repr(exc))
