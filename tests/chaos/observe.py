"""What an outsider sees: a plain Kafka consumer of the status topic (and of the dead-letter topics),
and the verdict per model and per component."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from voxtrain_shared import events as ev
from voxtrain_shared.topics import DEAD_LETTER_SUFFIX, Topics

from .flow import ModelRun


@dataclass(frozen=True)
class Seen:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


class Collector:
    """Reads topics (a list, or a pattern) from the beginning for as long as it runs; survives broker restarts
    (aiokafka reconnects) and keeps each record once (by partition and offset), whatever a rebalance re-reads."""

    def __init__(self, bootstrap: str, *, topics: tuple[str, ...] = (), pattern: str | None = None) -> None:
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=f"chaos-observer-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=3000,
            request_timeout_ms=15000,
            retry_backoff_ms=500,
        )
        self._pattern = pattern
        self.records: dict[tuple[str, int, int], Seen] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._pattern:
            self._consumer.subscribe(pattern=self._pattern)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=500)
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker is away: aiokafka reconnects, we keep asking
                await asyncio.sleep(1.0)
                continue
            for recs in batch.values():
                for r in recs:
                    self.records.setdefault(
                        (r.topic, r.partition, r.offset),
                        Seen(
                            r.topic,
                            r.partition,
                            r.offset,
                            r.timestamp,
                            r.key,
                            r.value,
                            tuple((k, v) for k, v in (r.headers or ())),
                        ),
                    )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def ordered(self) -> list[Seen]:
        return sorted(self.records.values(), key=lambda s: (s.topic, s.partition, s.offset))


def dead_letter_pattern(topics: Topics) -> str:
    return "^" + re.escape(topics.namespace + ".") + ".*" + re.escape(DEAD_LETTER_SUFFIX) + "$"


@dataclass
class Verdict:
    """One model, judged from the status topic and the API."""

    run: ModelRun
    transitions: list[tuple[int | None, int]] = field(default_factory=list)
    duplicated: int = 0  #: distinct events repeating a transition
    redelivered: int = 0  #: the same event (same id) published again (at-least-once; harmless to idempotent readers)
    gaps: int = 0  #: an old_status that is not the previous new_status
    lost: bool = False  #: the API's final status has no transition on the topic
    bad_uploads: list[str] = field(default_factory=list)

    @property
    def stuck(self) -> bool:
        return self.run.id is None or self.run.status not in (4, 5)

    @property
    def ended(self) -> str:
        if self.run.id is None:
            return "never created"
        if self.stuck:
            return f"stuck at {self.run.status}" if self.run.status else "status unknown (the API never answered)"
        return "4" if self.run.status == 4 else f"5 {self.run.error_code or '(no code)'}"


def judge(run: ModelRun, status_records: list[Seen]) -> Verdict:
    v = Verdict(run)
    seen_ids: set[str] = set()
    events = []
    for s in status_records:
        if run.id is None or s.key != str(run.id).encode():
            continue
        env = ev.REGISTRY.parse(s.value)
        if str(env.id) in seen_ids:
            v.redelivered += 1
            continue
        seen_ids.add(str(env.id))
        events.append(env.payload())
    previous: int | None = 1
    done: set[tuple[int | None, int]] = set()
    for p in events:
        assert isinstance(p, ev.TrainingStatusChanged)
        pair = (int(p.old_status) if p.old_status is not None else None, int(p.new_status))
        v.transitions.append(pair)
        if pair in done:
            v.duplicated += 1
        elif pair[0] != previous:
            v.gaps += 1
        done.add(pair)
        previous = pair[1]
    if run.status is not None and run.status != 1 and previous != run.status:
        v.lost = True
    if not v.stuck and run.status == 5 and not run.error_code:
        v.bad_uploads.append("ended at 5 without an error code")
    for a in run.answers:
        if a.status is not None and not a.clear:
            v.bad_uploads.append(f"upload answered {a.status} without a clear error code and message")
        if a.status is not None and a.clear and a.stored:
            v.bad_uploads.append(f"upload answered {a.status} {a.code} but stored {a.stored} dataset(s)")
    return v


#: Codes that, with the chaos suite's valid data, can only come from the injected fault.
FAULT_CODES = {"worker_lost", "stage_failed", "storage_unavailable", "validation_timeout", "validation_failed"}


@dataclass
class Row:
    label: str
    rounds: int = 0
    models: int = 0
    ended_4: int = 0
    ended_5: Counter[str] = field(default_factory=Counter)
    stuck: int = 0
    duplicated: int = 0
    gaps: int = 0
    lost: int = 0
    dead_lettered: int = 0
    bad_uploads: int = 0
    upload_refusals: int = 0
    redelivered: int = 0

    def add(self, v: Verdict) -> None:
        self.models += 1
        if v.stuck:
            self.stuck += 1
        elif v.run.status == 4:
            self.ended_4 += 1
        else:
            self.ended_5[v.run.error_code or "(none)"] += 1
        self.duplicated += v.duplicated
        self.gaps += v.gaps
        self.lost += int(v.lost)
        self.bad_uploads += len(v.bad_uploads)
        self.upload_refusals += sum(1 for a in v.run.answers if a.status is not None)
        self.redelivered += v.redelivered

    @property
    def fault_failures(self) -> int:
        """Models failed by what a restart or a brief outage must never cause (the data here is always good)."""
        return sum(n for code, n in self.ended_5.items() if code in FAULT_CODES)

    @property
    def failed(self) -> bool:
        return bool(
            self.stuck
            or self.duplicated
            or self.gaps
            or self.lost
            or self.dead_lettered
            or self.bad_uploads
            or self.fault_failures
        )


COLUMNS = (
    "fault",
    "rounds",
    "models",
    "ended 4",
    "ended 5 (by code)",
    "stuck",
    "duplicated",
    "gaps",
    "lost",
    "dead-lettered",
    "bad uploads",
    "upload refusals",
    "redelivered",
)


def table(rows: list[Row]) -> str:
    """A Markdown table, one row per fault and a total."""
    total = Row("total")
    for r in rows:
        for name in (
            "rounds",
            "models",
            "ended_4",
            "stuck",
            "duplicated",
            "gaps",
            "lost",
            "dead_lettered",
            "bad_uploads",
            "upload_refusals",
            "redelivered",
        ):
            setattr(total, name, getattr(total, name) + getattr(r, name))
        total.ended_5.update(r.ended_5)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in [*rows, total]:
        five = ", ".join(f"{n} {code}" for code, n in sorted(r.ended_5.items())) or "0"
        cells: list[Any] = [
            r.label,
            r.rounds,
            r.models,
            r.ended_4,
            five,
            r.stuck,
            r.duplicated,
            r.gaps,
            r.lost,
            r.dead_lettered,
            r.bad_uploads,
            r.upload_refusals,
            r.redelivered,
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def group_by_label(items: list[tuple[str, Verdict]]) -> dict[str, list[Verdict]]:
    out: dict[str, list[Verdict]] = defaultdict(list)
    for label, v in items:
        out[label].append(v)
    return out
