"""The dispatcher: sends due deliveries with bounded concurrency, woken when events are queued."""

from __future__ import annotations

import asyncio

from voxtrain_shared.health import Health
from voxtrain_shared.loops import Loop

from . import handlers as h
from .domain import RetryPolicy


def dispatcher(
    uow: h.HookWork,
    sender: h.Sender,
    policy: RetryPolicy,
    clock: h.Clock,
    *,
    concurrency: int,
    every: float,
    health: Health | None = None,
) -> Loop:
    async def step() -> None:
        # ``concurrency`` claims at once; each takes the head of a different (endpoint, model) queue.
        while sum(await asyncio.gather(*(h.deliver_due(uow, sender, policy, clock, 1) for _ in range(concurrency)))):
            pass

    return Loop("webhook-dispatcher", step, every=every, health=health)
