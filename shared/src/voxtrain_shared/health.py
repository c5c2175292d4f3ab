"""What a process's long-running parts know about their dependencies, for ``/health/ready`` and ``/metrics``.

A consumer that waits for PostgreSQL, a relay that cannot publish to Kafka: each reports itself *blocked* on a
dependency (with the error) at every failed attempt, and *clear* again once its work goes on. Readiness answers
503 while anything is blocked and names what is missing; ``voxtrain_blocked{component,dependency}`` is 1
meanwhile. A report not renewed within its ``ttl`` lapses — a consumer whose partition moved to another replica
while it waited has no message left to succeed with, and must not keep this replica unready forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .faults import DEPENDENCY_NAMES
from .metrics import BLOCKED

#: How long a report stays true without being renewed (components renew at every failed attempt).
DEFAULT_TTL = 120.0


@dataclass(frozen=True)
class Blocked:
    component: str
    dependency: str
    reason: str
    since: float
    renewed: float
    ttl: float


class Health:
    """Registry of blocked components (one per process, held by the Service)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._blocked: dict[str, Blocked] = {}
        self._clock = clock

    def blocked(self, component: str, dependency: str, reason: str, *, ttl: float = DEFAULT_TTL) -> None:
        """``component`` cannot work because ``dependency`` ("" when unknown) fails with ``reason``; true for
        ``ttl`` seconds unless renewed or cleared."""
        dependency = dependency or "unknown"
        now = self._clock()
        old = self._blocked.get(component)
        if old is not None and old.dependency != dependency:
            BLOCKED.labels(component=component, dependency=old.dependency).set(0)
        since = old.since if old is not None and old.dependency == dependency else now
        self._blocked[component] = Blocked(component, dependency, reason[:300], since, now, ttl)
        BLOCKED.labels(component=component, dependency=dependency).set(1)

    def clear(self, component: str) -> None:
        """``component`` works again."""
        old = self._blocked.pop(component, None)
        if old is not None:
            BLOCKED.labels(component=component, dependency=old.dependency).set(0)

    def _current(self) -> list[Blocked]:
        now = self._clock()
        for b in [b for b in self._blocked.values() if now - b.renewed > b.ttl]:
            self.clear(b.component)
        return list(self._blocked.values())

    def problems(self) -> dict[str, str]:
        """``{component: "waiting for <dependency> for <n> s: <reason>"}`` for everything blocked now."""
        now = self._clock()
        return {
            b.component: (
                f"waiting for {DEPENDENCY_NAMES.get(b.dependency, b.dependency)} for {now - b.since:.0f} s: {b.reason}"
            )
            for b in self._current()
        }

    def missing(self) -> list[str]:
        """The dependencies something waits for."""
        return sorted({b.dependency for b in self._current()})
