"""What a plain consumer of the status topic saw, judged per model (pure: no I/O, stdlib only).

The fleet benchmark records, for every model, when its Train was sent and every ``TrainingStatusChanged``
(old status, new status, event id, when it arrived). From those this module derives the benchmark's
numbers: trainings per minute, Train → RUNNING latencies, and the models that were lost, stuck or
duplicated.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

RUNNING, SUCCESS, FAILED = 3, 4, 5
TERMINAL = (SUCCESS, FAILED)


@dataclass(frozen=True)
class Seen:
    """One ``TrainingStatusChanged`` as the consumer received it."""

    event_id: str
    old: int
    new: int
    at: float  #: wall-clock seconds when the consumer received it


@dataclass
class Track:
    """One model's Train request and the status events seen for it."""

    model_id: str
    tenant: str
    train_sent: float | None = None  #: wall-clock seconds just before POST .../train was sent
    train_answer: int | None = None  #: the HTTP status Train answered (202 when accepted)
    train_refusals: int = 0  #: Trains refused with "no datasets" before the models service saw the upload
    events: list[Seen] = field(default_factory=list)

    def first(self, new: int) -> Seen | None:
        return next((e for e in self.events if e.new == new), None)

    @property
    def terminal(self) -> Seen | None:
        return next((e for e in self.events if e.new in TERMINAL), None)

    @property
    def duplicates(self) -> list[tuple[int, int]]:
        """Transitions seen more than once (a redelivered event counts, and so does the same move twice)."""
        counts = Counter((e.old, e.new) for e in self.events)
        return sorted(t for t, n in counts.items() if n > 1)

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """Events whose old status is not the new status of the event before (one was missed, or out of order)."""
        return [
            (a.new, b.old)
            for a, b in zip(self.events, self.events[1:], strict=False)
            if a.new != b.old and (a.old, a.new) != (b.old, b.new)
        ]


@dataclass(frozen=True)
class Verdict:
    accepted: int  #: models whose Train was accepted (202)
    succeeded: int
    failed: int
    lost: list[str]  #: accepted, and not one status event was ever seen for the model
    stuck: list[str]  #: seen moving, but no 4 or 5 by the deadline
    duplicated: list[str]  #: a transition seen twice
    gapped: list[str]  #: a transition missing between two seen ones
    train_to_running: list[float]  #: seconds, Train sent → 2→3 received, per model that reached RUNNING
    running_to_done: list[float]  #: seconds, 3 received → 4/5 received
    first_train: float | None
    last_terminal: float | None

    @property
    def wall_seconds(self) -> float:
        if self.first_train is None or self.last_terminal is None:
            return 0.0
        return max(0.0, self.last_terminal - self.first_train)

    @property
    def per_minute(self) -> float:
        """Successful trainings per minute, from the first Train sent to the last terminal status received."""
        return 60.0 * self.succeeded / self.wall_seconds if self.wall_seconds > 0 else 0.0


def judge(tracks: list[Track]) -> Verdict:
    accepted = [t for t in tracks if t.train_answer == 202]
    lost, stuck, succeeded, failed = [], [], 0, 0
    to_running, to_done, terminals = [], [], []
    for t in accepted:
        end = t.terminal
        if not t.events:
            lost.append(t.model_id)
        elif end is None:
            stuck.append(t.model_id)
        else:
            terminals.append(end.at)
            succeeded += end.new == SUCCESS
            failed += end.new == FAILED
        running = t.first(RUNNING)
        if running is not None and t.train_sent is not None:
            to_running.append(running.at - t.train_sent)
            if end is not None:
                to_done.append(end.at - running.at)
    sent = [t.train_sent for t in accepted if t.train_sent is not None]
    return Verdict(
        accepted=len(accepted),
        succeeded=succeeded,
        failed=failed,
        lost=lost,
        stuck=stuck,
        duplicated=[t.model_id for t in tracks if t.duplicates],
        gapped=[t.model_id for t in tracks if t.gaps],
        train_to_running=to_running,
        running_to_done=to_done,
        first_train=min(sent) if sent else None,
        last_terminal=max(terminals) if terminals else None,
    )


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def occupancy(tracks: list[Track], start: float, end: float) -> dict[int, float]:
    """Share of ``start``–``end`` during which exactly k trainings were running (RUNNING received, 4/5 not yet),
    as {k: share}. With two trainer replicas, the share at k < 2 is where a replica had no training: a bubble."""
    moves: list[tuple[float, int]] = []
    for t in tracks:
        running, end_seen = t.first(RUNNING), t.terminal
        if running is not None:
            moves.append((max(start, running.at), +1))
            moves.append((min(end, end_seen.at if end_seen is not None else end), -1))
    shares: dict[int, float] = {}
    if end <= start:
        return shares
    at, level = start, 0
    for when, step in sorted(moves):
        when = min(max(when, start), end)
        shares[level] = shares.get(level, 0.0) + (when - at) / (end - start)
        at, level = when, level + step
    shares[level] = shares.get(level, 0.0) + (end - at) / (end - start)
    return {k: v for k, v in sorted(shares.items()) if v > 0}
