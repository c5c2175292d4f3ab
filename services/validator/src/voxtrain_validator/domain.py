"""The validator's job rules, pure: what a job is, when it may run again, when it is given up, and which
verdict it publishes. No I/O here: handlers load and save jobs through the repository and apply these rules.

A job is one dataset to check. A worker *claims* it with a lease (owner + token) and renews the lease while it
works; only the holder of the current token may finish it or put it back. Every claim is an attempt: a claim
that ends without a verdict (storage unreachable, the worker died and its lease expired, the check crashed) is
retried with capped exponential backoff until ``max_attempts`` claims were made; then the job is *given up*
(status ``dead``) and the dataset fails with ``validation_failed`` and a message naming the cause. A given-up
job is queued again when models asks for the verdict again (``ValidationRequested``), and so is a job dropped
because its model's training was cancelled (``TrainingCancelled``: status ``cancelled``, no verdict).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from voxtrain_shared import events as ev
from voxtrain_shared.vocab import DatasetType, ErrorCode

#: Claims of a manifest that waits for its batch or its audio are not counted as attempts, for this long.
MAX_WAIT_SECONDS = 3600.0
#: How long a waiting manifest sleeps before it is looked at again: a quarter of the time it has waited so far,
#: between these bounds (a short wait is noticed at once; a manifest waiting ten minutes for a large recording's
#: verdict is checked again about 25 times, not 600).
WAIT_POLL_SECONDS = 1.0
MAX_WAIT_POLL_SECONDS = 30.0
#: Recorded as a job's last error when its lease expired (the worker died or stopped renewing).
LEASE_LOST = "the validator stopped while checking it"


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    DEAD = "dead"  #: given up: no verdict could be reached (the published ValidationFailed says why)
    CANCELLED = "cancelled"  #: its model's training was cancelled: dropped, no verdict published


class Cause(StrEnum):
    """Why a claim ended without a verdict."""

    STORAGE_UNAVAILABLE = "storage_unavailable"  #: transient: retried with backoff
    OBJECT_MISSING = "object_missing"  #: the object is gone from storage: given up at once
    CRASHED = "crashed"  #: the check raised an unexpected error: retried, it may be a passing condition


class Answer(StrEnum):
    """What a ValidationRequested asks of the validator, given the job's state."""

    REPUBLISH = "republish"
    LEAVE = "leave"
    REQUEUE = "requeue"


@dataclass(frozen=True)
class Dataset:
    """What is checked: one stored dataset of a tenant's model."""

    dataset_id: uuid.UUID
    tenant_id: str
    model_id: uuid.UUID
    type: DatasetType
    file_name: str
    bucket: str
    object_key: str
    size: int

    @classmethod
    def of(cls, obj: ev.DatasetObject, tenant_id: str, model_id: uuid.UUID) -> Dataset:
        return cls(
            obj.dataset_id, tenant_id, model_id, obj.dataset_type, obj.file_name, obj.bucket, obj.object_key, obj.size
        )


@dataclass(frozen=True)
class Lease:
    """Who holds a claimed job; ``token`` is new on every claim, so a stale worker cannot act on a later claim."""

    owner: str
    token: uuid.UUID


@dataclass(frozen=True)
class Job:
    """A claimed job: the dataset, the request that queued it (DatasetUploaded or ValidationRequested), the
    attempt this claim is, the time since it was queued, the lease, the previous claim's error and the trace
    context (headers) of the request."""

    dataset: Dataset
    attempts: int
    request: ev.Envelope
    waited_seconds: float
    lease: Lease
    last_error: str | None = None
    trace_context: tuple[tuple[str, str], ...] = ()

    @property
    def batch(self) -> tuple[uuid.UUID, ...]:
        """The datasets uploaded together with this one (a manifest may reference them)."""
        return tuple(getattr(self.request.payload(), "batch", ()))


@dataclass(frozen=True)
class Entry:
    """A job as stored: its dataset, status and (once finished or given up) its result."""

    dataset: Dataset
    status: JobStatus
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class Sibling:
    """Another dataset of the same model (a manifest's references resolve among these)."""

    dataset_id: uuid.UUID
    type: DatasetType
    file_name: str
    status: JobStatus
    duration_seconds: float | None = None


@dataclass(frozen=True)
class Retry:
    delay: float


@dataclass(frozen=True)
class GiveUp:
    result: dict[str, Any]


@dataclass(frozen=True)
class JobRules:
    """The job settings (``ValidatorSettings``) and the decisions that follow from them."""

    max_attempts: int = 6
    lease_seconds: float = 120.0
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    max_wait_seconds: float = MAX_WAIT_SECONDS

    @property
    def heartbeat_seconds(self) -> float:
        """How often a running job renews its lease: four times per lease, so one or two missed renewals
        (a slow database) do not lose it."""
        return self.lease_seconds / 4

    def retry_delay(self, attempts: int) -> float:
        """Backoff before the next claim after ``attempts`` claims: base, 2×base, 4×base … capped."""
        return min(self.retry_max_seconds, self.retry_base_seconds * 2.0 ** max(0, attempts - 1))

    def exhausted(self, job: Job) -> GiveUp | None:
        """A job claimed more often than allowed (earlier claims ended without a verdict) is given up."""
        if job.attempts <= self.max_attempts:
            return None
        cause = job.last_error or LEASE_LOST
        return GiveUp(
            failure(
                f"{job.dataset.file_name} could not be validated in "
                f"{self.max_attempts} attempts: {cause}. Upload it again, or start "
                "training again once the cause is fixed."
            )
        )

    def after_error(self, job: Job, cause: Cause, detail: str) -> Retry | GiveUp:
        """The claim ended without a verdict: retry later, or give up (cap reached, or nothing to retry)."""
        name = job.dataset.file_name
        if cause is Cause.OBJECT_MISSING:
            return GiveUp(failure(f"{name} is no longer in storage (was it deleted?). Upload it again."))
        if job.attempts < self.max_attempts:
            return Retry(self.retry_delay(job.attempts))
        if cause is Cause.STORAGE_UNAVAILABLE:
            message = (
                f"{name} could not be read from storage in {job.attempts} attempts (object storage was "
                "unreachable). Start training again once storage is back, or upload it again."
            )
        else:
            message = (
                f"{name} could not be validated: the check failed {job.attempts} times with an internal "
                f"error ({detail}). Please report this; uploading the file again will not help."
            )
        return GiveUp(failure(message))

    def wait_delay(self, job: Job) -> float:
        """How long a waiting manifest sleeps before it is claimed again (see ``WAIT_POLL_SECONDS``)."""
        return min(MAX_WAIT_POLL_SECONDS, max(WAIT_POLL_SECONDS, job.waited_seconds / 4))

    def waits_for_batch(self, job: Job, known: set[uuid.UUID]) -> bool:
        """A manifest waits until every dataset uploaded with it is known here (its references may name files
        that come after it in the same upload), for at most ``max_wait_seconds``."""
        if job.dataset.type is not DatasetType.MANIFEST or job.waited_seconds >= self.max_wait_seconds:
            return False
        return any(b not in known for b in job.batch)

    def waits_for_audio(self, job: Job, result: dict[str, Any]) -> bool:
        """A manifest that cuts segments out of audio still being validated is checked again once that audio's
        duration is known (for at most ``max_wait_seconds``; after that it passes as it is)."""
        deferred = (
            result.get("passed")
            and job.dataset.type is DatasetType.MANIFEST
            and (result.get("metadata") or {}).get("deferred_segment_ends")
        )
        return bool(deferred) and job.waited_seconds < self.max_wait_seconds


def failure(message: str) -> dict[str, Any]:
    """A failed result (the JSON form of a rules ``Outcome``) with code ``validation_failed``."""
    return {
        "passed": False,
        "code": ErrorCode.VALIDATION_FAILED.value,
        "message": message,
        "details": [{"message": message}],
        "details_dropped": 0,
        "warnings": [],
        "metadata": {},
    }


def status_of(result: dict[str, Any]) -> JobStatus:
    return JobStatus.PASSED if result.get("passed") else JobStatus.FAILED


def verdict(dataset: Dataset, result: dict[str, Any]) -> ev.ValidationPassed | ev.ValidationFailed:
    """The event for a result; built from the stored result, so a re-published verdict has the same content."""
    if result.get("passed"):
        return ev.ValidationPassed(
            dataset_id=dataset.dataset_id,
            dataset_type=dataset.type,
            file_name=dataset.file_name,
            metadata=result.get("metadata") or {},
            warnings=list(result.get("warnings") or []),
        )
    return ev.ValidationFailed(
        dataset_id=dataset.dataset_id,
        dataset_type=dataset.type,
        file_name=dataset.file_name,
        error=ev.ErrorInfo(
            code=ErrorCode(result.get("code") or ErrorCode.VALIDATION_FAILED),
            message=result.get("message") or "the file is not valid",
            dataset_id=dataset.dataset_id,
            file_name=dataset.file_name,
            details=list(result.get("details") or []),
        ),
        details_truncated=int(result.get("details_dropped") or 0),
    )


def answer(entry: Entry | None) -> Answer:
    """A ValidationRequested: re-publish a verdict that exists, leave a job that is queued or running alone,
    and queue again one that is unknown (its DatasetUploaded was lost), was given up or was cancelled."""
    if entry is None or entry.status in (JobStatus.DEAD, JobStatus.CANCELLED):
        return Answer.REQUEUE
    if entry.status in (JobStatus.PASSED, JobStatus.FAILED) and entry.result is not None:
        return Answer.REPUBLISH
    return Answer.LEAVE
