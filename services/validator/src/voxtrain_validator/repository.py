"""PostgreSQL persistence of validation jobs: all SQL of the validator (the table is in migrations/).

Jobs are claimed with ``FOR UPDATE SKIP LOCKED`` (many workers, many replicas) and leased: a claim writes its
owner and a fresh token, and every later write of that claim (renew, finish, retry) matches on the token, so a
worker that lost its lease changes nothing.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from voxtrain_shared import events as ev
from voxtrain_shared.tracing import carrier
from voxtrain_shared.vocab import DatasetType

from .domain import LEASE_LOST, Dataset, Entry, Job, JobStatus, Lease, Sibling

_DATASET = "dataset_id, tenant_id, model_id, type, file_name, bucket, object_key, size"


_INSERT = f"INSERT INTO datasets ({_DATASET}, envelope, trace_context) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) "


def _row(d: Dataset, request: ev.Envelope) -> tuple[Any, ...]:
    """The values of :data:`_INSERT` (with the current trace context, which the job's span continues)."""
    trace_context = carrier()
    return (
        d.dataset_id,
        d.tenant_id,
        d.model_id,
        int(d.type),
        d.file_name,
        d.bucket,
        d.object_key,
        d.size,
        request.to_bytes(),
        json.dumps(trace_context) if trace_context else None,
    )


def _dataset(row: asyncpg.Record) -> Dataset:
    return Dataset(
        row["dataset_id"],
        row["tenant_id"],
        row["model_id"],
        DatasetType(row["type"]),
        row["file_name"],
        row["bucket"],
        row["object_key"],
        row["size"],
    )


def _json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


class ValidatorRepository:
    """All SQL of the validator, on one connection (inside the caller's transaction, if any)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def add(self, d: Dataset, request: ev.Envelope) -> None:
        """Queue ``d`` (nothing if it is known already)."""
        await self._conn.execute(
            _INSERT + "ON CONFLICT (dataset_id) DO NOTHING",
            *_row(d, request),
        )

    async def requeue(self, d: Dataset, request: ev.Envelope) -> None:
        """Queue ``d`` afresh (attempts from 0, no result), whether known or not; another tenant's row is kept."""
        await self._conn.execute(
            _INSERT
            + "ON CONFLICT (dataset_id) DO UPDATE SET status='pending', attempts=0, result=NULL, last_error=NULL, "
            "lease_until=NULL, lease_owner=NULL, lease_token=NULL, next_attempt_at=now(), updated_at=now(), "
            "envelope=EXCLUDED.envelope, trace_context=EXCLUDED.trace_context, bucket=EXCLUDED.bucket, "
            "object_key=EXCLUDED.object_key, size=EXCLUDED.size "
            "WHERE datasets.tenant_id = EXCLUDED.tenant_id",
            *_row(d, request),
        )

    async def cancel(self, tenant_id: str, model_id: uuid.UUID, dataset_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Drop the queued or running jobs of ``dataset_ids`` (of the tenant's model): status ``cancelled``, lease
        cleared, so a worker still on one can neither renew nor finish it. Returns the ids dropped."""
        rows = await self._conn.fetch(
            "UPDATE datasets SET status='cancelled', lease_until=NULL, lease_owner=NULL, lease_token=NULL, "
            "updated_at=now() WHERE tenant_id=$1 AND model_id=$2 AND dataset_id = ANY($3::uuid[]) "
            "AND status IN ('pending', 'running') RETURNING dataset_id",
            tenant_id,
            model_id,
            dataset_ids,
        )
        return [r["dataset_id"] for r in rows]

    async def delete(self, tenant_id: str, dataset_id: uuid.UUID) -> None:
        await self._conn.execute("DELETE FROM datasets WHERE dataset_id=$1 AND tenant_id=$2", dataset_id, tenant_id)

    async def get(self, tenant_id: str, dataset_id: uuid.UUID, *, lock: bool = False) -> Entry | None:
        row = await self._conn.fetchrow(
            f"SELECT {_DATASET}, status, result FROM datasets WHERE dataset_id=$1 AND tenant_id=$2"
            + (" FOR UPDATE" if lock else ""),
            dataset_id,
            tenant_id,
        )
        if row is None:
            return None
        return Entry(_dataset(row), JobStatus(row["status"]), _json(row["result"]))

    async def claim(self, lease: Lease, lease_seconds: float) -> Job | None:
        """The next due job (queued and due, or running with an expired lease), now leased to ``lease``.

        Taking over an expired lease records :data:`~.domain.LEASE_LOST` as the job's last error."""
        row = await self._conn.fetchrow(
            "UPDATE datasets SET status='running', attempts=attempts+1, updated_at=now(), "
            "last_error = CASE WHEN status='running' THEN $4 ELSE last_error END, "
            "lease_until = now() + make_interval(secs => $1), lease_owner=$2, lease_token=$3 "
            "WHERE dataset_id = (SELECT dataset_id FROM datasets "
            "  WHERE (status='pending' AND next_attempt_at <= now()) OR (status='running' AND lease_until < now()) "
            "  ORDER BY next_attempt_at FOR UPDATE SKIP LOCKED LIMIT 1) "
            f"RETURNING {_DATASET}, attempts, envelope, last_error, trace_context, "
            "extract(epoch FROM now() - created_at) AS waited",
            lease_seconds,
            lease.owner,
            lease.token,
            LEASE_LOST,
        )
        if row is None:
            return None
        return Job(
            _dataset(row),
            row["attempts"],
            ev.REGISTRY.parse(bytes(row["envelope"])),
            float(row["waited"]),
            lease,
            row["last_error"],
            tuple((_json(row["trace_context"]) or {}).items()),
        )

    async def siblings(self, tenant_id: str, model_id: uuid.UUID) -> dict[uuid.UUID, Sibling]:
        """The datasets of a tenant's model (nothing of another tenant, ever)."""
        rows = await self._conn.fetch(
            "SELECT dataset_id, type, file_name, status, result->'metadata'->>'duration_seconds' AS duration "
            "FROM datasets WHERE tenant_id=$1 AND model_id=$2",
            tenant_id,
            model_id,
        )
        return {
            r["dataset_id"]: Sibling(
                r["dataset_id"],
                DatasetType(r["type"]),
                r["file_name"],
                JobStatus(r["status"]),
                float(r["duration"]) if r["duration"] is not None else None,
            )
            for r in rows
        }

    async def renew(self, dataset_id: uuid.UUID, lease: Lease, lease_seconds: float) -> bool:
        """Extend the lease; False if ``lease`` no longer holds the job (taken over, finished or deleted)."""
        return (
            await self._conn.fetchval(
                "UPDATE datasets SET lease_until = now() + make_interval(secs => $4), updated_at=now() "
                "WHERE dataset_id=$1 AND status='running' AND lease_owner=$2 AND lease_token=$3 RETURNING true",
                dataset_id,
                lease.owner,
                lease.token,
                lease_seconds,
            )
            is not None
        )

    async def holds(self, dataset_id: uuid.UUID, lease: Lease) -> bool:
        """True if ``lease`` still holds the job (read only)."""
        return (
            await self._conn.fetchval(
                "SELECT true FROM datasets WHERE dataset_id=$1 AND status='running' AND lease_owner=$2 "
                "AND lease_token=$3",
                dataset_id,
                lease.owner,
                lease.token,
            )
            is not None
        )

    async def finish(self, dataset_id: uuid.UUID, lease: Lease, status: JobStatus, result: dict[str, Any]) -> bool:
        """Store the job's result; False (nothing written) if ``lease`` no longer holds the job."""
        return (
            await self._conn.fetchval(
                "UPDATE datasets SET status=$4, result=$5, lease_until=NULL, lease_owner=NULL, lease_token=NULL, "
                "updated_at=now() "
                "WHERE dataset_id=$1 AND status='running' AND lease_owner=$2 AND lease_token=$3 RETURNING true",
                dataset_id,
                lease.owner,
                lease.token,
                status.value,
                json.dumps(result, default=str),
            )
            is not None
        )

    async def release(
        self, dataset_id: uuid.UUID, lease: Lease, delay: float, *, error: str | None, counted: bool
    ) -> bool:
        """Put the job back in the queue for ``delay`` seconds; ``counted=False`` gives the attempt back (a
        manifest that only waits). False if ``lease`` no longer holds the job."""
        return (
            await self._conn.fetchval(
                "UPDATE datasets SET status='pending', lease_until=NULL, lease_owner=NULL, lease_token=NULL, "
                "attempts = attempts - CASE WHEN $6 THEN 0 ELSE 1 END, last_error = COALESCE($5, last_error), "
                "next_attempt_at = now() + make_interval(secs => $4), updated_at=now() "
                "WHERE dataset_id=$1 AND status='running' AND lease_owner=$2 AND lease_token=$3 RETURNING true",
                dataset_id,
                lease.owner,
                lease.token,
                delay,
                error,
                counted,
            )
            is not None
        )
