"""The supervisor of training workers, driven by :class:`voxtrain_shared.loops.Loop`.

Each step: end the workers of runs cancelled meanwhile, watch this replica's workers (progress, result, death, time
limit), start queued runs while there is room, and every ``heartbeat_seconds`` renew this replica's runs and reap
lost ones. A worker's result stays in the active set until its commit succeeded (retried every step while the
database is away); a run that another replica took over meanwhile has its worker stopped and its result discarded.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from opentelemetry.trace import INVALID_SPAN, Span, use_span

from voxtrain_shared.health import Health
from voxtrain_shared.logs import bind_message, get_logger, unbind_message
from voxtrain_shared.loops import Loop
from voxtrain_shared.settings import TrainerSettings
from voxtrain_shared.tracing import Tracing, extract
from voxtrain_shared.tracing import off as tracing_off
from voxtrain_shared.vocab import ErrorCode

from . import handlers as h
from .domain import STOPPED, RetryPolicy, Run, timeout_message, worker_died
from .processes import WorkerProcess

log = get_logger(__name__)
#: A cancelled run's worker gets this long to unwind after SIGTERM before it is killed.
CANCEL_GRACE_SECONDS = 3.0


def policy_of(settings: TrainerSettings) -> RetryPolicy:
    return RetryPolicy(settings.max_attempts, settings.retry_backoff_seconds, settings.retry_backoff_max_seconds)


class Processes(Protocol):
    """Where workers come from (``processes.WorkerProcesses``; tests pass a fake)."""

    def spawn(self, request: bytes, run_id: uuid.UUID, attempt: int) -> WorkerProcess: ...

    def stop(self, w: WorkerProcess, grace: float = 10.0) -> None: ...

    def sweep_work_dirs(self) -> list[Path]: ...


@dataclass
class Active:
    run: Run
    worker: WorkerProcess
    last_progress: tuple[str, float, float | None] = ("", -1.0, None)
    result: dict[str, Any] | None = None  # the worker's result, kept until committed
    span: Span = INVALID_SPAN  # the attempt's span (continuing the trace that requested the run), ended at drop


class Supervisor:
    """Claims queued runs (up to ``parallel_trainings`` at once) and watches their worker processes."""

    def __init__(
        self,
        uow: h.TrainerWork,
        processes: Processes,
        settings: TrainerSettings,
        health: Health | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._uow, self._processes, self._s = uow, processes, settings
        self._tracing = tracing or tracing_off()
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.policy = policy_of(settings)
        self._active: dict[uuid.UUID, Active] = {}
        self._cancelled: set[uuid.UUID] = set()  # runs cancelled meanwhile whose worker runs here
        self._last_beat = 0.0
        self.loop = Loop("trainer-supervisor", self.step, every=0.5, health=health)

    @property
    def active_runs(self) -> set[uuid.UUID]:
        """Runs this replica runs a worker for (or holds a result of, until committed)."""
        return set(self._active)

    def wake(self) -> None:
        self.loop.wake()

    def cancel(self, run_id: uuid.UUID) -> None:
        """The run was cancelled (committed): end its worker here at the next step, which starts now."""
        if run_id in self._active:
            self._cancelled.add(run_id)
            self.loop.wake()

    async def run(self, stop: asyncio.Event) -> None:
        """Supervise until ``stop`` (or cancellation); then stop this replica's workers and hand their runs
        back. The hand-back runs shielded: the service cancels its tasks right after ``stop`` is set, and its
        pool waits for the connections the hand-back holds."""
        removed = await asyncio.to_thread(self._processes.sweep_work_dirs)
        if removed:
            log.info("work_dirs_swept", count=len(removed))
        try:
            await self.loop.run(stop)
        finally:
            await asyncio.shield(asyncio.ensure_future(self.shutdown()))

    async def step(self) -> None:
        cancelled, self._cancelled = self._cancelled, set()
        for run_id in cancelled & set(self._active):
            a = self._active.pop(run_id)
            log.info("training_worker_cancelled", run_id=str(run_id), attempt=a.worker.attempt, pid=a.worker.pid)
            _ended(a, "cancelled")
            await asyncio.to_thread(self._processes.stop, a.worker, CANCEL_GRACE_SECONDS)
        for a in list(self._active.values()):
            bind_message(a.run.request.id, a.run.request.correlation_id, run_id=str(a.run.run_id))
            try:
                with use_span(a.span, end_on_exit=False):  # what the attempt emits continues its trace
                    await self._watch(a)
            except Exception as exc:  # e.g. the database is away: the next step tries again
                log.warning("training_watch_retry", error=repr(exc))
            finally:
                unbind_message()
        while len(self._active) < self._s.parallel_trainings:
            run = await h.claim_next(self._uow, self.owner, self.policy)
            if run is None:
                break
            span = self._tracing.tracer.start_span(
                "training attempt",
                context=extract(dict(run.trace_context)),
                attributes={"voxtrain.run_id": str(run.run_id), "voxtrain.attempt": run.attempt},
            )
            with use_span(span, end_on_exit=False):
                w = self._processes.spawn(run.request.to_bytes(), run.run_id, run.attempt)
            self._active[run.run_id] = Active(run, w, span=span)
        if time.monotonic() - self._last_beat >= self._s.heartbeat_seconds:
            await self.beat()

    async def beat(self) -> None:
        """Renew this replica's runs, drop the ones it no longer holds, and reap lost runs."""
        held = await h.heartbeat(self._uow, self.owner, {a.run.run_id: a.worker.attempt for a in self._active.values()})
        for run_id in set(self._active) - held:
            a = self._active.pop(run_id)
            log.warning("training_taken_over", run_id=str(run_id), attempt=a.worker.attempt)
            _ended(a, "taken over by another replica")
            await asyncio.to_thread(self._processes.stop, a.worker)  # fenced off: its result would be discarded
        await h.reap(self._uow, self.owner, list(self._active), self._s.lease_seconds, self.policy)
        self._last_beat = time.monotonic()

    async def _watch(self, a: Active) -> None:
        w = a.worker
        if a.result is None:
            latest = w.latest_progress()
            if latest and (latest[0] != a.last_progress[0] or latest[1] - a.last_progress[1] >= 1.0):
                a.last_progress = latest
                stage, percent, eta = latest
                if not await h.record_progress(
                    self._uow, self.owner, a.run, w.attempt, stage, percent, self.policy, eta_seconds=eta
                ):
                    return await self._drop(a, "the run no longer waits for this worker")
            if time.monotonic() - w.started > self._s.time_limit_seconds:
                await asyncio.to_thread(self._processes.stop, w)
                a.result = {
                    "error": {
                        "code": ErrorCode.TRAINING_TIMEOUT.value,
                        "stage": a.last_progress[0] or None,
                        "message": timeout_message(self._s.time_limit_seconds),
                    }
                }
            else:
                a.result = w.result()
                if a.result is None and not w.alive():
                    a.result = await asyncio.to_thread(w.result, 0.5)  # it may still be in the pipe
                    if a.result is None:
                        await h.lose(
                            self._uow,
                            self.owner,
                            a.run,
                            w.attempt,
                            worker_died(w.exitcode, a.last_progress[0] or None),
                            self.policy,
                        )
                        return await self._drop(a, f"worker exited with {w.exitcode}")
        if a.result is not None:
            outcome = await h.finish(self._uow, self.owner, a.run, w.attempt, a.result, self.policy)
            await self._drop(a, outcome.value)

    async def _drop(self, a: Active, why: str) -> None:
        self._active.pop(a.run.run_id, None)
        log.info("training_worker_done", run_id=str(a.run.run_id), attempt=a.worker.attempt, why=why)
        _ended(a, why)
        await asyncio.to_thread(self._processes.stop, a.worker)

    async def shutdown(self) -> None:
        """Stop the workers; commit what finished and hand the rest back for another attempt (best effort:
        what cannot be written now is reaped once the lease expires)."""
        active = list(self._active.values())
        self._active.clear()
        for a in active:
            a.result = a.result or a.worker.result()
            a.worker.terminate()  # SIGTERM now; joined below, after the database work
        for a in active:
            try:
                with use_span(a.span, end_on_exit=True):
                    if a.result is not None:
                        await h.finish(self._uow, self.owner, a.run, a.worker.attempt, a.result, self.policy)
                    else:
                        await h.lose(self._uow, self.owner, a.run, a.worker.attempt, STOPPED, self.policy)
            except Exception as exc:
                log.warning("training_handback_failed", run_id=str(a.run.run_id), error=repr(exc))
        for a in active:
            await asyncio.to_thread(self._processes.stop, a.worker)


def _ended(a: Active, why: str) -> None:
    """End the attempt's span, saying how it ended."""
    a.span.set_attribute("voxtrain.outcome", why)
    a.span.end()


class TranscriptionWorkers:
    """``parallel_transcriptions`` loops, each transcribing one job at a time; apart from the supervisor, so a
    long transcription never holds up training (nor a training a transcription)."""

    def __init__(
        self,
        uow: h.TrainerWork,
        store: h.AudioStore,
        cache: h.Transcriber,
        settings: TrainerSettings,
        health: Health | None = None,
    ) -> None:
        self._uow, self._store, self._cache = uow, store, cache
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.limits = h.JobLimits(
            settings.lease_seconds, settings.heartbeat_seconds, settings.max_attempts, Path(settings.work_dir) / "jobs"
        )
        self.loops = [
            Loop(f"transcriptions-{i}", self.step, every=2.0, health=health)
            for i in range(settings.parallel_transcriptions)
        ]

    async def step(self) -> None:
        """Transcribe jobs until none is waiting."""
        while await h.run_transcription(self._uow, self._store, self._cache, self.owner, self.limits) is not None:
            pass

    def wake(self) -> None:
        for loop in self.loops:
            loop.wake()

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(loop.run(stop) for loop in self.loops))


class TranscriptionSweeper:
    """Every ``transcription_sweep_seconds``: abandoned uploads and the uploads of finished jobs are removed from
    storage, and finished jobs past their retention are deleted (see ``handlers.sweep_transcriptions``). Every
    replica may sweep: each step is safe to run twice at once."""

    def __init__(
        self, uow: h.TrainerWork, store: h.AudioStore, settings: TrainerSettings, health: Health | None = None
    ) -> None:
        self._uow, self._store = uow, store
        self.limits = h.SweepLimits(
            settings.transcription_upload_grace_seconds, settings.transcription_retention_seconds
        )
        self.loop = Loop("transcription-sweeper", self.step, every=settings.transcription_sweep_seconds, health=health)

    async def step(self) -> None:
        await h.sweep_transcriptions(self._uow, self._store, self.limits)

    async def run(self, stop: asyncio.Event) -> None:
        await self.loop.run(stop)
