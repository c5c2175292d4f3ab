"""PostgreSQL persistence of custom models (the service's own schema; search_path is set by the pool)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from voxtrain_shared.vocab import DatasetType, ModelStatus

from .domain import CustomModel, Dataset, Phase, Validation

_COLUMNS = (
    "id, tenant_id, name, language, description, auto_train, status, run_id, training_requested, "
    "last_error, metrics, progress, finished_at, created_at, updated_at, status_since, watched_since, redrives, "
    "request_attempt"
)


def _j(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def _l(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _overdue(asked_again: bool) -> str:
    """Models past their phase's deadline ($1 validating, $2 starting, $3 running cutoffs)."""
    where = (
        "(status=2 AND NOT training_requested AND watched_since <= $1) OR "
        "(status=2 AND training_requested AND watched_since <= $2) OR "
        "(status=3 AND watched_since <= $3)"
    )
    return f"({where} OR (status IN (2, 3) AND redrives > 0))" if asked_again else f"({where})"


class NameTaken(Exception):
    """Another model of the tenant already has this name."""


class ModelRepository:
    """All SQL of the models service, on one connection (inside the caller's transaction, if any)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def insert(self, m: CustomModel) -> None:
        """Insert a new model; :class:`NameTaken` or ``UniqueViolationError`` (same id) if it clashes.

        Runs in a savepoint, so a clash leaves the caller's transaction usable."""
        try:
            async with self._conn.transaction():
                await self._conn.execute(
                    "INSERT INTO models (id, tenant_id, name, language, description, auto_train, status) "
                    "VALUES ($1,$2,$3,$4,$5,$6,$7)",
                    m.id,
                    m.tenant_id,
                    m.name,
                    m.language,
                    m.description,
                    m.auto_train,
                    int(m.status),
                )
        except asyncpg.UniqueViolationError as exc:
            if "models_pkey" in str(exc.constraint_name):
                raise
            raise NameTaken(m.name) from exc

    async def get(self, tenant_id: str, model_id: uuid.UUID, *, lock: bool = False) -> CustomModel | None:
        """A tenant's model with its datasets; ``lock`` takes a row lock for the transaction."""
        row = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM models WHERE id=$1 AND tenant_id=$2" + (" FOR UPDATE" if lock else ""),
            model_id,
            tenant_id,
        )
        if row is None:
            return None
        m = _model(row)
        for d in await self._conn.fetch("SELECT * FROM model_datasets WHERE model_id=$1 ORDER BY dataset_id", model_id):
            m.datasets[d["dataset_id"]] = Dataset(
                id=d["dataset_id"],
                type=DatasetType(d["type"]),
                file_name=d["file_name"],
                location=_l(d["location"]),
                validation=Validation(d["validation"]),
                error=_l(d["error"]),
            )
        m.deleted_datasets = {
            r["dataset_id"]
            for r in await self._conn.fetch(
                "SELECT dataset_id FROM model_dataset_tombstones WHERE model_id=$1", model_id
            )
        }
        return m

    async def save(self, m: CustomModel) -> None:
        """Write the model and its dataset projection back (inside the caller's transaction)."""
        try:
            await self._conn.execute(
                "UPDATE models SET name=$3, description=$4, auto_train=$5, status=$6, run_id=$7, "
                "training_requested=$8, last_error=$9, metrics=$10, progress=$11, finished_at=$12, updated_at=now(), "
                "watched_since=coalesce($13, watched_since), redrives=$14, request_attempt=$15, "
                "status_since=coalesce($16, status_since) "
                "WHERE id=$1 AND tenant_id=$2",
                m.id,
                m.tenant_id,
                m.name,
                m.description,
                m.auto_train,
                int(m.status),
                m.run_id,
                m.training_requested,
                _j(m.last_error),
                _j(m.metrics),
                _j(m.progress),
                m.finished_at,
                m.watched_since,
                m.redrives,
                m.request_attempt,
                m.status_since,
            )
        except asyncpg.UniqueViolationError as exc:
            raise NameTaken(m.name) from exc
        await self._conn.execute("DELETE FROM model_datasets WHERE model_id=$1", m.id)
        await self._conn.executemany(
            "INSERT INTO model_datasets (model_id, dataset_id, type, file_name, location, validation, error) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7)",
            [
                (m.id, d.id, int(d.type), d.file_name, _j(d.location), d.validation.value, _j(d.error))
                for d in m.datasets.values()
            ],
        )
        await self._conn.executemany(
            "INSERT INTO model_dataset_tombstones (model_id, dataset_id) VALUES ($1,$2) ON CONFLICT DO NOTHING",
            [(m.id, d) for d in m.deleted_datasets],
        )

    async def delete(self, m: CustomModel) -> None:
        await self._conn.execute("DELETE FROM models WHERE id=$1 AND tenant_id=$2", m.id, m.tenant_id)

    async def find_tenant(self, model_id: uuid.UUID) -> str | None:
        """The tenant owning a model (for events, which carry the tenant in their envelope)."""
        tenant: str | None = await self._conn.fetchval("SELECT tenant_id FROM models WHERE id=$1", model_id)
        return tenant

    async def list_page(
        self, tenant_id: str, status: ModelStatus | None, limit: int, offset: int
    ) -> tuple[list[CustomModel], int]:
        where = "tenant_id=$1"
        args: list[object] = [tenant_id]
        if status is not None:
            where += " AND status=$2"
            args.append(int(status))
        total = await self._conn.fetchval(f"SELECT count(*) FROM models WHERE {where}", *args)
        rows = await self._conn.fetch(
            f"SELECT id FROM models WHERE {where} ORDER BY created_at, id LIMIT {int(limit)} OFFSET {int(offset)}",
            *args,
        )
        models = [m for r in rows if (m := await self.get(tenant_id, r["id"])) is not None]
        return models, int(total)

    async def overdue(
        self, cutoffs: dict[Phase, datetime], limit: int, *, asked_again: bool = False
    ) -> list[tuple[str, uuid.UUID]]:
        """(tenant, id) of models at 2/3 whose deadline window of their phase began before its cutoff, oldest
        first; with ``asked_again`` also those asked again that have not answered since (``redrives`` > 0)."""
        rows = await self._conn.fetch(
            f"SELECT tenant_id, id FROM models WHERE {_overdue(asked_again)} ORDER BY watched_since LIMIT $4",
            cutoffs[Phase.VALIDATING],
            cutoffs[Phase.STARTING],
            cutoffs[Phase.RUNNING],
            limit,
        )
        return [(r["tenant_id"], r["id"]) for r in rows]

    async def count_overdue(self, cutoffs: dict[Phase, datetime]) -> dict[ModelStatus, int]:
        """How many models at 2 and at 3 are overdue or asked again without an answer (see :meth:`overdue`)."""
        rows = await self._conn.fetch(
            f"SELECT status, count(*) AS n FROM models WHERE {_overdue(True)} GROUP BY status",
            cutoffs[Phase.VALIDATING],
            cutoffs[Phase.STARTING],
            cutoffs[Phase.RUNNING],
        )
        counts = {ModelStatus.READY_TO_RUN: 0, ModelStatus.RUNNING: 0}
        counts.update({ModelStatus(r["status"]): int(r["n"]) for r in rows})
        return counts

    async def timestamps(self, model_id: uuid.UUID) -> asyncpg.Record:
        return await self._conn.fetchrow("SELECT created_at, updated_at FROM models WHERE id=$1", model_id)

    async def operator_listing(self, status: int | None, tenant: str | None, limit: int) -> list[asyncpg.Record]:
        """Models of every tenant (or one), optionally of one status, oldest first — for operators (``voxtrain
        models``)."""
        rows: list[asyncpg.Record] = await self._conn.fetch(
            "SELECT id, tenant_id, name, language, status, run_id, last_error, created_at, updated_at FROM models "
            "WHERE ($1::smallint IS NULL OR status = $1) AND ($2::text IS NULL OR tenant_id = $2) "
            "ORDER BY created_at, id LIMIT $3",
            status,
            tenant,
            limit,
        )
        return rows

    async def count_by_status(self) -> dict[ModelStatus, int]:
        """How many models (of every tenant) are in each status; statuses with none are 0."""
        rows = await self._conn.fetch("SELECT status, count(*) AS n FROM models GROUP BY status")
        counts = {s: 0 for s in ModelStatus}
        counts.update({ModelStatus(r["status"]): int(r["n"]) for r in rows})
        return counts


def _model(row: asyncpg.Record) -> CustomModel:
    return CustomModel(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        language=row["language"],
        description=row["description"],
        auto_train=row["auto_train"],
        status=ModelStatus(row["status"]),
        run_id=row["run_id"],
        training_requested=row["training_requested"],
        last_error=_l(row["last_error"]),
        metrics=_l(row["metrics"]),
        progress=_l(row["progress"]),
        finished_at=row["finished_at"],
        status_since=row["status_since"],
        watched_since=row["watched_since"],
        redrives=row["redrives"],
        request_attempt=row["request_attempt"],
    )
