"""Background use cases of the datasets service, each a step driven by :class:`voxtrain_shared.loops.Loop`."""

from __future__ import annotations

from voxtrain_shared.health import Health
from voxtrain_shared.loops import Loop

from .handlers.deps import Deps
from .handlers.sweeping import Swept, sweep

SWEEP_EVERY_SECONDS = 60.0


def sweeper(deps: Deps, *, every: float = SWEEP_EVERY_SECONDS, health: Health | None = None) -> Loop:
    """Every ``every`` seconds: make sure the bucket exists, then sweep (a failed round waits for the next)."""

    async def step() -> Swept:
        await deps.store.ensure_bucket()
        return await sweep(deps)

    return Loop("sweeper", step, every=every, health=health)
