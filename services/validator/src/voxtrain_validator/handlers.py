"""Use cases of the validator. Each opens one unit of work: the job's state changes, the verdict it emits and
the inbox claim of the message that caused it commit together. The job loop (``workers``) and the Kafka
entrypoints (``consumers``) only call these.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg

from voxtrain_shared import events as ev
from voxtrain_shared.logs import get_logger
from voxtrain_shared.topics import Topics
from voxtrain_shared.uow import Context, Transaction, UnitOfWork, Work, handle_once

from . import domain
from .domain import Answer, Cause, Dataset, GiveUp, Job, JobRules, JobStatus, Lease, Sibling
from .repository import ValidatorRepository

log = get_logger(__name__)

ValidatorWork: TypeAlias = Work[ValidatorRepository]
ValidatorTx: TypeAlias = Transaction[ValidatorRepository]
#: Inbox consumer names (one per kind of message, as before the reshaping: their rows stay valid).
UPLOADS = "validator.datasets"
DELETES = "validator.datasets.deleted"
REQUESTS = "validator.requests"
CANCELS = "validator.cancels"


def unit_of_work(pool: Callable[[], asyncpg.Pool], schema: str, topics: Topics) -> UnitOfWork[ValidatorRepository]:
    return UnitOfWork(pool, schema, topics, ValidatorRepository)


def _context(job: Job) -> Context:
    return Context(job.dataset.tenant_id, job.request.correlation_id, job.request)


def _requested(env: ev.Envelope) -> Dataset:
    msg = env.payload()
    if not isinstance(msg, ev.DatasetUploaded | ev.ValidationRequested) or env.model_id is None:
        raise ValueError(f"{env.type} {env.id} names no dataset of a model")
    return Dataset.of(msg.dataset, env.tenant_id, env.model_id)


# ---------------------------------------------------------------- messages


async def record_upload(uow: ValidatorWork, env: ev.Envelope) -> bool:
    """DatasetUploaded: queue the dataset, once (False for a redelivery)."""

    async def apply(tx: ValidatorTx, e: ev.Envelope) -> None:
        await tx.repo.add(_requested(e), e)

    return await handle_once(uow, env, UPLOADS, apply)


async def forget_dataset(uow: ValidatorWork, env: ev.Envelope) -> bool:
    """DatasetDeleted: the dataset can no longer be referenced, nor is its verdict published."""
    msg = env.payload()
    if not isinstance(msg, ev.DatasetDeleted):
        raise ValueError(f"{env.type} {env.id} is not a DatasetDeleted")

    async def apply(tx: ValidatorTx, e: ev.Envelope) -> None:
        await tx.repo.delete(e.tenant_id, msg.dataset_id)

    return await handle_once(uow, env, DELETES, apply)


async def answer_request(uow: ValidatorWork, env: ev.Envelope) -> Answer | None:
    """ValidationRequested (models re-asks for a verdict): re-publish a verdict that exists, leave a queued or
    running job alone, queue an unknown or given-up one again. None for a redelivery."""
    dataset = _requested(env)
    answered: list[Answer] = []

    async def apply(tx: ValidatorTx, e: ev.Envelope) -> None:
        entry = await tx.repo.get(e.tenant_id, dataset.dataset_id, lock=True)
        what = domain.answer(entry)
        if what is Answer.REPUBLISH and entry is not None and entry.result is not None:
            await tx.emit(domain.verdict(entry.dataset, entry.result), entry.dataset.model_id)
        elif what is Answer.REQUEUE:
            await tx.repo.requeue(dataset, e)
        answered.append(what)

    if not await handle_once(uow, env, REQUESTS, apply):
        return None
    log.info(
        "validation_requested",
        dataset_id=str(dataset.dataset_id),
        answer=answered[0].value,
        attempt=getattr(env.payload(), "attempt", None),
    )
    return answered[0]


async def cancel_jobs(uow: ValidatorWork, env: ev.Envelope) -> list[uuid.UUID]:
    """TrainingCancelled: drop the model's queued or running jobs of the datasets it names (no verdict for them;
    a later ValidationRequested queues them again). Returns the ids dropped (none for a redelivery)."""
    msg = env.payload()
    if not isinstance(msg, ev.TrainingCancelled) or env.model_id is None:
        raise ValueError(f"{env.type} {env.id} is not a TrainingCancelled of a model")
    model_id = env.model_id
    dropped: list[uuid.UUID] = []

    async def apply(tx: ValidatorTx, e: ev.Envelope) -> None:
        dropped.extend(await tx.repo.cancel(e.tenant_id, model_id, list(msg.dataset_ids)))

    await handle_once(uow, env, CANCELS, apply)
    log.info("validation_cancelled", model_id=str(model_id), datasets=[str(d) for d in dropped])
    return dropped


# ---------------------------------------------------------------- the job loop


@dataclass(frozen=True)
class Claimed:
    """A job to work on, with the other datasets of its model."""

    job: Job
    siblings: dict[uuid.UUID, Sibling]


@dataclass(frozen=True)
class Exhausted:
    """A job claimed more often than allowed, given up at its claim."""

    job: Job
    result: dict[str, Any]


async def claim_next(uow: ValidatorWork, rules: JobRules, owner: str) -> Claimed | Exhausted | None:
    """Lease the next due job to ``owner``. A job claimed more often than ``max_attempts`` is given up here
    (its verdict emitted) and returned as :class:`Exhausted`; None when nothing is due."""
    lease = Lease(owner, uuid.uuid4())
    async with uow(Context("-", uuid.uuid4())) as tx:  # no tenant yet: this transaction emits nothing
        job = await tx.repo.claim(lease, rules.lease_seconds)
        if job is None:
            return None
        given_up = rules.exhausted(job)
        if given_up is None:
            return Claimed(job, await tx.repo.siblings(job.dataset.tenant_id, job.dataset.model_id))
    await finish(uow, job, given_up.result, status=JobStatus.DEAD)
    return Exhausted(job, given_up.result)


async def renew(uow: ValidatorWork, rules: JobRules, job: Job) -> bool:
    """Extend the job's lease; False when the worker no longer holds it (then it must discard its result)."""
    async with uow(_context(job)) as tx:
        return await tx.repo.renew(job.dataset.dataset_id, job.lease, rules.lease_seconds)


async def holds(uow: ValidatorWork, job: Job) -> bool:
    """Whether ``job``'s lease still holds it (False once it was taken over, finished or cancelled)."""
    async with uow.reading() as repo:
        return await repo.holds(job.dataset.dataset_id, job.lease)


async def finish(uow: ValidatorWork, job: Job, result: dict[str, Any], *, status: JobStatus | None = None) -> bool:
    """Store the result and emit its verdict, if ``job``'s lease still holds it; False (nothing changed) for a
    worker that lost its lease or a dataset deleted meanwhile."""
    async with uow(_context(job)) as tx:
        if not await tx.repo.finish(job.dataset.dataset_id, job.lease, status or domain.status_of(result), result):
            log.warning(
                "validation_result_discarded",
                dataset_id=str(job.dataset.dataset_id),
                reason="the lease is no longer held by this worker",
            )
            return False
        await tx.emit(domain.verdict(job.dataset, result), job.dataset.model_id)
    return True


async def retry_or_give_up(
    uow: ValidatorWork, rules: JobRules, job: Job, cause: Cause, detail: str
) -> domain.Retry | GiveUp:
    """The claim ended without a verdict: back to the queue with backoff, or given up (and its verdict
    emitted) when the attempts are spent or nothing can be retried."""
    step = rules.after_error(job, cause, detail)
    if isinstance(step, domain.Retry):
        async with uow(_context(job)) as tx:
            await tx.repo.release(
                job.dataset.dataset_id, job.lease, step.delay, error=f"{cause.value}: {detail}", counted=True
            )
    else:
        await finish(uow, job, step.result, status=JobStatus.DEAD)
    return step


async def wait(uow: ValidatorWork, job: Job, delay: float = domain.WAIT_POLL_SECONDS) -> None:
    """A manifest waits for its batch or audio (or the service stops): back to the queue after ``delay``
    seconds, the attempt given back."""
    async with uow(_context(job)) as tx:
        await tx.repo.release(job.dataset.dataset_id, job.lease, delay, error=None, counted=False)
