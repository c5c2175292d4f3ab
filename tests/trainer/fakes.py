"""An in-memory TrainerRepository for handler tests (with tests/fakes.py::FakeUnitOfWork).

Time is a number the test moves (``clock``): heartbeats and backoffs are compared with it.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

from voxtrain_trainer.domain import Run, RunStatus


@dataclass
class Row:
    run: Run
    created: float
    heartbeat_at: float | None = None
    not_before: float | None = None
    started_at: float | None = None
    progress: dict[str, Any] | None = None
    model_deleted: bool = False


class FakeTrainerRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Row] = {}
        self.clock = 0.0
        self.locked: set[uuid.UUID] = set()  # rows another transaction holds (for SKIP LOCKED)
        self.cancelled: dict[uuid.UUID, str] = {}  # run id → tenant (cancelled_runs)

    def _copy(self, row: Row) -> Run:
        run = copy.deepcopy(row.run)
        run.events = []
        run.seconds = None if row.started_at is None else self.clock - row.started_at
        run.stage = row.progress.get("stage") if row.progress else None
        return run

    async def get(self, run_id: uuid.UUID, *, lock: bool = False, skip_locked: bool = False) -> Run | None:
        row = self.rows.get(run_id)
        if row is None or (skip_locked and run_id in self.locked):
            return None
        return self._copy(row)

    async def insert(self, run: Run) -> None:
        self.rows.setdefault(run.run_id, Row(copy.deepcopy(run), created=self.clock + len(self.rows) * 1e-6))

    async def save(self, run: Run) -> None:
        row = self.rows[run.run_id]
        saved = copy.deepcopy(run)
        saved.events, saved.retry_after = [], None
        row.run = saved
        row.not_before = self.clock + (run.retry_after or 0.0)
        if run.status is RunStatus.RUNNING:
            row.started_at = row.started_at if row.started_at is not None else self.clock
            row.heartbeat_at = self.clock

    async def set_progress(self, run_id: uuid.UUID, progress: dict[str, Any]) -> None:
        self.rows[run_id].progress = progress

    async def due(self, limit: int) -> list[Run]:
        rows = sorted(
            (
                r
                for r in self.rows.values()
                if r.run.status is RunStatus.QUEUED and (r.not_before is None or r.not_before <= self.clock)
            ),
            key=lambda r: r.created,
        )
        return [self._copy(r) for r in rows[:limit]]

    async def heartbeat(self, owner: str, attempts: dict[uuid.UUID, int]) -> set[uuid.UUID]:
        held = set()
        for run_id, attempt in attempts.items():
            row = self.rows.get(run_id)
            if row and row.run.status is RunStatus.RUNNING and row.run.owner == owner and row.run.attempt == attempt:
                row.heartbeat_at = self.clock
                held.add(run_id)
        return held

    async def lost(
        self, owner: str, live: list[uuid.UUID], lease_seconds: float, *, run_id: uuid.UUID | None = None
    ) -> list[Run]:
        out = []
        for row in sorted(self.rows.values(), key=lambda r: r.created):
            r = row.run
            if r.status is not RunStatus.RUNNING or (run_id is not None and r.run_id != run_id):
                continue
            stale = row.heartbeat_at is not None and row.heartbeat_at < self.clock - lease_seconds
            if stale or (r.owner == owner and r.run_id not in live):
                out.append(self._copy(row))
        return out

    async def remember_cancel(self, tenant_id: str, model_id: uuid.UUID | None, run_id: uuid.UUID, by: str) -> None:
        self.cancelled.setdefault(run_id, tenant_id)

    async def was_cancelled(self, tenant_id: str, run_id: uuid.UUID) -> bool:
        return self.cancelled.get(run_id) == tenant_id

    async def model_deleted(self, tenant_id: str, model_id: uuid.UUID) -> None:
        for run_id, row in list(self.rows.items()):
            if row.run.tenant_id == tenant_id and row.run.model_id == model_id:
                row.model_deleted = True
                if row.run.status is RunStatus.QUEUED:
                    del self.rows[run_id]

    async def trained(self, tenant_id: str, model_id: uuid.UUID) -> tuple[uuid.UUID, dict[str, str]] | None:
        done = [
            r
            for r in self.rows.values()
            if r.run.tenant_id == tenant_id
            and r.run.model_id == model_id
            and r.run.status is RunStatus.SUCCEEDED
            and not r.model_deleted
        ]
        return (done[-1].run.run_id, dict(done[-1].run.artifacts or {})) if done else None
