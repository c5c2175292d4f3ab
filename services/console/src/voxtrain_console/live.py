"""Live status for browsers: which events a browser sees, and the per-tenant fan-out.

Pure asyncio, no Kafka: :class:`Hub` takes :class:`LiveEvent`\\ s from whatever reads them (the
Kafka feed in production, a test directly) and hands each only to the subscriptions of the event's
own tenant. A subscription that falls behind is closed rather than allowed to grow without bound;
the browser's EventSource reconnects and the page re-reads the current state from the APIs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from voxtrain_shared import events as ev
from voxtrain_shared.vocab import ModelStatus


@dataclass(frozen=True)
class LiveEvent:
    """One event as a browser receives it: an SSE event name, its JSON data, and whose it is."""

    id: str
    name: str
    tenant_id: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        """The Server-Sent Events frame."""
        return f"id: {self.id}\nevent: {self.name}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n".encode()


#: What the page shows of a progress report (the model view's ``progress`` has the same keys).
PROGRESS_FIELDS = ("stage", "percent", "message", "eta_seconds", "attempt", "max_attempts")


def to_live(env: ev.Envelope) -> LiveEvent | None:
    """The browser's view of a status change or a training progress report; None for anything else."""
    base: dict[str, Any] = {
        "model_id": str(env.model_id) if env.model_id else None,
        "occurred_at": env.occurred_at.isoformat(),
    }
    if env.type == ev.TrainingStatusChanged.TYPE:
        p = env.payload()
        assert isinstance(p, ev.TrainingStatusChanged)
        status = ModelStatus(p.new_status)
        data = {
            **base,
            "old_status": int(p.old_status) if p.old_status else None,
            "new_status": int(status),
            "status_name": status.name,
            "label": status.label,
            "badge": status.badge,
            "reason": p.reason,
            "error": p.error.model_dump(mode="json") if p.error else None,
            "run_id": str(p.run_id) if p.run_id else None,
        }
        return LiveEvent(str(env.id), "status", env.tenant_id, data)
    if env.type == ev.TrainingProgress.TYPE:
        p = env.payload()
        assert isinstance(p, ev.TrainingProgress)
        report = p.model_dump(mode="json")  # eta_seconds, attempt, max_attempts: null when the trainer has none
        data = {**base, "run_id": str(p.run_id), **{k: report.get(k) for k in PROGRESS_FIELDS}}
        return LiveEvent(str(env.id), "progress", env.tenant_id, data)
    return None


class Subscription:
    """One browser's queue of events. ``closed`` once it fell behind (or the hub stopped)."""

    def __init__(self, tenant_id: str, size: int) -> None:
        self.tenant_id = tenant_id
        self._queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(size)
        self.closed = False

    def offer(self, event: LiveEvent | None) -> bool:
        """Queue ``event`` (None closes); False when full, after which the subscription is closed."""
        if self.closed:
            return False
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.closed = True
            self._queue.get_nowait()  # make room for the end-of-stream marker
            self._queue.put_nowait(None)
            return False
        if event is None:
            self.closed = True
        return True

    async def next(self, timeout: float) -> LiveEvent | None:
        """The next event, or None after ``timeout`` seconds without one.

        Raises :class:`EOFError` once the subscription was closed and drained.
        """
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            if self.closed and self._queue.empty():
                raise EOFError from None
            return None
        if item is None:
            raise EOFError
        return item


class Hub:
    """Fan-out of live events to the subscriptions of each event's tenant."""

    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._by_tenant: dict[str, set[Subscription]] = {}

    @contextmanager
    def subscribe(self, tenant_id: str) -> Iterator[Subscription]:
        """A subscription to ``tenant_id``'s events for the duration of the ``with`` block."""
        sub = Subscription(tenant_id, self._queue_size)
        self._by_tenant.setdefault(tenant_id, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._by_tenant.get(tenant_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_tenant[tenant_id]

    def publish(self, event: LiveEvent) -> int:
        """Give ``event`` to every subscription of its tenant (only); returns how many took it."""
        return sum(1 for sub in list(self._by_tenant.get(event.tenant_id, ())) if sub.offer(event))

    def subscribers(self, tenant_id: str | None = None) -> int:
        """How many subscriptions exist (for one tenant, or in all)."""
        if tenant_id is not None:
            return len(self._by_tenant.get(tenant_id, ()))
        return sum(len(s) for s in self._by_tenant.values())

    def close(self) -> None:
        """End every subscription (at shutdown)."""
        for subs in self._by_tenant.values():
            for sub in subs:
                sub.offer(None)


async def sse_stream(
    hub: Hub, tenant_id: str, heartbeat: float, expires_at: float, clock: Any = None, model_id: str | None = None
) -> Any:
    """The Server-Sent Events of one browser: its tenant's events (only ``model_id``'s if given), heartbeats,
    and an end at expiry.

    Starts with ``event: ready`` (the page re-reads the state then, so nothing between two
    connections is lost) and ends with ``event: expired`` when the token runs out.
    """
    import time

    now = clock or time.time
    with hub.subscribe(tenant_id) as sub:
        yield b"retry: 3000\n\n"
        yield LiveEvent("0", "ready", tenant_id, {"tenant_id": tenant_id}).encode()
        while True:
            left = expires_at - now()
            if left <= 0:
                yield LiveEvent("0", "expired", tenant_id, {"message": "The token expired: sign in again."}).encode()
                return
            try:
                event = await sub.next(min(heartbeat, left))
            except EOFError:
                return
            if event is None:
                yield b": keep-alive\n\n"
            elif model_id is None or event.data.get("model_id") == model_id:
                yield event.encode()
