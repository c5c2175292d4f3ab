"""An in-memory ValidatorRepository (same methods and meaning as the SQL one) for handler tests.

Time is the fake's own ``now`` (seconds), moved by the test with :meth:`FakeValidatorRepository.advance`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from voxtrain_shared import events as ev
from voxtrain_validator.domain import LEASE_LOST, Dataset, Entry, Job, JobStatus, Lease, Sibling


@dataclass
class Row:
    dataset: Dataset
    request: ev.Envelope
    created: float
    status: JobStatus = JobStatus.PENDING
    attempts: int = 0
    due: float = 0.0
    lease: Lease | None = None
    lease_until: float | None = None
    result: dict[str, Any] | None = None
    last_error: str | None = None


class FakeValidatorRepository:
    """``outages``: how many of the next claims / finishes fail as if the database were away."""

    def __init__(self, *, claim_outages: int = 0, finish_outages: int = 0) -> None:
        self.claim_outages, self.finish_outages = claim_outages, finish_outages
        self.rows: dict[uuid.UUID, Row] = {}
        self.now = 1000.0
        self.renewals = 0

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def add(self, d: Dataset, request: ev.Envelope) -> None:
        self.rows.setdefault(d.dataset_id, Row(d, request, self.now, due=self.now))

    async def requeue(self, d: Dataset, request: ev.Envelope) -> None:
        old = self.rows.get(d.dataset_id)
        if old is None or old.dataset.tenant_id == d.tenant_id:
            self.rows[d.dataset_id] = Row(d, request, old.created if old else self.now, due=self.now)

    async def delete(self, tenant_id: str, dataset_id: uuid.UUID) -> None:
        row = self.rows.get(dataset_id)
        if row is not None and row.dataset.tenant_id == tenant_id:
            del self.rows[dataset_id]

    async def get(self, tenant_id: str, dataset_id: uuid.UUID, *, lock: bool = False) -> Entry | None:
        row = self.rows.get(dataset_id)
        if row is None or row.dataset.tenant_id != tenant_id:
            return None
        return Entry(row.dataset, row.status, row.result)

    async def claim(self, lease: Lease, lease_seconds: float) -> Job | None:
        if self.claim_outages:
            self.claim_outages -= 1
            raise ConnectionRefusedError("the database is away")
        due = [
            r
            for r in self.rows.values()
            if (r.status is JobStatus.PENDING and r.due <= self.now)
            or (r.status is JobStatus.RUNNING and r.lease_until is not None and r.lease_until < self.now)
        ]
        if not due:
            return None
        row = min(due, key=lambda r: r.due)
        if row.status is JobStatus.RUNNING:
            row.last_error = LEASE_LOST
        row.status, row.attempts, row.lease = JobStatus.RUNNING, row.attempts + 1, lease
        row.lease_until = self.now + lease_seconds
        return Job(row.dataset, row.attempts, row.request, self.now - row.created, lease, row.last_error)

    async def siblings(self, tenant_id: str, model_id: uuid.UUID) -> dict[uuid.UUID, Sibling]:
        return {
            r.dataset.dataset_id: Sibling(
                r.dataset.dataset_id,
                r.dataset.type,
                r.dataset.file_name,
                r.status,
                ((r.result or {}).get("metadata") or {}).get("duration_seconds"),
            )
            for r in self.rows.values()
            if r.dataset.tenant_id == tenant_id and r.dataset.model_id == model_id
        }

    def _held(self, dataset_id: uuid.UUID, lease: Lease) -> Row | None:
        row = self.rows.get(dataset_id)
        if row is None or row.status is not JobStatus.RUNNING or row.lease != lease:
            return None
        return row

    async def renew(self, dataset_id: uuid.UUID, lease: Lease, lease_seconds: float) -> bool:
        self.renewals += 1
        row = self._held(dataset_id, lease)
        if row is not None:
            row.lease_until = self.now + lease_seconds
        return row is not None

    async def finish(self, dataset_id: uuid.UUID, lease: Lease, status: JobStatus, result: dict[str, Any]) -> bool:
        if self.finish_outages:
            self.finish_outages -= 1
            raise ConnectionResetError("the database restarted")
        row = self._held(dataset_id, lease)
        if row is not None:
            row.status, row.result, row.lease, row.lease_until = status, result, None, None
        return row is not None

    async def holds(self, dataset_id: uuid.UUID, lease: Lease) -> bool:
        return self._held(dataset_id, lease) is not None

    async def cancel(self, tenant_id: str, model_id: uuid.UUID, dataset_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        dropped = []
        for dataset_id in dataset_ids:
            row = self.rows.get(dataset_id)
            if (
                row is not None
                and (row.dataset.tenant_id, row.dataset.model_id) == (tenant_id, model_id)
                and row.status in (JobStatus.PENDING, JobStatus.RUNNING)
            ):
                row.status, row.lease, row.lease_until = JobStatus.CANCELLED, None, None
                dropped.append(dataset_id)
        return dropped

    async def release(
        self, dataset_id: uuid.UUID, lease: Lease, delay: float, *, error: str | None, counted: bool
    ) -> bool:
        row = self._held(dataset_id, lease)
        if row is not None:
            row.status, row.lease, row.lease_until, row.due = JobStatus.PENDING, None, None, self.now + delay
            row.attempts -= 0 if counted else 1
            row.last_error = error or row.last_error
        return row is not None

    def expire(self, dataset_id: uuid.UUID) -> None:
        """The holder of the job stops renewing (it died): its lease runs out now."""
        row = self.rows[dataset_id]
        row.lease_until = self.now - 1

    def job(self, dataset_id: uuid.UUID) -> Row:
        return replace(self.rows[dataset_id])
