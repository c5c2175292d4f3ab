"""A bounded wait for a place: at most ``places`` calls run at once, and a call that cannot get a place within
``max_wait_seconds`` is refused (:class:`Busy`) instead of waiting in a queue without end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Busy(Exception):
    """No place came free within the wait."""

    def __init__(self, places: int, waited_seconds: float) -> None:
        super().__init__(f"all {places} places stayed taken for {waited_seconds:g} s")
        self.places = places
        self.waited_seconds = waited_seconds


class Places:
    """Runs blocking calls in threads, at most ``places`` at once (e.g. one per decoding process)."""

    def __init__(self, places: int, max_wait_seconds: float) -> None:
        self.places, self.max_wait_seconds = places, max_wait_seconds
        self._free = asyncio.Semaphore(places)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a thread once a place is free; :class:`Busy` after ``max_wait_seconds`` without one.
        The place is held until ``fn`` returns, even if the caller stops waiting first (a thread cannot be
        stopped: its work still occupies what the place stands for)."""
        try:
            async with asyncio.timeout(self.max_wait_seconds):
                await self._free.acquire()
        except TimeoutError:
            raise Busy(self.places, self.max_wait_seconds) from None
        try:
            running = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        except BaseException:
            self._free.release()
            raise
        running.add_done_callback(lambda _: self._free.release())
        return await asyncio.shield(running)
