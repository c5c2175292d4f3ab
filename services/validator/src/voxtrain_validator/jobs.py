"""The validator's work: a queue of datasets to check (the ``datasets`` table), claimed with leases.

The Kafka handler only records the dataset (inbox + row in one transaction) and returns at once,
so a 10 GB file never holds up a partition. Workers (``settings.concurrency`` of them) claim rows
with ``FOR UPDATE SKIP LOCKED``, read the object from storage as a ranged stream in a thread, and
write the verdict and its event in one transaction. Storage failures are retried with backoff; after
``max_attempts`` the original DatasetUploaded goes to the dead-letter topic and the dataset fails with
``validation_failed`` (so its model never waits forever). A worker that dies
leaves a lease that expires, and the row is claimed again.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import asyncpg

from voxtrain_shared import events as ev
from voxtrain_shared import inbox, outbox
from voxtrain_shared.logs import bind_message, get_logger, unbind_message
from voxtrain_shared.metrics import VALIDATION_SECONDS, VALIDATIONS
from voxtrain_shared.topics import Topics, dead_letter
from voxtrain_shared.vocab import DatasetType, ErrorCode

from .rules.outcome import Outcome, SourceReadError, failed

log = get_logger(__name__)
CONSUMER = "validator.datasets"


@dataclass(frozen=True)
class Job:
    dataset_id: uuid.UUID
    tenant_id: str
    model_id: uuid.UUID
    type: DatasetType
    file_name: str
    bucket: str
    object_key: str
    size: int
    attempts: int
    envelope: ev.Envelope
    waited_seconds: float = 0.0


Validate = Callable[[Job, dict[str, Any]], Outcome]  # (job, datasets of the same model) -> verdict


async def record(conn: asyncpg.Connection, schema: str, env: ev.Envelope) -> bool:
    """Handle DatasetUploaded: queue the dataset once (False for a redelivery)."""
    if not await inbox.claim(conn, schema, CONSUMER, env.id):
        return False
    d = env.payload().dataset  # type: ignore[attr-defined]
    await conn.execute(
        "INSERT INTO datasets (dataset_id, tenant_id, model_id, type, file_name, bucket, object_key, size, envelope) "
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (dataset_id) DO NOTHING",
        d.dataset_id, env.tenant_id, env.model_id, int(d.dataset_type), d.file_name, d.bucket, d.object_key, d.size,
        env.to_bytes(),
    )
    await conn.execute("SELECT pg_notify($1, '')", f"voxtrain_validator_{schema}")
    return True


async def forget(conn: asyncpg.Connection, schema: str, env: ev.Envelope) -> None:
    """Handle DatasetDeleted: the dataset can no longer be referenced (nor is its verdict published)."""
    if await inbox.claim(conn, schema, CONSUMER + ".deleted", env.id):
        await conn.execute("DELETE FROM datasets WHERE dataset_id=$1 AND tenant_id=$2",
                           env.payload().dataset_id, env.tenant_id)  # type: ignore[attr-defined]


async def claim_next(conn: asyncpg.Connection, lease_seconds: float) -> Job | None:
    row = await conn.fetchrow(
        "UPDATE datasets SET status='running', attempts=attempts+1, updated_at=now(), "
        "lease_until = now() + make_interval(secs => $1) "
        "WHERE dataset_id = (SELECT dataset_id FROM datasets "
        "  WHERE (status='pending' AND next_attempt_at <= now()) OR (status='running' AND lease_until < now()) "
        "  ORDER BY next_attempt_at FOR UPDATE SKIP LOCKED LIMIT 1) "
        "RETURNING *, extract(epoch FROM now() - created_at) AS waited",
        lease_seconds,
    )
    if row is None:
        return None
    return Job(row["dataset_id"], row["tenant_id"], row["model_id"], DatasetType(row["type"]), row["file_name"],
               row["bucket"], row["object_key"], row["size"], row["attempts"],
               ev.REGISTRY.parse(bytes(row["envelope"])), float(row["waited"]))


async def siblings(conn: asyncpg.Connection, job: Job) -> dict[str, Any]:
    """The other datasets of the job's model and tenant (nothing of another tenant, ever)."""
    rows = await conn.fetch(
        "SELECT dataset_id, type, file_name, status, result FROM datasets WHERE tenant_id=$1 AND model_id=$2",
        job.tenant_id, job.model_id)
    return {str(r["dataset_id"]): {"dataset_id": r["dataset_id"], "type": DatasetType(r["type"]),
                                   "file_name": r["file_name"], "status": r["status"],
                                   "result": json.loads(r["result"]) if r["result"] else None} for r in rows}


def event_for(job: Job, outcome: Outcome) -> ev.Message:
    if outcome.passed:
        return ev.ValidationPassed(dataset_id=job.dataset_id, dataset_type=job.type, file_name=job.file_name,
                                   metadata=outcome.metadata, warnings=list(outcome.warnings))
    return ev.ValidationFailed(
        dataset_id=job.dataset_id, dataset_type=job.type, file_name=job.file_name,
        error=ev.ErrorInfo(code=outcome.code or ErrorCode.VALIDATION_FAILED, message=outcome.message or "invalid",
                           dataset_id=job.dataset_id, file_name=job.file_name,
                           details=[f.to_dict() for f in outcome.details]),
        details_truncated=outcome.details_dropped,
    )


def extension(file_name: str) -> str:
    return PurePosixPath(file_name.replace("\\", "/")).suffix.lower()


class Workers:
    """``count`` workers validating queued datasets until stopped."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], schema: str, topics: Topics, validate: Validate,
                 publish_dead: Callable[[str, bytes, bytes | None, dict[str, str]], Any], *,
                 max_attempts: int = 4, retry_base_seconds: float = 2.0, lease_seconds: float = 900,
                 poll: float = 1.0, max_wait: float = 3600.0) -> None:
        self._pool, self._schema, self._topics = pool, schema, topics
        self._validate, self._publish_dead = validate, publish_dead
        self._max_attempts, self._lease, self._poll = max_attempts, lease_seconds, poll
        self._retry_base = retry_base_seconds
        self._max_wait = max_wait
        self._wake = asyncio.Event()

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def run(self, count: int, stop: asyncio.Event) -> None:
        listener = await self._pool().acquire()
        await listener.add_listener(f"voxtrain_validator_{self._schema}", self.wake)
        try:
            await asyncio.gather(*(self._loop(stop) for _ in range(count)))
        finally:
            await listener.remove_listener(f"voxtrain_validator_{self._schema}", self.wake)
            await self._pool().release(listener)

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                worked = await self.run_one()
            except Exception as exc:  # the database is away: wait and try again
                log.warning("validator_worker_error", error=repr(exc))
                worked = False
            if not worked:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
                except TimeoutError:
                    pass

    async def run_one(self) -> bool:
        """Validate one queued dataset; False when the queue is empty."""
        async with self._pool().acquire() as conn:
            job = await claim_next(conn, self._lease)
            if job is None:
                return False
            others = await siblings(conn, job)
        bind_message(job.envelope.id, job.envelope.correlation_id, event_type="DatasetUploaded")
        try:
            log.info("validation_started", dataset_id=str(job.dataset_id), type=job.type.name, size=job.size,
                     attempt=job.attempts)
            started = time.perf_counter()
            if self._batch_incomplete(job, others):
                await self._defer(job)
                return True
            try:
                outcome = await asyncio.to_thread(self._validate, job, others)
            except SourceReadError as exc:
                await self._retry_or_dead(job, exc)
                return True
            if self._wait_for_audio(job, outcome):
                await self._defer(job)
                return True
            await self._finish(job, outcome, seconds=time.perf_counter() - started)
            return True
        finally:
            unbind_message()

    def _batch_incomplete(self, job: Job, others: dict[str, Any]) -> bool:
        """A manifest waits until every dataset uploaded with it is known here (its references may
        name files that come after it in the same upload)."""
        if job.type is not DatasetType.MANIFEST or job.waited_seconds >= self._max_wait:
            return False
        batch = getattr(job.envelope.payload(), "batch", [])
        return any(str(b) not in others for b in batch)

    def _wait_for_audio(self, job: Job, outcome: Outcome) -> bool:
        """A manifest that cuts segments out of audio still being validated is checked again once that
        audio's duration is known (up to ``max_wait``; after that it passes as it is)."""
        deferred = outcome.passed and job.type is DatasetType.MANIFEST and outcome.metadata.get("deferred_segment_ends")
        return bool(deferred) and job.waited_seconds < self._max_wait

    async def _defer(self, job: Job) -> None:
        async with self._pool().acquire() as conn:
            await conn.execute(
                "UPDATE datasets SET status='pending', attempts=attempts-1, lease_until=NULL, updated_at=now(), "
                "next_attempt_at = now() + make_interval(secs => $2) WHERE dataset_id=$1", job.dataset_id, self._poll)
        log.info("manifest_waits_for_audio", dataset_id=str(job.dataset_id))

    async def _finish(self, job: Job, outcome: Outcome, seconds: float | None = None) -> None:
        async with self._pool().acquire() as conn, conn.transaction():
            still = await conn.fetchval("SELECT 1 FROM datasets WHERE dataset_id=$1 FOR UPDATE", job.dataset_id)
            if not still:
                return  # deleted meanwhile: nobody needs the verdict
            await conn.execute(
                "UPDATE datasets SET status=$2, result=$3, lease_until=NULL, updated_at=now() WHERE dataset_id=$1",
                job.dataset_id, "passed" if outcome.passed else "failed", json.dumps(outcome.to_dict(), default=str))
            env = ev.wrap(event_for(job, outcome), tenant_id=job.tenant_id, model_id=job.model_id,
                          causation=job.envelope)
            await outbox.add(conn, self._schema, self._topics, env)
        log.info("validation_finished", dataset_id=str(job.dataset_id), passed=outcome.passed,
                 code=str(outcome.code) if outcome.code else None)
        verdict = "passed" if outcome.passed else "failed"
        VALIDATIONS.labels(job.type.name, verdict, str(outcome.code or "")).inc()
        if seconds is not None:
            VALIDATION_SECONDS.labels(job.type.name, verdict).observe(seconds)

    async def _retry_or_dead(self, job: Job, exc: Exception) -> None:
        async with self._pool().acquire() as conn:
            if job.attempts < self._max_attempts:
                delay = min(300.0, self._retry_base * 2.0 ** (job.attempts - 1))
                await conn.execute(
                    "UPDATE datasets SET status='pending', lease_until=NULL, updated_at=now(), "
                    "next_attempt_at = now() + make_interval(secs => $2) WHERE dataset_id=$1", job.dataset_id, delay)
                log.warning("validation_retry", dataset_id=str(job.dataset_id), attempt=job.attempts,
                            retry_in=delay, error=str(exc))
                VALIDATIONS.labels(job.type.name, "retried", ErrorCode.STORAGE_UNAVAILABLE.value).inc()
                return
            topic = self._topics.datasets
            await self._publish_dead(dead_letter(topic), job.envelope.to_bytes(), job.envelope.key(), {
                "x-dead-letter-reason": repr(exc)[:2000], "x-original-topic": topic,
                "x-consumer-group": CONSUMER, "x-attempts": str(job.attempts)})
        log.error("validation_dead_lettered", dataset_id=str(job.dataset_id), attempts=job.attempts)
        # The model must not wait forever: tell it, in words a person can act on.
        await self._finish(job, failed(
            ErrorCode.VALIDATION_FAILED,
            f"{job.file_name} could not be read from storage after {job.attempts} attempts ({exc}). "
            "Upload it again, or start training again once storage is back."))
