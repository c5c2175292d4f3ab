"""Use cases of the trainer service. Each opens one unit of work, applies the run's domain, saves it and
emits what the domain recorded — all in one transaction; consumers also claim the message in the inbox
there. A worker's report is applied only if it comes from the attempt the run waits for (fencing).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from voxtrain_shared import events as ev
from voxtrain_shared.errors import ApiError
from voxtrain_shared.logs import get_logger
from voxtrain_shared.metrics import TRAINING_SECONDS, TRAININGS
from voxtrain_shared.topics import Topics
from voxtrain_shared.tracing import attached
from voxtrain_shared.uow import Context, Transaction, UnitOfWork, Work, handle_once
from voxtrain_shared.vocab import DatasetType, ErrorCode

from .admission import Busy, Places
from .domain import (
    NO_HEARTBEAT,
    NO_WORKER,
    Answer,
    Decision,
    JobStatus,
    Lost,
    RetryPolicy,
    Run,
    RunStatus,
    TranscriptionJob,
    abandoned_upload,
    answer_request,
    job_lost,
    redact,
)
from .job_audio import job_key
from .repository import TrainerRepository
from .storage_errors import transient

log = get_logger(__name__)

TrainerTx = Transaction[TrainerRepository]
TrainerWork = Work[TrainerRepository]
REQUESTS = "trainer.requests"  # inbox consumer names (kept from before the reshape: the inbox rows stay valid)
MODELS = "trainer.requests.models"
CANCELS = "trainer.cancels"
SUPERVISOR = Context("trainer", uuid.UUID(int=0))  # context of bookkeeping that emits nothing


def unit_of_work(pool: Callable[[], asyncpg.Pool], schema: str, topics: Topics) -> UnitOfWork[TrainerRepository]:
    return UnitOfWork(pool, schema, topics, TrainerRepository)


async def _save(tx: TrainerTx, run: Run) -> None:
    await tx.repo.save(run)
    await _emit(tx, run)


async def _emit(tx: TrainerTx, run: Run) -> None:
    for message in run.events:
        await tx.emit(message, run.model_id)
    run.events.clear()


def _count(run: Run) -> None:
    """Metrics of a finished run (call once its transaction committed)."""
    if run.status is RunStatus.SUCCEEDED:
        outcome, code = "succeeded", ""
    elif run.status is RunStatus.FAILED:
        outcome, code = "failed", str((run.error or {}).get("code") or "")
        log.warning("training_failed", run_id=str(run.run_id), code=code, stage=(run.error or {}).get("stage"))
    else:
        return
    TRAININGS.labels(outcome, code).inc()
    if run.seconds is not None:
        TRAINING_SECONDS.labels(outcome).observe(run.seconds)


# ---------------------------------------------------------------- messages from other services


async def record_request(uow: TrainerWork, env: ev.Envelope) -> Answer | None:
    """Handle TrainingRequested once: queue an unknown run, leave a queued/running one alone, and answer
    a finished one with its terminal event again (same content, new event). None for a redelivery."""
    answer: Answer | None = None

    async def apply(tx: TrainerTx, env: ev.Envelope) -> None:
        nonlocal answer
        run = Run.requested(env)
        existing = await tx.repo.get(run.run_id)
        answer = answer_request(existing, cancelled=await tx.repo.was_cancelled(env.tenant_id, run.run_id))
        if answer is Answer.QUEUE:
            await tx.repo.insert(run)
        elif answer is Answer.REPUBLISH and existing is not None:
            await tx.emit(existing.terminal_event(), existing.model_id)

    await handle_once(uow, env, REQUESTS, apply)
    if answer is not None:
        log.info("training_requested", run_id=str(Run.requested(env).run_id), answer=answer.value)
    return answer


async def model_deleted(uow: TrainerWork, env: ev.Envelope) -> None:
    """Handle ModelDeleted once: its runs are no longer served; queued ones are dropped."""

    async def apply(tx: TrainerTx, env: ev.Envelope) -> None:
        if env.model_id is not None:
            await tx.repo.model_deleted(env.tenant_id, env.model_id)

    await handle_once(uow, env, MODELS, apply)


async def cancel_run(uow: TrainerWork, env: ev.Envelope) -> uuid.UUID | None:
    """Handle TrainingCancelled once: remember the run as cancelled (so a TrainingRequested arriving later never
    starts it) and end it if it is queued or running — without a terminal event. Returns the run id when a
    queued or running run was cancelled (its worker, if any, must be ended), else None."""
    msg = env.payload()
    if not isinstance(msg, ev.TrainingCancelled):
        raise ValueError(f"{env.type} {env.id} is not a TrainingCancelled")
    run_id = msg.run_id
    ended: list[uuid.UUID] = []

    async def apply(tx: TrainerTx, e: ev.Envelope) -> None:
        if run_id is None:
            return  # cancelled before training was requested: nothing of ours
        await tx.repo.remember_cancel(e.tenant_id, e.model_id, run_id, msg.cancelled_by)
        run = await tx.repo.get(run_id, lock=True)
        if run is not None and run.tenant_id == e.tenant_id and run.cancel():
            await _save(tx, run)
            ended.append(run_id)

    await handle_once(uow, env, CANCELS, apply)
    if run_id is not None:
        log.info("training_cancelled", run_id=str(run_id), ended=bool(ended), cancelled_by=msg.cancelled_by)
    return ended[0] if ended else None


# ---------------------------------------------------------------- the supervisor's use cases


async def claim_next(uow: TrainerWork, owner: str, policy: RetryPolicy) -> Run | None:
    """Start the oldest due queued run on ``owner`` (None when there is none)."""
    async with uow.reading() as repo:
        candidates = await repo.due(limit=5)
    for candidate in candidates:
        with attached(candidate.trace_context):  # TrainingStarted continues the trace that requested the run
            async with uow(Context.of(candidate.request)) as tx:
                run = await tx.repo.get(candidate.run_id, lock=True, skip_locked=True)
                if run is None or run.status is not RunStatus.QUEUED:
                    continue  # another replica took it meanwhile
                run.start(owner, policy)
                await _save(tx, run)
        log.info("training_started", run_id=str(run.run_id), model_id=str(run.model_id), attempt=run.attempt)
        return run
    return None


async def record_progress(
    uow: TrainerWork,
    owner: str,
    run: Run,
    attempt: int,
    stage: str,
    percent: float,
    policy: RetryPolicy,
    *,
    eta_seconds: float | None = None,
) -> bool:
    """A worker's progress and estimated seconds left (fenced); False if the run no longer waits for this worker."""
    async with uow(Context.of(run.request)) as tx:
        current = await tx.repo.get(run.run_id, lock=True)
        if current is None or not current.progress(owner, attempt, stage, percent, policy, eta_seconds):
            return False
        await tx.repo.set_progress(run.run_id, current.progress_view(policy))
        await _emit(tx, current)
    return True


class Outcome(Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY = "retry"
    STALE = "stale"  # the run no longer waits for this worker: its report was discarded


def _outcome(run: Run) -> Outcome:
    return {RunStatus.SUCCEEDED: Outcome.SUCCEEDED, RunStatus.FAILED: Outcome.FAILED}.get(run.status, Outcome.RETRY)


async def finish(
    uow: TrainerWork, owner: str, run: Run, attempt: int, result: dict[str, Any], policy: RetryPolicy
) -> Outcome:
    """Apply a worker's result (see ``worker.execute``) to its run, if the run still waits for it.

    A transient error (storage briefly away) starts the run again, up to the policy's attempts."""
    async with uow(Context.of(run.request)) as tx:
        current = await tx.repo.get(run.run_id, lock=True)
        if current is None or not current.holds(owner, attempt):
            log.warning("stale_result_discarded", run_id=str(run.run_id), attempt=attempt)
            return Outcome.STALE
        error = result.get("error")
        if error and error.get("transient"):
            current.lose(Lost(ErrorCode.STORAGE_UNAVAILABLE, str(error.get("message")), error.get("stage")), policy)
        elif error:
            current.fail(
                owner,
                attempt,
                str(error.get("code") or ErrorCode.STAGE_FAILED.value),
                redact(str(error.get("message") or "training failed")),
                error.get("stage"),
            )
        else:
            metrics = {**result["metrics"], "data_used": result.get("used", {})}
            current.succeed(owner, attempt, metrics, result["artifacts"])
        await _save(tx, current)
    _count(current)
    return _outcome(current)


async def lose(uow: TrainerWork, owner: str, run: Run, attempt: int, lost: Lost, policy: RetryPolicy) -> Outcome:
    """``owner``'s worker of ``attempt`` is gone: start the run again later, or fail it (fenced)."""
    async with uow(Context.of(run.request)) as tx:
        current = await tx.repo.get(run.run_id, lock=True)
        if current is None or not current.holds(owner, attempt):
            return Outcome.STALE
        current.lose(lost, policy)
        await _save(tx, current)
    log.warning("training_worker_lost", run_id=str(run.run_id), attempt=attempt, outcome=current.status.value)
    _count(current)
    return _outcome(current)


async def heartbeat(uow: TrainerWork, owner: str, attempts: dict[uuid.UUID, int]) -> set[uuid.UUID]:
    """Renew ``owner``'s running runs (run id → attempt); returns the ones it still holds."""
    if not attempts:
        return set()
    async with uow(SUPERVISOR) as tx:
        return await tx.repo.heartbeat(owner, attempts)


async def reap(
    uow: TrainerWork, owner: str, live: list[uuid.UUID], lease_seconds: float, policy: RetryPolicy
) -> list[Run]:
    """Recover running runs without a worker: any replica's whose heartbeat is older than the lease, and
    ``owner``'s own that it runs no worker for. Each is started again later, or fails once attempts are used."""
    async with uow.reading() as repo:
        candidates = await repo.lost(owner, live, lease_seconds)
    reaped = []
    for candidate in candidates:
        async with uow(Context.of(candidate.request)) as tx:
            found = await tx.repo.lost(owner, live, lease_seconds, run_id=candidate.run_id)
            if not found:
                continue
            run = found[0]
            decision = run.lose(NO_WORKER if run.owner == owner else NO_HEARTBEAT, policy)
            await _save(tx, run)
        log.warning("training_reaped", run_id=str(run.run_id), attempt=run.attempt, retry=decision is Decision.RETRY)
        _count(run)
        reaped.append(run)
    return reaped


# ---------------------------------------------------------------- transcription


@dataclass(frozen=True)
class ServedModel:
    """What transcribes: a trained run's artifacts, or the base model (run_id None)."""

    name: str
    run_id: uuid.UUID | None = None
    artifacts: dict[str, str] | None = None


BASE = ServedModel("base")


def _model_id(model_ref: str) -> uuid.UUID:
    try:
        return uuid.UUID(model_ref)
    except ValueError:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"No model {model_ref}.") from None


async def model_for_transcription(uow: TrainerWork, tenant_id: str, model_ref: str) -> ServedModel:
    """The model that transcribes for ``model_ref`` ("base" or a model id of the tenant with status 4)."""
    if model_ref == BASE.name:
        return BASE
    model_id = _model_id(model_ref)
    async with uow.reading() as repo:
        trained = await repo.trained(tenant_id, model_id)
    if trained is None:
        raise ApiError(
            409,
            ErrorCode.INVALID_STATUS,
            "This model has no successful training (status 4 Success needed): train it first, or use the base model.",
        )
    return ServedModel(str(model_id), *trained)


def check_audio_name(file_name: str) -> str:
    """The upload's extension if it is audio transcription takes (else 422)."""
    ext = Path(file_name).suffix.lower()
    if ext not in DatasetType.AUDIO.extensions:
        raise ApiError(
            422, ErrorCode.INVALID_AUDIO_FORMAT, f"{file_name}: use one of {', '.join(DatasetType.AUDIO.extensions)}"
        )
    return ext


class Transcriber(Protocol):
    """Decodes audio with a served model (``model_cache.ModelCache``), telling ``on_progress`` the seconds done."""

    def transcribe(
        self,
        run_id: uuid.UUID | None,
        artifacts: dict[str, str] | None,
        audio: Path,
        on_progress: Callable[[float], None] | None = None,
    ) -> Any: ...


async def audio_seconds(
    audio: Path, file_name: str, max_seconds: float, duration_of: Callable[[Path], float], *, advice: str
) -> float:
    """How long the stored upload plays; 422 if it is not audio, 413 over ``max_seconds`` (before decoding)."""
    try:
        seconds = await asyncio.to_thread(duration_of, audio)
    except (ValueError, OSError) as exc:
        raise ApiError(422, ErrorCode.INVALID_AUDIO_FORMAT, f"{file_name}: could not read the audio ({exc}).") from None
    if seconds > max_seconds:
        raise ApiError(
            413,
            ErrorCode.FILE_TOO_LARGE,
            f"{file_name}: {seconds:.0f} s of audio is longer than the {max_seconds:g} s transcription limit. {advice}",
        )
    return seconds


def _storage_away() -> ApiError:
    return ApiError(
        503,
        ErrorCode.STORAGE_UNAVAILABLE,
        "Storage is unavailable right now, so nothing was transcribed. Try again in a minute.",
    )


#: A refused synchronous transcription is told to come back after about this long.
RETRY_AFTER_BUSY_SECONDS = 30


async def transcribe(
    cache: Transcriber,
    model: ServedModel,
    audio: Path,
    file_name: str,
    max_seconds: float,
    duration_of: Callable[[Path], float],
    *,
    advice: str = "Cut it into shorter files, or ask an operator to raise the limit.",
    places: Places | None = None,
) -> Any:
    """Transcribe a stored upload; audio longer than ``max_seconds`` is refused before decoding. With
    ``places`` (one per decoding process), a request that finds them all taken for their wait is refused with
    503 ``server_busy`` (Retry-After) instead of waiting without end."""
    await audio_seconds(audio, file_name, max_seconds, duration_of, advice=advice)
    try:
        if places is None:
            return await asyncio.to_thread(cache.transcribe, model.run_id, model.artifacts, audio)
        return await places.run(cache.transcribe, model.run_id, model.artifacts, audio)
    except Busy as busy:
        raise ApiError(
            503,
            ErrorCode.SERVER_BUSY,
            f"The server is busy: its {busy.places} decoder(s) for immediate answers stayed taken by other "
            f"transcriptions for {busy.waited_seconds:g} s, so {file_name} was not transcribed. Try again in a "
            "minute, or send it with ?mode=async, which queues it and never refuses for this.",
            headers={"Retry-After": str(RETRY_AFTER_BUSY_SECONDS)},
        ) from None
    except (ValueError, RuntimeError) as exc:
        raise ApiError(
            422, ErrorCode.INVALID_AUDIO_FORMAT, f"{file_name}: could not decode the audio ({exc})."
        ) from None
    except Exception as exc:
        if transient(exc):
            raise _storage_away() from None
        raise


# ---------------------------------------------------------------- asynchronous transcription jobs


class AudioStore(Protocol):
    """Where a job's upload waits (``job_audio.JobAudio``; tests pass a fake)."""

    def put(self, key: str, path: Path) -> None: ...

    def get(self, key: str, path: Path) -> None: ...

    def remove(self, key: str) -> None: ...


async def submit_transcription(
    uow: TrainerWork,
    store: AudioStore,
    tenant_id: str,
    model: ServedModel,
    audio: Path,
    file_name: str,
    max_seconds: float,
    duration_of: Callable[[Path], float],
) -> TranscriptionJob:
    """Queue the stored upload for transcription in the background: checked (413/422) before anything is kept,
    then recorded (``uploading``), copied to object storage and queued. The record comes first so that an upload
    whose request dies midway is found and removed by :func:`sweep_transcriptions`."""
    seconds = await audio_seconds(
        audio, file_name, max_seconds, duration_of, advice="Cut it into shorter files, or ask an operator to raise it."
    )
    job_id = uuid.uuid4()
    job = TranscriptionJob(
        job_id,
        tenant_id,
        model.name,
        model.run_id,
        model.artifacts,
        file_name,
        job_key(tenant_id, job_id, audio.suffix),
        seconds,
        JobStatus.UPLOADING,
    )
    async with uow(SUPERVISOR) as tx:
        await tx.repo.add_transcription(job)
    try:
        await asyncio.to_thread(store.put, job.object_key, audio)
    except Exception as exc:  # the job stays 'uploading': the sweeper removes what was stored
        if transient(exc):
            raise _storage_away() from None
        raise
    async with uow(SUPERVISOR) as tx:
        queued = await tx.repo.queue_transcription(job_id)
    if not queued:  # stored after the sweeper gave the upload up: remove it, as the sweep may have come first
        await asyncio.to_thread(store.remove, job.object_key)
        raise ApiError(
            503,
            ErrorCode.STORAGE_UNAVAILABLE,
            "Storing the upload took too long and it was discarded; nothing was queued. Try again, or send a "
            "shorter or more compressed recording.",
        )
    job.status = JobStatus.QUEUED
    log.info("transcription_queued", job_id=str(job_id), seconds=round(seconds, 1))
    return job


async def transcription_job(uow: TrainerWork, tenant_id: str, job_ref: str) -> TranscriptionJob:
    """The tenant's job ``job_ref``; 404 for an unknown id and for another tenant's job alike."""
    job = None
    try:
        job_id = uuid.UUID(job_ref)
    except ValueError:
        job_id = None
    if job_id is not None:
        async with uow.reading() as repo:
            job = await repo.transcription(tenant_id, job_id)
    if job is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"No transcription job {job_ref} for this tenant: check the id.")
    return job


@dataclass(frozen=True)
class JobLimits:
    lease_seconds: float
    heartbeat_seconds: float
    max_attempts: int
    work_dir: Path


async def _finish(uow: TrainerWork, store: AudioStore, job: TranscriptionJob, owner: str) -> None:
    async with uow(SUPERVISOR) as tx:
        kept = await tx.repo.finish_transcription(job, owner)
    if not kept:
        log.warning("transcription_taken_over", job_id=str(job.job_id), attempt=job.attempt)
        return
    log.info("transcription_finished", job_id=str(job.job_id), status=job.status.value)
    try:
        await asyncio.to_thread(store.remove, job.object_key)
        async with uow(SUPERVISOR) as tx:
            await tx.repo.inputs_removed([job.job_id])
    except Exception as exc:  # the job's outcome is stored; the sweeper removes a left-over upload later
        log.warning("transcription_upload_not_removed", job_id=str(job.job_id), error=repr(exc))


@dataclass(frozen=True)
class SweepLimits:
    """An upload not stored within ``grace_seconds`` is abandoned; a finished job (its result) is deleted
    ``retention_seconds`` after it finished; at most ``batch`` objects and rows per step."""

    grace_seconds: float
    retention_seconds: float
    batch: int = 500


@dataclass(frozen=True)
class Swept:
    abandoned: int = 0
    removed: int = 0
    expired: int = 0


async def sweep_transcriptions(uow: TrainerWork, store: AudioStore, limits: SweepLimits) -> Swept:
    """One sweep: jobs whose upload was not stored within the grace period fail (``upload_abandoned``); the
    uploads of finished jobs still in storage are removed (a removal that fails is tried again next sweep);
    finished jobs past the retention period whose upload is gone are deleted, result and all."""
    async with uow(SUPERVISOR) as tx:
        abandoned = await tx.repo.abandon_uploads(limits.grace_seconds, abandoned_upload(limits.grace_seconds))
    async with uow.reading() as repo:
        inputs = await repo.unswept_inputs(limits.batch)
    removed: list[uuid.UUID] = []
    for job_id, key in inputs:
        try:
            await asyncio.to_thread(store.remove, key)
        except Exception as exc:
            log.warning("transcription_upload_not_removed", job_id=str(job_id), error=repr(exc))
            if transient(exc):
                break  # storage is away: the next sweep tries again
            continue
        removed.append(job_id)
    if removed:
        async with uow(SUPERVISOR) as tx:
            await tx.repo.inputs_removed(removed)
    async with uow(SUPERVISOR) as tx:
        expired = await tx.repo.expire_transcriptions(limits.retention_seconds, limits.batch)
    swept = Swept(abandoned, len(removed), expired)
    if swept != Swept():
        log.info("transcriptions_swept", abandoned=abandoned, removed=len(removed), expired=expired)
    return swept


async def run_transcription(
    uow: TrainerWork, store: AudioStore, cache: Transcriber, owner: str, limits: JobLimits
) -> TranscriptionJob | None:
    """Claim the next job (queued, or one whose replica's lease ran out) and transcribe it, renewing the lease
    and recording progress every ``heartbeat_seconds``; the outcome is kept only while this attempt holds the
    job. None when there was nothing to do. A passing storage outage is raised: the job is taken up again
    once its lease runs out."""
    async with uow(SUPERVISOR) as tx:
        job = await tx.repo.claim_transcription(owner, limits.lease_seconds)
    if job is None:
        return None
    lost = job_lost(job, limits.max_attempts)
    if lost is not None:
        job.status, job.error = JobStatus.FAILED, lost
        await _finish(uow, store, job, owner)
        return job
    done = [job.done_seconds]
    limits.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=limits.work_dir, prefix="transcription-") as tmp:
        path = Path(tmp) / f"audio{Path(job.object_key).suffix}"

        def work() -> Any:
            store.get(job.object_key, path)
            return cache.transcribe(job.run_id, job.artifacts, path, done.append)

        task = asyncio.ensure_future(asyncio.to_thread(work))
        while not task.done():
            await asyncio.wait({task}, timeout=limits.heartbeat_seconds)
            if task.done():
                break
            try:
                async with uow(SUPERVISOR) as tx:
                    held = await tx.repo.renew_transcription(
                        job.job_id, owner, job.attempt, done[-1], limits.lease_seconds
                    )
            except Exception as exc:  # the database is away: keep decoding, the outcome is fenced at the end
                log.warning("transcription_lease_not_renewed", job_id=str(job.job_id), error=repr(exc))
                continue
            if not held:
                log.warning("transcription_lease_lost", job_id=str(job.job_id), attempt=job.attempt)
        try:
            transcript = await task
        except BrokenExecutor:
            raise  # the decoding process died: the job is taken up again once its lease runs out
        except (ValueError, RuntimeError) as exc:
            job.status = JobStatus.FAILED
            job.error = {
                "code": ErrorCode.INVALID_AUDIO_FORMAT.value,
                "message": f"{job.file_name}: could not decode the audio ({exc}).",
            }
            await _finish(uow, store, job, owner)
            return job
    job.status, job.done_seconds = JobStatus.SUCCEEDED, job.audio_seconds
    job.result = {
        "text": transcript.text,
        "words": [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)} for w in transcript.words],
    }
    await _finish(uow, store, job, owner)
    return job


# ---------------------------------------------------------------- export


@dataclass(frozen=True)
class ExportableModel:
    """A tenant's trained model as export needs it: its succeeded run and artifacts."""

    model_id: uuid.UUID
    run_id: uuid.UUID
    artifacts: dict[str, str]
    trained_at: datetime | None


async def model_for_export(uow: TrainerWork, tenant_id: str, model_ref: str) -> ExportableModel:
    """The tenant's model ``model_ref`` if it has a successful training (404 when the tenant has no training of
    such a model — another tenant's model included; 409 ``invalid_status`` while it has not succeeded)."""
    model_id = _model_id(model_ref)
    async with uow.reading() as repo:
        row = await repo.latest_of_model(tenant_id, model_id)
    if row is None:
        raise ApiError(
            404,
            ErrorCode.NOT_FOUND,
            f"No trained model {model_id} for this tenant: check the id; a model is exported once its training "
            "succeeded (status 4 Success).",
        )
    if row["status"] != RunStatus.SUCCEEDED.value:
        raise ApiError(
            409,
            ErrorCode.INVALID_STATUS,
            "This model has no successful training (status 4 Success needed): wait for the training to finish, "
            "or train it again.",
        )
    return ExportableModel(model_id, row["run_id"], json.loads(row["artifacts"]), row["finished_at"])


class Exporter(Protocol):
    def open(
        self, model_id: uuid.UUID, run_id: uuid.UUID, artifacts: dict[str, str], trained_at: datetime | None
    ) -> Iterator[bytes]: ...


async def open_export(exporter: Exporter, model: ExportableModel) -> Iterator[bytes]:
    """The model's archive as a lazy stream of chunks; 503 when the storage cannot be read before it starts."""
    try:
        return await asyncio.to_thread(exporter.open, model.model_id, model.run_id, model.artifacts, model.trained_at)
    except Exception as exc:
        if transient(exc):
            raise ApiError(
                503,
                ErrorCode.STORAGE_UNAVAILABLE,
                "The trained model cannot be read right now (storage unavailable). Try again in a minute.",
            ) from None
        raise
