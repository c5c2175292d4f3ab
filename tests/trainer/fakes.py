"""An in-memory TrainerRepository for handler tests (with tests/fakes.py::FakeUnitOfWork).

Time is a number the test moves (``clock``): heartbeats and backoffs are compared with it.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

from voxtrain_trainer.domain import JobStatus, Run, RunStatus, TranscriptionJob


@dataclass
class Row:
    run: Run
    created: float
    heartbeat_at: float | None = None
    not_before: float | None = None
    started_at: float | None = None
    progress: dict[str, Any] | None = None
    model_deleted: bool = False


@dataclass
class JobRow:
    job: TranscriptionJob
    owner: str | None = None
    lease_until: float | None = None
    created: float = 0.0
    finished: float | None = None
    input_removed: bool = False


class FakeTrainerRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Row] = {}
        self.clock = 0.0
        self.locked: set[uuid.UUID] = set()  # rows another transaction holds (for SKIP LOCKED)
        self.cancelled: dict[uuid.UUID, str] = {}  # run id → tenant (cancelled_runs)
        self.jobs: dict[uuid.UUID, JobRow] = {}  # transcription jobs, in the order they were added

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

    async def add_transcription(self, job: TranscriptionJob) -> None:
        assert job.job_id not in self.jobs
        self.jobs[job.job_id] = JobRow(copy.deepcopy(job), created=self.clock)

    async def transcription(self, tenant_id: str, job_id: uuid.UUID) -> TranscriptionJob | None:
        row = self.jobs.get(job_id)
        if row is None or row.job.tenant_id != tenant_id or row.job.status is JobStatus.UPLOADING:
            return None
        return copy.deepcopy(row.job)

    async def claim_transcription(self, owner: str, lease_seconds: float) -> TranscriptionJob | None:
        for row in self.jobs.values():
            status = row.job.status
            expired = status is JobStatus.RUNNING and row.lease_until is not None and row.lease_until < self.clock
            if status is JobStatus.QUEUED or expired:
                row.job.status, row.job.attempt = JobStatus.RUNNING, row.job.attempt + 1
                row.owner, row.lease_until = owner, self.clock + lease_seconds
                return copy.deepcopy(row.job)
        return None

    async def renew_transcription(
        self, job_id: uuid.UUID, owner: str, attempt: int, done_seconds: float, lease_seconds: float
    ) -> bool:
        row = self.jobs[job_id]
        if row.owner != owner or row.job.attempt != attempt or row.job.status is not JobStatus.RUNNING:
            return False
        row.job.done_seconds, row.lease_until = done_seconds, self.clock + lease_seconds
        return True

    async def finish_transcription(self, job: TranscriptionJob, owner: str | None) -> bool:
        row = self.jobs[job.job_id]
        if row.job.attempt != job.attempt or (owner is not None and row.owner != owner):
            return False
        row.job, row.owner, row.lease_until, row.finished = copy.deepcopy(job), None, None, self.clock
        return True

    async def queue_transcription(self, job_id: uuid.UUID) -> bool:
        row = self.jobs[job_id]
        if row.job.status is not JobStatus.UPLOADING:
            return False
        row.job.status = JobStatus.QUEUED
        return True

    async def abandon_uploads(self, grace_seconds: float, error: dict[str, Any]) -> int:
        late = [
            r
            for r in self.jobs.values()
            if r.job.status is JobStatus.UPLOADING and r.created < self.clock - grace_seconds
        ]
        for row in late:
            row.job.status, row.job.error, row.finished = JobStatus.FAILED, dict(error), self.clock
        return len(late)

    def _finished(self) -> list[JobRow]:
        done = [r for r in self.jobs.values() if r.job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)]
        return sorted(done, key=lambda r: r.finished or 0.0)

    async def unswept_inputs(self, limit: int) -> list[tuple[uuid.UUID, str]]:
        return [(r.job.job_id, r.job.object_key) for r in self._finished() if not r.input_removed][:limit]

    async def inputs_removed(self, job_ids: list[uuid.UUID]) -> None:
        for job_id in job_ids:
            if job_id in self.jobs:
                self.jobs[job_id].input_removed = True

    async def expire_transcriptions(self, retention_seconds: float, limit: int) -> int:
        old = [r for r in self._finished() if r.input_removed and (r.finished or 0.0) < self.clock - retention_seconds][
            :limit
        ]
        for row in old:
            del self.jobs[row.job.job_id]
        return len(old)
