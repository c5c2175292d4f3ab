"""Per-tenant upload quotas, counted in PostgreSQL so they hold across replicas.

- streamed (form) uploads in progress: a leased slot per request (:func:`upload_slot`), renewed while it
  streams, deleted when it ends, lapsing on its own when a replica dies mid-upload;
- open resumable sessions: counted from ``upload_sessions`` (:func:`check_sessions`).

Each check takes a transaction-scoped advisory lock on the tenant, so two requests cannot both take the
last place; another tenant's checks never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

from voxtrain_shared.logs import get_logger
from voxtrain_shared.uow import Context

from .. import domain as d
from ..repository import DatasetRepository
from .deps import Deps, now

log = get_logger(__name__)


async def check_sessions(deps: Deps, repo: DatasetRepository, tenant_id: str) -> None:
    """Refuse a new resumable session when the tenant has its limit open (call inside the insert's transaction)."""
    await repo.lock_tenant_uploads(tenant_id)
    d.check_open_sessions(await repo.open_sessions(tenant_id, now()), deps.limits.max_sessions_per_tenant)


async def sessions_left(deps: Deps, tenant_id: str) -> None:
    """The same check without a lock, before storage is asked for anything (the insert checks again)."""
    async with deps.uow.reading() as repo:
        d.check_open_sessions(await repo.open_sessions(tenant_id, now()), deps.limits.max_sessions_per_tenant)


@contextlib.asynccontextmanager
async def upload_slot(deps: Deps, ctx: Context, model_id: uuid.UUID) -> AsyncIterator[None]:
    """Hold one of the tenant's streamed-upload places for the body of the ``async with``
    (``too_many_uploads`` when they are all taken)."""
    slot = uuid.uuid4()
    lease = deps.slot_lease.total_seconds()
    async with deps.uow(ctx) as tx:
        await tx.repo.lock_tenant_uploads(ctx.tenant_id)
        in_progress = await tx.repo.upload_slots_in_use(ctx.tenant_id)
        d.check_concurrent_uploads(in_progress, deps.limits.max_concurrent_per_tenant)
        await tx.repo.take_upload_slot(slot, ctx.tenant_id, model_id, lease)
    renewing = asyncio.create_task(_renew(deps, ctx, slot, lease))
    try:
        yield
    finally:
        renewing.cancel()
        await asyncio.shield(_release(deps, ctx, slot))


async def _renew(deps: Deps, ctx: Context, slot: uuid.UUID, lease: float) -> None:
    while True:
        await asyncio.sleep(lease / 3)
        try:
            async with deps.uow(ctx) as tx:
                await tx.repo.renew_upload_slot(slot, lease)
        except (OSError, asyncpg.PostgresError) as exc:  # tried again at the next third; the upload goes on
            log.warning("upload_slot_renew_failed", slot=str(slot), error=repr(exc))


async def _release(deps: Deps, ctx: Context, slot: uuid.UUID) -> None:
    try:
        async with deps.uow(ctx) as tx:
            await tx.repo.release_upload_slot(slot)
    except (OSError, asyncpg.PostgresError) as exc:  # the lease lapses on its own
        log.warning("upload_slot_release_failed", slot=str(slot), error=repr(exc))
