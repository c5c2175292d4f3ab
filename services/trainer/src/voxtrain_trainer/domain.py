"""Training runs: the state machine, attempts and fencing, and what each change emits. Pure.

A run is recorded ``queued`` from a TrainingRequested, started by one replica (``running``, attempt
n, owner), and ends ``succeeded`` or ``failed`` — or ``cancelled`` when its model's training was cancelled
(no terminal event: models has moved on). A run whose worker was lost (process killed, replica
gone, storage briefly away) goes back to ``queued`` after a backoff until ``max_attempts`` starts
were used; then it fails with ``worker_lost``. A worker's report counts only if it comes from the
current attempt on the current owner (fencing): a stale worker's result changes nothing.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from voxtrain_shared import events as ev
from voxtrain_shared.vocab import ErrorCode


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED})


@dataclass(frozen=True)
class RetryPolicy:
    """How often a lost run is started again, and how long to wait before each new attempt."""

    max_attempts: int = 3
    backoff_seconds: float = 5.0
    backoff_max_seconds: float = 300.0

    def delay(self, attempts_used: int) -> float:
        """Seconds to wait before the attempt after ``attempts_used`` (doubling, capped)."""
        return min(self.backoff_max_seconds, self.backoff_seconds * float(2 ** max(0, attempts_used - 1)))


class Answer(Enum):
    """What to do with a TrainingRequested, given the run it names."""

    QUEUE = "queue"  # unknown run: record it
    NOTHING = "nothing"  # queued or running: it is on its way
    REPUBLISH = "republish"  # finished: say again how it ended, so the sender converges


def answer_request(existing: Run | None, *, cancelled: bool = False) -> Answer:
    """``cancelled``: the run's model was cancelled (perhaps before this request arrived): it never starts."""
    if cancelled and existing is None:
        return Answer.NOTHING
    if existing is None:
        return Answer.QUEUE
    return Answer.REPUBLISH if existing.status in FINISHED else Answer.NOTHING


_URL = re.compile(r"\b(?:https?|s3)://[^\s'\"<>)\]]*[^\s'\"<>)\].,:;]")


def redact(text: str) -> str:
    """``text`` without URLs (internal storage addresses are nobody's business)."""
    return _URL.sub("<storage>", text)


@dataclass(frozen=True)
class Lost:
    """Why a run lost its worker: ``code`` is the failure code once attempts are used up."""

    code: ErrorCode
    message: str
    stage: str | None = None


class Decision(Enum):
    RETRY = "retry"
    FAILED = "failed"


@dataclass
class Run:
    run_id: uuid.UUID
    request: ev.Envelope
    status: RunStatus = RunStatus.QUEUED
    attempt: int = 0  # starts so far; the current attempt while running
    owner: str | None = None
    stage: str | None = None
    error: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    artifacts: dict[str, str] | None = None
    seconds: float | None = None  # since the first start (for metrics)
    retry_after: float | None = None  # seconds to wait before the next start, set when requeued
    trace_context: tuple[tuple[str, str], ...] = ()  # headers of the trace that requested it
    events: list[ev.Message] = field(default_factory=list)

    @classmethod
    def requested(cls, env: ev.Envelope) -> Run:
        req = env.payload()
        if not isinstance(req, ev.TrainingRequested):
            raise TypeError(f"not a TrainingRequested: {env.type}")
        return cls(run_id=req.run_id, request=env)

    @property
    def tenant_id(self) -> str:
        return self.request.tenant_id

    @property
    def model_id(self) -> uuid.UUID | None:
        return self.request.model_id

    def holds(self, owner: str, attempt: int) -> bool:
        """True if ``owner``'s worker of ``attempt`` is the one this run waits for (fencing)."""
        return self.status is RunStatus.RUNNING and self.owner == owner and self.attempt == attempt

    def start(self, owner: str, policy: RetryPolicy) -> None:
        if self.status is not RunStatus.QUEUED:
            raise ValueError(f"run {self.run_id} is {self.status}, not queued")
        self.status, self.owner, self.attempt, self.retry_after = RunStatus.RUNNING, owner, self.attempt + 1, None
        if self.attempt == 1:
            self.events.append(ev.TrainingStarted(run_id=self.run_id))
        else:
            self.events.append(
                ev.TrainingProgress(
                    run_id=self.run_id,
                    stage="download",
                    percent=0.0,
                    message=self._attempt_note(policy) + ": started again",
                    attempt=self.attempt,
                    max_attempts=policy.max_attempts,
                )
            )

    def progress(
        self,
        owner: str,
        attempt: int,
        stage: str,
        percent: float,
        policy: RetryPolicy,
        eta_seconds: float | None = None,
    ) -> bool:
        """Record a worker's progress and its estimate of the seconds left; False (nothing changes) for a
        stale worker."""
        if not self.holds(owner, attempt):
            return False
        self.stage = stage
        self.events.append(
            ev.TrainingProgress(
                run_id=self.run_id,
                stage=stage,
                percent=round(percent, 1),
                message=self._attempt_note(policy),
                attempt=self.attempt,
                max_attempts=policy.max_attempts,
                eta_seconds=None if eta_seconds is None else round(max(0.0, eta_seconds), 1),
            )
        )
        return True

    def progress_view(self, policy: RetryPolicy) -> dict[str, Any]:
        """The run's latest progress as stored and shown (``voxtrain runs``): the last TrainingProgress's fields."""
        last = next((e for e in reversed(self.events) if isinstance(e, ev.TrainingProgress)), None)
        if last is None:
            return {"stage": self.stage, "attempt": self.attempt, "max_attempts": policy.max_attempts}
        return last.model_dump(
            mode="json", include={"stage", "percent", "message", "eta_seconds", "attempt", "max_attempts"}
        )

    def succeed(self, owner: str, attempt: int, metrics: dict[str, Any], artifacts: dict[str, str]) -> bool:
        if not self.holds(owner, attempt):
            return False
        self.status, self.metrics, self.artifacts = RunStatus.SUCCEEDED, metrics, artifacts
        self.events.append(self.terminal_event())
        return True

    def fail(self, owner: str, attempt: int, code: str, message: str, stage: str | None) -> bool:
        """The training itself failed (bad data, timeout): final, no new attempt."""
        if not self.holds(owner, attempt):
            return False
        self._failed(code, message, stage)
        return True

    def cancel(self) -> bool:
        """Its model's training was cancelled: a queued or running run ends ``cancelled`` (its worker's reports are
        fenced off from now on), emitting nothing. False for a run that has finished already."""
        if self.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            return False
        self.status, self.owner, self.retry_after = RunStatus.CANCELLED, None, None
        return True

    def lose(self, lost: Lost, policy: RetryPolicy) -> Decision:
        """The worker is gone or its storage was away: start again later, or fail once attempts are used up."""
        if self.status is not RunStatus.RUNNING:
            raise ValueError(f"run {self.run_id} is {self.status}, not running")
        if self.attempt < policy.max_attempts:
            self.status, self.owner = RunStatus.QUEUED, None
            self.retry_after = policy.delay(self.attempt)
            self.events.append(
                ev.TrainingProgress(
                    run_id=self.run_id,
                    stage=lost.stage or self.stage or "download",
                    percent=0.0,
                    message=f"{self._attempt_note(policy)} stopped ({redact(lost.message)}); "
                    f"retrying in {self.retry_after:g} s",
                    attempt=self.attempt,
                    max_attempts=policy.max_attempts,
                )
            )
            return Decision.RETRY
        tried = f" (tried {self.attempt} times)" if self.attempt > 1 else ""
        message = redact(lost.message)
        self._failed(lost.code.value, message[:1].upper() + message[1:] + tried, lost.stage or self.stage)
        return Decision.FAILED

    def terminal_event(self) -> ev.Message:
        """How this finished run ended, as an event (also re-published when asked again)."""
        if self.status is RunStatus.SUCCEEDED:
            return ev.TrainingSucceeded(run_id=self.run_id, metrics=self.metrics or {}, artifacts=self.artifacts or {})
        if self.status is RunStatus.FAILED:
            return ev.TrainingFailed(run_id=self.run_id, error=error_info(self.error or {}))
        raise ValueError(f"run {self.run_id} has not finished")

    def _failed(self, code: str, message: str, stage: str | None) -> None:
        self.status, self.error = RunStatus.FAILED, {"code": code, "message": message, "stage": stage}
        self.events.append(self.terminal_event())

    def _attempt_note(self, policy: RetryPolicy) -> str:
        return f"attempt {self.attempt} of {policy.max_attempts}"


def error_info(error: dict[str, Any]) -> ev.ErrorInfo:
    code = str(error.get("code"))
    return ev.ErrorInfo(
        code=ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.STAGE_FAILED,
        message=error.get("message") or "training failed",
        stage=error.get("stage"),
    )


def worker_died(exitcode: int | None, stage: str | None) -> Lost:
    return Lost(
        ErrorCode.WORKER_LOST,
        f"the training worker stopped unexpectedly (exit code {exitcode}). Train again; if it repeats, contact support",
        stage,
    )


NO_HEARTBEAT = Lost(ErrorCode.WORKER_LOST, "the trainer running this model stopped (no heartbeat). Train again")
NO_WORKER = Lost(ErrorCode.WORKER_LOST, "the trainer running this model lost its worker. Train again")
STOPPED = Lost(ErrorCode.WORKER_LOST, "the trainer running this model was stopped. Train again")


def timeout_message(limit_seconds: float) -> str:
    return (
        f"Training took longer than the {limit_seconds:g} s limit and was stopped. Use fewer or smaller "
        "datasets, or ask an operator to raise the limit."
    )


# ---------------------------------------------------------------- asynchronous transcription jobs


class JobStatus(StrEnum):
    UPLOADING = "uploading"  # recorded before its upload is stored; never claimed (see abandoned_upload)
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass
class TranscriptionJob:
    """One long audio file transcribed in the background: its upload waits in object storage under
    ``object_key``; ``done_seconds`` of its ``audio_seconds`` are decoded so far."""

    job_id: uuid.UUID
    tenant_id: str
    model: str  # "base" or the model id
    run_id: uuid.UUID | None  # the trained run that serves it (None: the base model)
    artifacts: dict[str, str] | None
    file_name: str
    object_key: str
    audio_seconds: float
    status: JobStatus = JobStatus.QUEUED
    done_seconds: float = 0.0
    attempt: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def percent(self) -> float:
        """How much is done; 100 only once it succeeded."""
        if self.status is JobStatus.SUCCEEDED:
            return 100.0
        if self.audio_seconds <= 0:
            return 0.0
        return min(99.0, round(100.0 * self.done_seconds / self.audio_seconds, 1))


def abandoned_upload(grace_seconds: float) -> dict[str, Any]:
    """The error of a job whose upload was not stored within ``grace_seconds`` (its request died midway)."""
    return {
        "code": ErrorCode.UPLOAD_ABANDONED.value,
        "message": f"The upload was not stored within {grace_seconds:g} s (the request ended midway), so it was "
        "removed. Submit the file again.",
    }


def job_lost(job: TranscriptionJob, max_attempts: int) -> dict[str, Any] | None:
    """The error that ends a job whose replica was lost ``max_attempts`` times (None: it may run again)."""
    if job.attempt <= max_attempts:
        return None
    return {
        "code": ErrorCode.WORKER_LOST.value,
        "message": f"The transcription stopped {max_attempts} times without finishing (its worker was lost). "
        "Submit the file again; if it keeps failing, cut it into shorter files.",
    }
