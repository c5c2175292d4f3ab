"""The sweeper's step: abort expired upload sessions, remove abandoned objects, forget old sessions.

Safe to run on every replica at once (each removal is idempotent). :mod:`..workers` drives it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from voxtrain_shared.logs import get_logger

from .deps import COMPLETION_STALL, Deps, housekeeping, now

log = get_logger(__name__)


@dataclass
class Swept:
    sessions: int = 0
    objects: int = 0
    completed_sessions: int = 0


async def sweep(deps: Deps, at: datetime | None = None) -> Swept:
    """One round of clean-up as of ``at`` (default: now)."""
    at = at or now()
    done = Swept()
    async with deps.uow.reading() as repo:
        sessions = await repo.expired_sessions(at, at - COMPLETION_STALL)
        keys = await repo.objects_to_remove(at - deps.session_ttl)
    ctx = housekeeping()
    for s in sessions:
        await deps.store.abort_all(s.object_key)
        await deps.store.remove(s.object_key)  # completed in storage but never recorded
        async with deps.uow(ctx) as tx:
            await tx.repo.delete_session(s.id)
        done.sessions += 1
    for key in keys:
        await deps.store.abort_all(key)
        await deps.store.remove(key)
        async with deps.uow(ctx) as tx:
            await tx.repo.unstage_objects([key])
        done.objects += 1
    async with deps.uow(ctx) as tx:
        done.completed_sessions = await tx.repo.forget_completed_sessions(at - deps.session_ttl)
    if done.sessions or done.objects or done.completed_sessions:
        log.info("swept", **asdict(done))
    return done
