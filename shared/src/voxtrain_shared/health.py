"""What a process's long-running parts know about their dependencies, for ``/health/ready`` and ``/metrics``.

A consumer that waits for PostgreSQL, a relay that cannot publish to Kafka: each reports itself *blocked* on a
dependency (with the error) and *clear* again once its work goes on. Readiness answers 503 while anything is
blocked and names what is missing; ``voxtrain_blocked{component,dependency}`` is 1 meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .faults import DEPENDENCY_NAMES
from .metrics import BLOCKED


@dataclass(frozen=True)
class Blocked:
    component: str
    dependency: str
    reason: str
    since: float


class Health:
    """Registry of blocked components (one per process, held by the Service)."""

    def __init__(self) -> None:
        self._blocked: dict[str, Blocked] = {}

    def blocked(self, component: str, dependency: str, reason: str) -> None:
        """``component`` cannot work because ``dependency`` ("" when unknown) fails with ``reason``."""
        dependency = dependency or "unknown"
        old = self._blocked.get(component)
        if old is not None and old.dependency != dependency:
            BLOCKED.labels(component=component, dependency=old.dependency).set(0)
        since = old.since if old is not None and old.dependency == dependency else time.time()
        self._blocked[component] = Blocked(component, dependency, reason[:300], since)
        BLOCKED.labels(component=component, dependency=dependency).set(1)

    def clear(self, component: str) -> None:
        """``component`` works again."""
        old = self._blocked.pop(component, None)
        if old is not None:
            BLOCKED.labels(component=component, dependency=old.dependency).set(0)

    def problems(self) -> dict[str, str]:
        """``{component: "waiting for <dependency> since <n> s: <reason>"}`` for everything blocked now."""
        now = time.time()
        return {
            b.component: (
                f"waiting for {DEPENDENCY_NAMES.get(b.dependency, b.dependency)} for {now - b.since:.0f} s: {b.reason}"
            )
            for b in self._blocked.values()
        }

    def missing(self) -> list[str]:
        """The dependencies something waits for."""
        return sorted({b.dependency for b in self._blocked.values()})
