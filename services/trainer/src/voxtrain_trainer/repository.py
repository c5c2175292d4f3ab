"""PostgreSQL persistence of training runs: all SQL of the trainer service (search_path is set by the pool)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from voxtrain_shared import events as ev
from voxtrain_shared.tracing import carrier

from .domain import JobStatus, Run, RunStatus, TranscriptionJob

_COLUMNS = (
    "run_id, request, status, attempt, owner, progress, error, metrics, artifacts, trace_context, "
    "extract(epoch FROM now() - started_at) AS seconds"
)


def _j(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def _l(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _run(row: asyncpg.Record) -> Run:
    progress = _l(row["progress"]) or {}
    return Run(
        run_id=row["run_id"],
        request=ev.REGISTRY.parse(bytes(row["request"])),
        status=RunStatus(row["status"]),
        attempt=row["attempt"],
        owner=row["owner"],
        stage=progress.get("stage"),
        error=_l(row["error"]),
        metrics=_l(row["metrics"]),
        artifacts=_l(row["artifacts"]),
        seconds=float(row["seconds"]) if row["seconds"] is not None else None,
        trace_context=tuple((_l(row["trace_context"]) or {}).items()),
    )


_JOB_COLUMNS = (
    "job_id, tenant_id, model, run_id, artifacts, file_name, object_key, audio_seconds, status, done_seconds, "
    "attempt, result, error"
)


def _job(row: asyncpg.Record) -> TranscriptionJob:
    return TranscriptionJob(
        job_id=row["job_id"],
        tenant_id=row["tenant_id"],
        model=row["model"],
        run_id=row["run_id"],
        artifacts=_l(row["artifacts"]),
        file_name=row["file_name"],
        object_key=row["object_key"],
        audio_seconds=row["audio_seconds"],
        status=JobStatus(row["status"]),
        done_seconds=row["done_seconds"],
        attempt=row["attempt"],
        result=_l(row["result"]),
        error=_l(row["error"]),
    )


class TrainerRepository:
    """All SQL of the trainer service, on one connection (inside the caller's transaction, if any)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def get(self, run_id: uuid.UUID, *, lock: bool = False, skip_locked: bool = False) -> Run | None:
        """A run; ``lock`` holds its row for the transaction (``skip_locked``: None if another holds it)."""
        sql = f"SELECT {_COLUMNS} FROM runs WHERE run_id=$1"
        if lock:
            sql += " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"
        row = await self._conn.fetchrow(sql, run_id)
        return None if row is None else _run(row)

    async def insert(self, run: Run) -> None:
        """Queue ``run`` (with the current trace context, which the spans of its attempts continue)."""
        await self._conn.execute(
            "INSERT INTO runs (run_id, tenant_id, model_id, request, trace_context) VALUES ($1,$2,$3,$4,$5::jsonb) "
            "ON CONFLICT DO NOTHING",
            run.run_id,
            run.tenant_id,
            run.model_id,
            run.request.to_bytes(),
            _j(carrier() or None),
        )

    async def save(self, run: Run) -> None:
        """Write a run's state back (times follow the status)."""
        await self._conn.execute(
            "UPDATE runs SET status=$2, attempt=$3, owner=$4, error=$5, metrics=$6, artifacts=$7, "
            "not_before = now() + make_interval(secs => COALESCE($8, 0)), "
            "started_at = CASE WHEN $2 = 'running' THEN COALESCE(started_at, now()) ELSE started_at END, "
            "heartbeat_at = CASE WHEN $2 = 'running' THEN now() ELSE heartbeat_at END, "
            "finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'cancelled') THEN now() END "
            "WHERE run_id=$1",
            run.run_id,
            run.status.value,
            run.attempt,
            run.owner,
            _j(run.error),
            _j(run.metrics),
            _j(run.artifacts),
            run.retry_after,
        )

    async def set_progress(self, run_id: uuid.UUID, progress: dict[str, Any]) -> None:
        """The run's latest progress (``stage``, ``percent``, ``message``, ``eta_seconds``, ``attempt``…)."""
        await self._conn.execute("UPDATE runs SET progress=$2 WHERE run_id=$1", run_id, json.dumps(progress))

    async def due(self, limit: int) -> list[Run]:
        """Queued runs whose backoff has passed, oldest first (not locked: candidates)."""
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM runs WHERE status='queued' AND (not_before IS NULL OR not_before <= now()) "
            "ORDER BY created_at LIMIT $1",
            limit,
        )
        return [_run(r) for r in rows]

    async def heartbeat(self, owner: str, attempts: dict[uuid.UUID, int]) -> set[uuid.UUID]:
        """Renew ``owner``'s runs (run id → attempt); returns those it still holds."""
        rows = await self._conn.fetch(
            "UPDATE runs SET heartbeat_at=now() FROM unnest($2::uuid[], $3::int[]) AS mine(run_id, attempt) "
            "WHERE runs.run_id = mine.run_id AND runs.attempt = mine.attempt AND runs.owner=$1 "
            "AND runs.status='running' RETURNING runs.run_id",
            owner,
            list(attempts),
            list(attempts.values()),
        )
        return {r["run_id"] for r in rows}

    async def lost(
        self, owner: str, live: list[uuid.UUID], lease_seconds: float, *, run_id: uuid.UUID | None = None
    ) -> list[Run]:
        """Running runs that lost their worker (all, or just ``run_id``), locked: no heartbeat within the
        lease (any replica's), or ``owner``'s own that it runs no worker for."""
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM runs WHERE status='running' AND ($4::uuid IS NULL OR run_id=$4) "
            "AND (heartbeat_at < now() - make_interval(secs => $3) OR (owner=$1 AND NOT run_id = ANY($2::uuid[]))) "
            "ORDER BY created_at FOR UPDATE SKIP LOCKED",
            owner,
            live,
            lease_seconds,
            run_id,
        )
        return [_run(r) for r in rows]

    async def operator_listing(self, status: str | None, limit: int) -> list[asyncpg.Record]:
        """Runs of every tenant, optionally of one status, oldest first — for operators (``voxtrain runs``)."""
        rows: list[asyncpg.Record] = await self._conn.fetch(
            "SELECT run_id, tenant_id, model_id, status, attempt, owner, progress, error, created_at, started_at, "
            "heartbeat_at, finished_at FROM runs WHERE ($1::text IS NULL OR status = $1) "
            "ORDER BY created_at, run_id LIMIT $2",
            status,
            limit,
        )
        return rows

    async def remember_cancel(self, tenant_id: str, model_id: uuid.UUID | None, run_id: uuid.UUID, by: str) -> None:
        """Remember that ``run_id`` was cancelled (its TrainingRequested may still be on its way)."""
        await self._conn.execute(
            "INSERT INTO cancelled_runs (run_id, tenant_id, model_id, cancelled_by) VALUES ($1,$2,$3,$4) "
            "ON CONFLICT DO NOTHING",
            run_id,
            tenant_id,
            model_id,
            by,
        )

    async def was_cancelled(self, tenant_id: str, run_id: uuid.UUID) -> bool:
        return (
            await self._conn.fetchval(
                "SELECT true FROM cancelled_runs WHERE run_id=$1 AND tenant_id=$2", run_id, tenant_id
            )
            is not None
        )

    async def model_deleted(self, tenant_id: str, model_id: uuid.UUID) -> None:
        """Its runs are no longer served; queued ones are dropped."""
        await self._conn.execute(
            "UPDATE runs SET model_deleted=true WHERE tenant_id=$1 AND model_id=$2", tenant_id, model_id
        )
        await self._conn.execute(
            "DELETE FROM runs WHERE tenant_id=$1 AND model_id=$2 AND status='queued'", tenant_id, model_id
        )

    async def trained(self, tenant_id: str, model_id: uuid.UUID) -> tuple[uuid.UUID, dict[str, str]] | None:
        """The latest succeeded run of a tenant's model that still exists: (run id, artifacts)."""
        row = await self._conn.fetchrow(
            "SELECT run_id, artifacts FROM runs WHERE tenant_id=$1 AND model_id=$2 AND status='succeeded' "
            "AND NOT model_deleted ORDER BY finished_at DESC LIMIT 1",
            tenant_id,
            model_id,
        )
        return None if row is None else (row["run_id"], json.loads(row["artifacts"]))

    async def latest_of_model(self, tenant_id: str, model_id: uuid.UUID) -> asyncpg.Record | None:
        """The tenant's run of a model that counts for export: its latest succeeded run, else its latest run
        (``run_id, status, artifacts, finished_at``); None when the tenant has no run of that model."""
        row: asyncpg.Record | None = await self._conn.fetchrow(
            "SELECT run_id, status, artifacts, finished_at FROM runs WHERE tenant_id=$1 AND model_id=$2 "
            "AND NOT model_deleted ORDER BY status = 'succeeded' DESC, finished_at DESC NULLS FIRST, created_at DESC "
            "LIMIT 1",
            tenant_id,
            model_id,
        )
        return row

    # ------------------------------------------------------------ transcription jobs

    async def add_transcription(self, job: TranscriptionJob) -> None:
        await self._conn.execute(
            "INSERT INTO transcription_jobs (job_id, tenant_id, model, run_id, artifacts, file_name, object_key, "
            "audio_seconds, status) VALUES ($1,$2,$3,$4,$5::jsonb,$6,$7,$8,$9)",
            job.job_id,
            job.tenant_id,
            job.model,
            job.run_id,
            _j(job.artifacts),
            job.file_name,
            job.object_key,
            job.audio_seconds,
            job.status.value,
        )

    async def queue_transcription(self, job_id: uuid.UUID) -> bool:
        """Its upload is stored: the job may run. False if it was abandoned meanwhile (the upload took too long)."""
        status = await self._conn.execute(
            "UPDATE transcription_jobs SET status='queued' WHERE job_id=$1 AND status='uploading'", job_id
        )
        return status.endswith(" 1")

    async def abandon_uploads(self, grace_seconds: float, error: dict[str, Any]) -> int:
        """Jobs still uploading after ``grace_seconds`` fail with ``error`` (their input is then swept)."""
        status = await self._conn.execute(
            "UPDATE transcription_jobs SET status='failed', error=$2::jsonb, finished_at=now() "
            "WHERE status='uploading' AND created_at < now() - make_interval(secs => $1)",
            grace_seconds,
            _j(error),
        )
        return int(status.split()[-1])

    async def unswept_inputs(self, limit: int) -> list[tuple[uuid.UUID, str]]:
        """(job id, object key) of finished jobs whose upload may still be in storage, oldest first."""
        rows = await self._conn.fetch(
            "SELECT job_id, object_key FROM transcription_jobs WHERE status IN ('succeeded','failed') "
            "AND NOT input_removed ORDER BY finished_at LIMIT $1",
            limit,
        )
        return [(row["job_id"], row["object_key"]) for row in rows]

    async def inputs_removed(self, job_ids: list[uuid.UUID]) -> None:
        await self._conn.execute(
            "UPDATE transcription_jobs SET input_removed=true WHERE job_id = ANY($1::uuid[])", job_ids
        )

    async def expire_transcriptions(self, retention_seconds: float, limit: int) -> int:
        """Delete up to ``limit`` jobs finished more than ``retention_seconds`` ago whose upload is gone."""
        status = await self._conn.execute(
            "DELETE FROM transcription_jobs WHERE job_id IN (SELECT job_id FROM transcription_jobs "
            "WHERE status IN ('succeeded','failed') AND input_removed "
            "AND finished_at < now() - make_interval(secs => $1) ORDER BY finished_at LIMIT $2)",
            retention_seconds,
            limit,
        )
        return int(status.split()[-1])

    async def transcription(self, tenant_id: str, job_id: uuid.UUID) -> TranscriptionJob | None:
        """The tenant's job (None for another tenant's, and while its upload is being stored: not a job yet)."""
        row = await self._conn.fetchrow(
            f"SELECT {_JOB_COLUMNS} FROM transcription_jobs WHERE job_id=$1 AND tenant_id=$2 AND status<>'uploading'",
            job_id,
            tenant_id,
        )
        return None if row is None else _job(row)

    async def claim_transcription(self, owner: str, lease_seconds: float) -> TranscriptionJob | None:
        """The oldest queued job, or a running one whose lease ran out, now held by ``owner`` (attempt + 1)."""
        row = await self._conn.fetchrow(
            "UPDATE transcription_jobs SET status='running', owner=$1, attempt=attempt+1, "
            "lease_until=now() + make_interval(secs => $2) WHERE job_id = ("
            "  SELECT job_id FROM transcription_jobs WHERE status='queued' OR (status='running' AND lease_until<now())"
            "  ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED"
            f") RETURNING {_JOB_COLUMNS}",
            owner,
            lease_seconds,
        )
        return None if row is None else _job(row)

    async def renew_transcription(
        self, job_id: uuid.UUID, owner: str, attempt: int, done_seconds: float, lease_seconds: float
    ) -> bool:
        """Extend the lease and record progress; False if this attempt no longer holds the job."""
        status = await self._conn.execute(
            "UPDATE transcription_jobs SET done_seconds=$4, lease_until=now() + make_interval(secs => $5) "
            "WHERE job_id=$1 AND owner=$2 AND attempt=$3 AND status='running'",
            job_id,
            owner,
            attempt,
            done_seconds,
            lease_seconds,
        )
        return status.endswith(" 1")

    async def finish_transcription(self, job: TranscriptionJob, owner: str | None) -> bool:
        """Store the job's outcome; with ``owner``, only if that attempt still holds it (fencing)."""
        status = await self._conn.execute(
            "UPDATE transcription_jobs SET status=$2, done_seconds=$3, result=$4::jsonb, error=$5::jsonb, "
            "owner=NULL, lease_until=NULL, finished_at=now() "
            "WHERE job_id=$1 AND attempt=$6 AND ($7::text IS NULL OR owner=$7)",
            job.job_id,
            job.status.value,
            job.done_seconds,
            _j(job.result),
            _j(job.error),
            job.attempt,
            owner,
        )
        return status.endswith(" 1")
