"""The small loop that drives a background use case (job workers, sweepers, supervisors, gauges).

The use case is one step (``async () -> None``); the loop calls it until the service stops, waiting
``every`` seconds between steps or less when woken, and never dies of an error in a step: it logs it
and tries again after the wait, so a passing outage only delays the work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .logs import get_logger

log = get_logger(__name__)


class Loop:
    """Runs ``step`` until ``stop`` is set; :meth:`wake` makes the next step start at once."""

    def __init__(self, name: str, step: Callable[[], Awaitable[object]], *, every: float) -> None:
        self.name, self._step, self._every = name, step, every
        self._wake = asyncio.Event()

    def wake(self, *_: object) -> None:
        """Start the next step now (usable as a LISTEN/NOTIFY callback)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a step's failure must not end the loop: log it, try again later
                log.warning("loop_step_failed", loop=self.name, error=repr(exc))
            await wait_any(self._wake, stop, timeout=self._every)


async def wait_any(*events: asyncio.Event, timeout: float) -> None:
    """Return when any of ``events`` is set or ``timeout`` seconds have passed."""
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
