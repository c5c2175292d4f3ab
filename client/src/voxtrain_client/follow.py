"""Following a model until its training ends: live events first, polling while the stream is away.

The stream (``GET /v1/models/{id}/events``) starts with ``ready``, after which the model is read once, so
nothing that happened before the connection is missed; then each ``status`` and ``progress`` event updates the
line at once. When the stream drops (a broken or silent connection) the model is polled and the stream is tried
again on the next round; when it ends because the token did (``expired``) it is opened again at once (an API key
gets a new token); a server without the stream (404) is polled from then on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
from httpx_sse import SSEError

from .api import ApiError, Client, LiveEvent, Model

FINAL = frozenset({4, 5})
LABELS = {1: "Not Running", 2: "Ready To Run", 3: "Running", 4: "Success", 5: "Failed"}
#: answers meaning "this server has no event stream": poll instead, without trying again
NO_STREAM = frozenset({404, 405, 501})


@dataclass(frozen=True)
class Snapshot:
    """What the status line shows; ``via`` says where it came from (``stream`` or ``poll``)."""

    code: int
    label: str
    via: str
    stage: str | None = None
    percent: float | None = None
    eta_seconds: float | None = None

    def text(self) -> str:
        text = f"{self.code} {self.label}"
        if self.code == 3 and self.stage:
            text += f" — {self.stage}"
            if self.percent is not None:
                text += f" {self.percent:.0f}%"
            if self.eta_seconds is not None:
                text += f", about {eta_text(self.eta_seconds)} left"
        return text


def eta_text(seconds: float) -> str:
    s = max(0, int(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s"


def snapshot_of(m: Model, via: str) -> Snapshot:
    p = m.progress
    return Snapshot(
        code=m.code,
        label=str(m.status.get("label") or LABELS.get(m.code, "")),
        via=via,
        stage=p.get("stage"),
        percent=_number(p.get("percent")),
        eta_seconds=_number(p.get("eta_seconds")),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


class Follower:
    """Follows one model; ``report`` is called with every new :class:`Snapshot`. ``sleep`` for tests."""

    def __init__(
        self,
        client: Client,
        model_id: str,
        report: Callable[[Snapshot], None],
        *,
        interval: float = 2.0,
        read_timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client, self._model_id, self._report = client, model_id, report
        self._interval, self._read_timeout, self._sleep = interval, read_timeout, sleep
        self._last: Snapshot | None = None
        self._expired = False
        self.live = True  # False once the server said it has no stream
        self.connections = 0
        self.polls = 0

    def run(self) -> Model:
        """The model once it is at 4 or 5."""
        while True:
            if self.live:
                try:
                    if (done := self._stream()) is not None:
                        return done
                    if self._expired:  # the token ran out, not the server: a new one, a new connection now
                        self._expired = False
                        continue
                except ApiError as exc:
                    if exc.status in NO_STREAM:
                        self.live = False
                    elif exc.status < 500:
                        raise  # e.g. 401: polling would be refused the same way
                except (httpx.TransportError, SSEError):
                    pass  # dropped or silent: poll below, then connect again
            m = self._poll()
            if m.code in FINAL:
                return m
            self._sleep(self._interval)

    def _poll(self) -> Model:
        self.polls += 1
        m = self._client.get_model(self._model_id)
        self._show(snapshot_of(m, "poll"))
        return m

    def _stream(self) -> Model | None:
        """Follow the stream until the model ends (its final view) or the stream ends (None)."""
        with self._client.events(self._model_id, read_timeout=self._read_timeout) as events:
            self.connections += 1
            for event in events:
                if (done := self._on(event)) is not None:
                    return done
        return None

    def _on(self, event: LiveEvent) -> Model | None:
        data = event.data
        if event.name == "expired":
            self._expired = True
            return None
        if event.name == "ready":
            m = self._client.get_model(self._model_id)
            self._show(snapshot_of(m, "stream"))
            return m if m.code in FINAL else None
        if data.get("model_id") != self._model_id:
            return None
        if event.name == "status":
            code = int(data["new_status"])
            self._show(Snapshot(code, str(data.get("label") or LABELS.get(code, "")), "stream"))
            # the final view carries what the event does not: metrics, the full last_error
            return self._client.get_model(self._model_id) if code in FINAL else None
        if event.name == "progress":
            base = self._last if self._last is not None and self._last.code == 3 else Snapshot(3, LABELS[3], "stream")
            self._show(
                replace(
                    base,
                    via="stream",
                    stage=data.get("stage"),
                    percent=_number(data.get("percent")),
                    eta_seconds=_number(data.get("eta_seconds")),
                )
            )
        return None

    def _show(self, snap: Snapshot) -> None:
        self._last = snap
        self._report(snap)
