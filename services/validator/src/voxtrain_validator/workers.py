"""The job loop: validates queued datasets, ``concurrency`` at a time, each in a thread.

One :class:`~voxtrain_shared.loops.Loop` step claims due jobs while there are free slots and starts one task per
job; a task ends by waking the loop. While a job's content is checked (in a thread: a 10 GB file never blocks the
event loop), its task renews the job's lease every ``heartbeat_seconds`` (a quarter of the lease), so a job on
hours of audio keeps it; a worker that loses its lease stops reading and discards its result (the handlers' writes
are fenced by the lease token anyway). A job whose training was cancelled stops at once on this replica
(:meth:`JobLoop.cancel`) and within ``CANCEL_POLL_SECONDS`` on another (its lease is checked that often). Writing
the result is retried while the database is briefly away; a step's failure never ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from voxtrain_shared.health import Health
from voxtrain_shared.logs import bind_message, get_logger, unbind_message
from voxtrain_shared.loops import Loop
from voxtrain_shared.metrics import VALIDATION_SECONDS, VALIDATIONS
from voxtrain_shared.tracing import Tracing, continued
from voxtrain_shared.tracing import off as tracing_off
from voxtrain_shared.vocab import ErrorCode

from . import handlers as h
from .domain import Cause, GiveUp, Job, JobRules, Retry
from .storage import Cancelled, ObjectMissing, StorageUnavailable, Validator

log = get_logger(__name__)
T = TypeVar("T")
#: Errors of the database connection that pass (a restart, a reset, a timeout): the write is tried again.
TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)
#: How often a running job checks that it still holds its lease (a cancel on another replica ends it).
CANCEL_POLL_SECONDS = 1.0


class JobLoop:
    """Runs validation jobs until the service stops. ``owner`` names this worker in the leases it takes."""

    def __init__(
        self,
        uow: h.ValidatorWork,
        validate: Validator,
        rules: JobRules,
        *,
        owner: str,
        concurrency: int,
        poll_seconds: float = 1.0,
        health: Health | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._uow, self._validate, self._rules = uow, validate, rules
        self._tracing = tracing or tracing_off()
        self.owner, self._concurrency = owner, concurrency
        self._running: set[asyncio.Task[None]] = set()
        self._checks: dict[uuid.UUID, threading.Event] = {}  # dataset id → its running check's stop flag
        self.loop = Loop("validator.jobs", self.fill, every=poll_seconds, health=health)

    def wake(self) -> None:
        """A job may be due now (a dataset was queued)."""
        self.loop.wake()

    def cancel(self, dataset_ids: list[uuid.UUID]) -> None:
        """These datasets' jobs were dropped: their checks running here stop at their next read."""
        for dataset_id in dataset_ids:
            if (flag := self._checks.get(dataset_id)) is not None:
                flag.set()
                log.info("validation_check_stopping", dataset_id=str(dataset_id), reason="training cancelled")

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.loop.run(stop)
        finally:
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    async def fill(self) -> None:
        """Claim due jobs while a slot is free; each runs in its own task."""
        while len(self._running) < self._concurrency:
            got = await h.claim_next(self._uow, self._rules, self.owner)
            if got is None:
                return
            if isinstance(got, h.Exhausted):
                log.error(
                    "validation_given_up",
                    dataset_id=str(got.job.dataset.dataset_id),
                    attempts=got.job.attempts - 1,
                    reason=got.result["message"],
                )
                VALIDATIONS.labels(got.job.dataset.type.name, "failed", ErrorCode.VALIDATION_FAILED.value).inc()
                continue
            task = asyncio.ensure_future(self.work(got))
            self._running.add(task)
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("validation_job_failed", error=repr(task.exception()))  # the lease expires; retried then
        self.loop.wake()

    async def work(self, claimed: h.Claimed) -> None:
        """Check one claimed job and record what came of it (in a span continuing the trace of its request)."""
        job = claimed.job
        with continued(
            self._tracing,
            "validate dataset",
            dict(job.trace_context),
            attributes={
                "voxtrain.dataset_id": str(job.dataset.dataset_id),
                "voxtrain.dataset_type": job.dataset.type.name,
                "voxtrain.attempt": job.attempts,
            },
        ):
            await self._work(claimed)

    async def _work(self, claimed: h.Claimed) -> None:
        job = claimed.job
        bind_message(job.request.id, job.request.correlation_id, event_type=job.request.type)
        try:
            log.info(
                "validation_started",
                dataset_id=str(job.dataset.dataset_id),
                type=job.dataset.type.name,
                size=job.dataset.size,
                attempt=job.attempts,
            )
            if self._rules.waits_for_batch(job, set(claimed.siblings)):
                await self._commit(job, lambda: h.wait(self._uow, job, self._rules.wait_delay(job)))
                return
            started = time.perf_counter()
            cancelled = self._checks[job.dataset.dataset_id] = threading.Event()
            check = asyncio.ensure_future(asyncio.to_thread(self._validate, job.dataset, claimed.siblings, cancelled))
            check.add_done_callback(_retrieved)  # a check abandoned (lease lost, stopping) leaves no stray warning
            try:
                held = await self._hold(job, check)
            except asyncio.CancelledError:  # the service stops: stop reading, give the job back at once
                cancelled.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(h.wait(self._uow, job), timeout=5)
                raise
            if not held:
                cancelled.set()
                log.warning("validation_lease_lost", dataset_id=str(job.dataset.dataset_id))
                await asyncio.wait({check})  # the thread stops at its next read; its result is not wanted
                return
            await self._record(job, check, time.perf_counter() - started)
        finally:
            self._checks.pop(job.dataset.dataset_id, None)
            unbind_message()

    async def _hold(self, job: Job, check: asyncio.Future[Any]) -> bool:
        """Renew the lease every heartbeat until ``check`` is done, and look every ``CANCEL_POLL_SECONDS`` whether
        it is still held; False as soon as the lease is found lost (taken over, or the job was cancelled)."""
        renewed = time.monotonic()
        while True:
            done, _ = await asyncio.wait({check}, timeout=min(CANCEL_POLL_SECONDS, self._rules.heartbeat_seconds))
            if done:
                return True
            try:
                if time.monotonic() - renewed < self._rules.heartbeat_seconds:
                    if not await h.holds(self._uow, job):
                        return False
                    continue
                renewed = time.monotonic()
                if not await h.renew(self._uow, self._rules, job):
                    return False
            except TRANSIENT as exc:  # try again at the next beat; the lease has three beats left
                log.warning("validation_lease_renewal_failed", dataset_id=str(job.dataset.dataset_id), error=repr(exc))

    async def _record(self, job: Job, check: asyncio.Future[dict[str, Any]], seconds: float) -> None:
        kind = job.dataset.type.name
        try:
            result = check.result()
        except Cancelled:
            return
        except (StorageUnavailable, ObjectMissing) as exc:
            cause = Cause.OBJECT_MISSING if isinstance(exc, ObjectMissing) else Cause.STORAGE_UNAVAILABLE
            detail = str(exc)
            step = await self._commit(job, lambda: h.retry_or_give_up(self._uow, self._rules, job, cause, detail))
            self._count_error(job, step, cause, detail)
            return
        except Exception as exc:  # a bug in a rule must not stop the worker: retried, then given up
            log.exception("validation_crashed", dataset_id=str(job.dataset.dataset_id))
            detail = f"{type(exc).__name__}: {exc}"[:300]
            step = await self._commit(
                job, lambda: h.retry_or_give_up(self._uow, self._rules, job, Cause.CRASHED, detail)
            )
            self._count_error(job, step, Cause.CRASHED, detail)
            return
        if self._rules.waits_for_audio(job, result):
            delay = self._rules.wait_delay(job)
            log.info("manifest_waits_for_audio", dataset_id=str(job.dataset.dataset_id), recheck_in=delay)
            await self._commit(job, lambda: h.wait(self._uow, job, delay))
            return
        if not await self._commit(job, lambda: h.finish(self._uow, job, result)):
            return
        verdict = "passed" if result.get("passed") else "failed"
        log.info(
            "validation_finished",
            dataset_id=str(job.dataset.dataset_id),
            passed=result.get("passed"),
            code=result.get("code"),
        )
        VALIDATIONS.labels(kind, verdict, result.get("code") or "").inc()
        VALIDATION_SECONDS.labels(kind, verdict).observe(seconds)

    def _count_error(self, job: Job, step: Retry | GiveUp, cause: Cause, detail: str) -> None:
        kind, dataset_id = job.dataset.type.name, str(job.dataset.dataset_id)
        if isinstance(step, Retry):
            log.warning(
                "validation_retry",
                dataset_id=dataset_id,
                attempt=job.attempts,
                retry_in=step.delay,
                cause=cause.value,
                error=detail,
            )
            VALIDATIONS.labels(
                kind, "retried", ErrorCode.STORAGE_UNAVAILABLE.value if cause is Cause.STORAGE_UNAVAILABLE else ""
            ).inc()
        else:
            log.error(
                "validation_given_up", dataset_id=dataset_id, attempts=job.attempts, cause=cause.value, error=detail
            )
            VALIDATIONS.labels(kind, "failed", ErrorCode.VALIDATION_FAILED.value).inc()

    async def _commit(self, job: Job, write: Callable[[], Awaitable[T]]) -> T:
        """``write()``, tried again with capped backoff while the database is briefly away (for at most one
        lease: after that another worker may hold the job, and the fenced write would change nothing)."""
        delay, deadline = 0.2, time.monotonic() + self._rules.lease_seconds
        while True:
            try:
                return await write()
            except TRANSIENT as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "validation_write_retry", dataset_id=str(job.dataset.dataset_id), error=repr(exc), retry_in=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
