"""The models-per-status gauge, refreshed from the database in the background."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg

from voxtrain_shared.logs import get_logger
from voxtrain_shared.metrics import MODELS_BY_STATUS

from .repository import ModelRepository

log = get_logger(__name__)
REFRESH_SECONDS = 15.0


async def refresh(pool: asyncpg.Pool) -> None:
    """Set ``voxtrain_models{status=...}`` from the models table, once."""
    async with pool.acquire() as conn:
        counts = await ModelRepository(conn).count_by_status()
    for status, n in counts.items():
        MODELS_BY_STATUS.labels(status.name).set(n)


async def refresh_forever(
    pool: Callable[[], asyncpg.Pool], stop: asyncio.Event, every: float = REFRESH_SECONDS
) -> None:
    """Refresh every ``every`` seconds until ``stop``; a database outage only skips a round."""
    while not stop.is_set():
        try:
            await refresh(pool())
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("models_gauge_refresh_failed", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
