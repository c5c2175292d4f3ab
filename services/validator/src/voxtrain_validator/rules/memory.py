"""The memory the concurrent checks of one validator process may hold beyond their flat working set.

Most checks read and decode in bounded memory whatever the file's size. One thing grows with the file: FFmpeg's
MP4 demuxer reads an M4A's whole index (its sample table, ~75 bytes a packet) when it opens the file. The checks
of one process share a :class:`MemoryBudget`: a check that needs more waits until it fits next to what the others
hold, so two large M4As validated at once are checked one after the other instead of taking the pod past its
memory limit together.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class WaitAbandoned(Exception):
    """The check was given up (lease lost, training cancelled, service stopping) while it waited for memory."""


class MemoryBudget:
    """``budget_bytes`` shared by the threads of one process; :meth:`hold` waits for room, then holds it."""

    def __init__(self, budget_bytes: int, poll_seconds: float = 0.5) -> None:
        if budget_bytes <= 0:
            raise ValueError("a memory budget must be positive")
        self.budget_bytes = budget_bytes
        self._poll = poll_seconds
        self._used = 0
        self._room = threading.Condition()

    @property
    def used(self) -> int:
        """Bytes held now."""
        with self._room:
            return self._used

    @contextmanager
    def hold(self, nbytes: int, abandoned: threading.Event | None = None) -> Iterator[None]:
        """Hold ``nbytes`` of the budget while the block runs, waiting first until they fit.

        Raises ValueError when ``nbytes`` exceeds the whole budget (it would never fit: the caller refuses such
        work up front) and WaitAbandoned when ``abandoned`` is set while waiting."""
        if nbytes > self.budget_bytes:
            raise ValueError(f"{nbytes} bytes can never fit a budget of {self.budget_bytes}")
        with self._room:
            while self._used + nbytes > self.budget_bytes:
                if abandoned is not None and abandoned.is_set():
                    raise WaitAbandoned("the check was given up while it waited for memory")
                self._room.wait(self._poll)
            self._used += nbytes
        try:
            yield
        finally:
            with self._room:
                self._used -= nbytes
                self._room.notify_all()
