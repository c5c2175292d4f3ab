"""PostgreSQL persistence of the datasets service: ALL of its SQL (its own schema; the pool sets search_path).

:class:`DatasetRepository` is built on one connection by the unit of work (``tx.repo`` inside a
transaction, ``uow.reading()`` for reads); nothing else in the service runs SQL.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from voxtrain_shared.vocab import DatasetType, ModelStatus

from .domain import ChecksumAlgorithm, Dataset, DatasetStatus, UploadSession

_DATASET_COLUMNS = (
    "dataset_id, tenant_id, model_id, dataset_type, file_name, original_name, size, sha256, "
    "content_type, bucket, object_key, source, status, validation, created_at, updated_at"
)


def _dataset(row: asyncpg.Record) -> Dataset:
    return Dataset(
        id=row["dataset_id"],
        tenant_id=row["tenant_id"],
        model_id=row["model_id"],
        type=DatasetType(row["dataset_type"]),
        file_name=row["file_name"],
        original_name=row["original_name"],
        size=row["size"],
        sha256=row["sha256"],
        content_type=row["content_type"],
        bucket=row["bucket"],
        object_key=row["object_key"],
        source=row["source"],
        status=DatasetStatus(row["status"]),
        validation=json.loads(row["validation"]) if row["validation"] else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


_SESSION_COLUMNS = (
    "session_id, tenant_id, model_id, dataset_id, dataset_type, file_name, original_name, "
    "content_type, object_key, s3_upload_id, size, part_size, part_count, state, created_at, "
    "expires_at, checksum_algorithm"
)


def _session(row: asyncpg.Record) -> UploadSession:
    return UploadSession(
        id=row["session_id"],
        tenant_id=row["tenant_id"],
        model_id=row["model_id"],
        dataset_id=row["dataset_id"],
        type=DatasetType(row["dataset_type"]),
        file_name=row["file_name"],
        original_name=row["original_name"],
        content_type=row["content_type"],
        object_key=row["object_key"],
        s3_upload_id=row["s3_upload_id"],
        size=row["size"],
        part_size=row["part_size"],
        part_count=row["part_count"],
        state=row["state"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        checksum_algorithm=ChecksumAlgorithm(row["checksum_algorithm"]),
    )


class DatasetRepository:
    """The datasets service's tables: the model status projection, datasets, staged objects, upload sessions."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    # ---------------------------------------------------------------- model status projection

    async def model_status(self, tenant_id: str, model_id: uuid.UUID, *, lock: bool = False) -> ModelStatus | None:
        """The model's status as last seen in events; None when unknown, deleted or another tenant's.

        ``lock`` holds a share lock for the transaction, so no status event applies until it ends.
        """
        row = await self._conn.fetchrow(
            "SELECT status, deleted FROM models WHERE model_id=$1 AND tenant_id=$2" + (" FOR SHARE" if lock else ""),
            model_id,
            tenant_id,
        )
        if row is None or row["deleted"]:
            return None
        return ModelStatus(row["status"])

    async def model_known(self, model_id: uuid.UUID) -> bool:
        """Whether any event about the model arrived (whoever's it is, deleted or not)."""
        return bool(await self._conn.fetchval("SELECT 1 FROM models WHERE model_id=$1", model_id))

    async def model_seen(self, tenant_id: str, model_id: uuid.UUID, status: ModelStatus, at: datetime) -> None:
        """A model exists (ModelCreated): first sighting only; a later status already known wins."""
        await self._conn.execute(
            "INSERT INTO models (model_id, tenant_id, status, status_at) VALUES ($1,$2,$3,$4) "
            "ON CONFLICT (model_id) DO NOTHING",
            model_id,
            tenant_id,
            int(status),
            at,
        )

    async def model_status_changed(
        self, tenant_id: str, model_id: uuid.UUID, status: ModelStatus, at: datetime
    ) -> None:
        """Apply a status change unless the model is deleted, another tenant's, or a newer one was applied."""
        await self._conn.execute(
            "INSERT INTO models (model_id, tenant_id, status, status_at) VALUES ($1,$2,$3,$4) "
            "ON CONFLICT (model_id) DO UPDATE SET status=EXCLUDED.status, status_at=EXCLUDED.status_at, "
            "updated_at=now() WHERE NOT models.deleted AND models.tenant_id=EXCLUDED.tenant_id "
            "AND models.status_at <= EXCLUDED.status_at",
            model_id,
            tenant_id,
            int(status),
            at,
        )

    async def model_deleted(self, tenant_id: str, model_id: uuid.UUID, at: datetime) -> list[str]:
        """Tombstone the model and forget its datasets and upload sessions; returns their object keys."""
        await self._conn.execute(
            "INSERT INTO models (model_id, tenant_id, status, deleted, status_at) VALUES ($1,$2,1,true,$3) "
            "ON CONFLICT (model_id) DO UPDATE SET deleted=true, updated_at=now() "
            "WHERE models.tenant_id=EXCLUDED.tenant_id",
            model_id,
            tenant_id,
            at,
        )
        keys = [
            r["object_key"]
            for r in await self._conn.fetch(
                "DELETE FROM datasets WHERE model_id=$1 AND tenant_id=$2 RETURNING object_key", model_id, tenant_id
            )
        ]
        keys += [
            r["object_key"]
            for r in await self._conn.fetch(
                "DELETE FROM upload_sessions WHERE model_id=$1 AND tenant_id=$2 AND state <> 'completed' "
                "RETURNING object_key",
                model_id,
                tenant_id,
            )
        ]
        await self._conn.execute("DELETE FROM upload_sessions WHERE model_id=$1 AND tenant_id=$2", model_id, tenant_id)
        return keys

    # ---------------------------------------------------------------- datasets

    async def insert_dataset(self, d: Dataset) -> Dataset:
        row = await self._conn.fetchrow(
            f"INSERT INTO datasets ({_DATASET_COLUMNS}) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,NULL,now(),now()) "
            f"RETURNING {_DATASET_COLUMNS}",
            d.id,
            d.tenant_id,
            d.model_id,
            int(d.type),
            d.file_name,
            d.original_name,
            d.size,
            d.sha256,
            d.content_type,
            d.bucket,
            d.object_key,
            d.source,
            d.status.value,
        )
        return _dataset(row)

    async def get_dataset(
        self, tenant_id: str, model_id: uuid.UUID, dataset_id: uuid.UUID, *, lock: bool = False
    ) -> Dataset | None:
        row = await self._conn.fetchrow(
            f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE dataset_id=$1 AND model_id=$2 AND tenant_id=$3"
            + (" FOR UPDATE" if lock else ""),
            dataset_id,
            model_id,
            tenant_id,
        )
        return _dataset(row) if row else None

    async def list_datasets(self, tenant_id: str, model_id: uuid.UUID) -> list[Dataset]:
        rows = await self._conn.fetch(
            f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE tenant_id=$1 AND model_id=$2 "
            "ORDER BY created_at, file_name, dataset_id",
            tenant_id,
            model_id,
        )
        return [_dataset(r) for r in rows]

    async def delete_dataset(self, dataset_id: uuid.UUID) -> None:
        await self._conn.execute("DELETE FROM datasets WHERE dataset_id=$1", dataset_id)

    async def mark_validating(self, tenant_id: str, dataset_id: uuid.UUID) -> bool:
        """uploaded → validating (its DatasetUploaded reached Kafka); a later status is kept."""
        done = await self._conn.fetchval(
            "UPDATE datasets SET status='validating', updated_at=now() "
            "WHERE dataset_id=$1 AND tenant_id=$2 AND status='uploaded' RETURNING 1",
            dataset_id,
            tenant_id,
        )
        return done is not None

    async def record_validation(
        self, tenant_id: str, dataset_id: uuid.UUID, status: DatasetStatus, details: dict[str, Any], at: datetime
    ) -> bool:
        """Store a validation outcome unless a newer one was stored; False when nothing changed."""
        done = await self._conn.fetchval(
            "UPDATE datasets SET status=$3, validation=$4::jsonb, validated_at=$5, updated_at=now() "
            "WHERE dataset_id=$1 AND tenant_id=$2 AND (validated_at IS NULL OR validated_at <= $5) RETURNING 1",
            dataset_id,
            tenant_id,
            status.value,
            json.dumps(details, default=str),
            at,
        )
        return done is not None

    # ---------------------------------------------------------------- objects not (yet) owned by a dataset

    async def stage_object(self, key: str) -> None:
        """Note, before writing, that ``key`` may soon exist without a record."""
        await self._conn.execute("INSERT INTO pending_objects (object_key) VALUES ($1) ON CONFLICT DO NOTHING", key)

    async def unstage_objects(self, keys: list[str]) -> None:
        """Stop tracking these keys: their objects belong to dataset records now, or are gone."""
        await self._conn.execute("DELETE FROM pending_objects WHERE object_key = ANY($1::text[])", keys)

    async def abandon_objects(self, keys: list[str]) -> None:
        """These objects (and unfinished uploads of their keys) must go: the sweeper removes them."""
        await self._conn.execute(
            "INSERT INTO pending_objects (object_key, abandoned_at) SELECT unnest($1::text[]), now() "
            "ON CONFLICT (object_key) DO UPDATE SET abandoned_at = now()",
            keys,
        )

    async def objects_to_remove(self, staged_before: datetime, limit: int = 100) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT object_key FROM pending_objects WHERE abandoned_at IS NOT NULL OR created_at < $1 "
            "ORDER BY created_at LIMIT $2",
            staged_before,
            limit,
        )
        return [r["object_key"] for r in rows]

    # ---------------------------------------------------------------- upload sessions

    async def insert_session(self, s: UploadSession) -> UploadSession:
        row = await self._conn.fetchrow(
            f"INSERT INTO upload_sessions ({_SESSION_COLUMNS}) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17) "
            f"RETURNING {_SESSION_COLUMNS}",
            s.id,
            s.tenant_id,
            s.model_id,
            s.dataset_id,
            int(s.type),
            s.file_name,
            s.original_name,
            s.content_type,
            s.object_key,
            s.s3_upload_id,
            s.size,
            s.part_size,
            s.part_count,
            s.state,
            s.created_at,
            s.expires_at,
            s.checksum_algorithm.value,
        )
        return _session(row)

    async def get_session(self, tenant_id: str, model_id: uuid.UUID, session_id: uuid.UUID) -> UploadSession | None:
        row = await self._conn.fetchrow(
            f"SELECT {_SESSION_COLUMNS} FROM upload_sessions WHERE session_id=$1 AND model_id=$2 AND tenant_id=$3",
            session_id,
            model_id,
            tenant_id,
        )
        return _session(row) if row else None

    async def claim_for_completion(
        self, tenant_id: str, model_id: uuid.UUID, session_id: uuid.UUID, stale_before: datetime
    ) -> UploadSession | None:
        """open → completing (or take over a completion that stalled); None when not claimable."""
        row = await self._conn.fetchrow(
            "UPDATE upload_sessions SET state='completing', updated_at=now() "
            "WHERE session_id=$1 AND model_id=$2 AND tenant_id=$3 AND expires_at > now() "
            "AND (state='open' OR (state='completing' AND updated_at < $4)) "
            f"RETURNING {_SESSION_COLUMNS}",
            session_id,
            model_id,
            tenant_id,
            stale_before,
        )
        return _session(row) if row else None

    async def set_session_state(self, session_id: uuid.UUID, state: str) -> None:
        await self._conn.execute(
            "UPDATE upload_sessions SET state=$2, updated_at=now() WHERE session_id=$1", session_id, state
        )

    async def delete_session(self, session_id: uuid.UUID) -> None:
        await self._conn.execute("DELETE FROM upload_sessions WHERE session_id=$1", session_id)

    async def expired_sessions(self, now: datetime, stale_before: datetime, limit: int = 100) -> list[UploadSession]:
        """Unfinished sessions past their expiry (a completion in progress is left alone unless stalled)."""
        rows = await self._conn.fetch(
            f"SELECT {_SESSION_COLUMNS} FROM upload_sessions WHERE expires_at < $1 "
            "AND (state='open' OR (state='completing' AND updated_at < $2)) ORDER BY expires_at LIMIT $3",
            now,
            stale_before,
            limit,
        )
        return [_session(r) for r in rows]

    async def forget_completed_sessions(self, before: datetime) -> int:
        """Drop completed sessions (kept for idempotent retries of complete) older than ``before``."""
        result = await self._conn.execute(
            "DELETE FROM upload_sessions WHERE state='completed' AND updated_at < $1", before
        )
        return int(result.split()[-1])

    # ---------------------------------------------------------------- per-tenant upload quotas

    async def lock_tenant_uploads(self, tenant_id: str) -> None:
        """Serialise the tenant's quota checks until this transaction ends (other tenants are not held)."""
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':uploads:' || $1, 0))", tenant_id
        )

    async def open_sessions(self, tenant_id: str, now: datetime) -> int:
        """The tenant's resumable upload sessions not completed and not expired."""
        count = await self._conn.fetchval(
            "SELECT count(*) FROM upload_sessions WHERE tenant_id=$1 AND state <> 'completed' AND expires_at > $2",
            tenant_id,
            now,
        )
        return int(count)

    async def upload_slots_in_use(self, tenant_id: str) -> int:
        """The tenant's streamed uploads in progress (slots whose lease has not lapsed), on any replica."""
        await self._conn.execute("DELETE FROM upload_slots WHERE tenant_id=$1 AND expires_at <= now()", tenant_id)
        count = await self._conn.fetchval("SELECT count(*) FROM upload_slots WHERE tenant_id=$1", tenant_id)
        return int(count)

    async def take_upload_slot(self, slot_id: uuid.UUID, tenant_id: str, model_id: uuid.UUID, lease: float) -> None:
        await self._conn.execute(
            "INSERT INTO upload_slots (slot_id, tenant_id, model_id, expires_at) "
            "VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            slot_id,
            tenant_id,
            model_id,
            lease,
        )

    async def renew_upload_slot(self, slot_id: uuid.UUID, lease: float) -> None:
        await self._conn.execute(
            "UPDATE upload_slots SET expires_at = now() + make_interval(secs => $2) WHERE slot_id=$1", slot_id, lease
        )

    async def release_upload_slot(self, slot_id: uuid.UUID) -> None:
        await self._conn.execute("DELETE FROM upload_slots WHERE slot_id=$1", slot_id)

    async def pending_objects(self) -> list[tuple[str, bool]]:
        """Every tracked object key and whether it is abandoned (for operators and tests)."""
        rows = await self._conn.fetch("SELECT object_key, abandoned_at FROM pending_objects ORDER BY created_at")
        return [(r["object_key"], r["abandoned_at"] is not None) for r in rows]
