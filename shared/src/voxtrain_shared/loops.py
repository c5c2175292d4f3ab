"""The small loop that drives a background use case (job workers, sweepers, supervisors, gauges).

The use case is one step (``async () -> None``); the loop calls it until the service stops, waiting
``every`` seconds between steps or less when woken, and never dies of an error in a step: it logs it
and tries again after the wait, so a passing outage only delays the work. While steps fail because a
dependency is away (:func:`voxtrain_shared.faults.classify`), the wait grows (capped exponential backoff,
at most ``max(every, 30)`` s) and, given a :class:`~voxtrain_shared.health.Health`, readiness names it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .faults import backoff, classify
from .health import DEFAULT_TTL, Health
from .logs import get_logger

log = get_logger(__name__)


class Loop:
    """Runs ``step`` until ``stop`` is set; :meth:`wake` makes the next step start at once."""

    def __init__(
        self, name: str, step: Callable[[], Awaitable[object]], *, every: float, health: Health | None = None
    ) -> None:
        self.name, self._step, self._every, self._health = name, step, every, health
        self._wake = asyncio.Event()

    def wake(self, *_: object) -> None:
        """Start the next step now (usable as a LISTEN/NOTIFY callback)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        component = f"loop {self.name}"
        transient = 0
        while not stop.is_set():
            self._wake.clear()
            wait = self._every
            try:
                await self._step()
                if transient and self._health is not None:
                    self._health.clear(component)
                transient = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a step's failure must not end the loop: log it, try again later
                fault = classify(exc)
                log.warning("loop_step_failed", loop=self.name, error=repr(exc), kind=fault.kind.value)
                if fault.transient:
                    transient += 1
                    wait = backoff(transient, base=min(self._every, 1.0), cap=max(self._every, 30.0))
                    if self._health is not None:
                        self._health.blocked(component, fault.dependency, fault.reason, ttl=max(DEFAULT_TTL, 3 * wait))
            await wait_any(self._wake, stop, timeout=wait)


async def wait_any(*events: asyncio.Event, timeout: float) -> None:
    """Return when any of ``events`` is set or ``timeout`` seconds have passed."""
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
