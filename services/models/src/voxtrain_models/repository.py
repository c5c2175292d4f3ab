"""PostgreSQL persistence of custom models (the service's own schema; search_path is set by the pool)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from voxtrain_shared.vocab import DatasetType, ModelStatus

from .credits import Account, Entry, EntryKind, Measure, Reservation
from .domain import CustomModel, Dataset, Phase, Validation

_COLUMNS = (
    "id, tenant_id, name, language, description, auto_train, status, run_id, training_requested, "
    "last_error, metrics, progress, finished_at, created_at, updated_at, status_since, watched_since, redrives, "
    "request_attempt, reservation_id, reserved_credits"
)
_ENTRY_COLUMNS = "id, tenant_id, kind, amount, balance_after, model_id, run_id, actor, reason, key, created_at"


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
                measure=None if d["words"] is None else Measure(d["audio_seconds"] or 0.0, d["words"]),
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
                "status_since=coalesce($16, status_since), reservation_id=$17, reserved_credits=$18 "
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
                m.reservation.id if m.reservation else None,
                m.reservation.amount if m.reservation else None,
            )
        except asyncpg.UniqueViolationError as exc:
            raise NameTaken(m.name) from exc
        await self._conn.execute("DELETE FROM model_datasets WHERE model_id=$1", m.id)
        await self._conn.executemany(
            "INSERT INTO model_datasets "
            "(model_id, dataset_id, type, file_name, location, validation, error, audio_seconds, words) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
            [
                (
                    m.id,
                    d.id,
                    int(d.type),
                    d.file_name,
                    _j(d.location),
                    d.validation.value,
                    _j(d.error),
                    d.measure.audio_seconds if d.measure else None,
                    d.measure.words if d.measure else None,
                )
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

    # ---------------------------------------------------------------- credits (voxtrain_models.credits)

    async def account(self, tenant_id: str, *, lock: bool = False) -> Account | None:
        """A tenant's account (None: never seen); ``lock`` holds its row for the transaction (one reservation of
        the tenant at a time)."""
        row = await self._conn.fetchrow(
            "SELECT tenant_id, available, held, spent FROM credit_accounts WHERE tenant_id=$1"
            + (" FOR UPDATE" if lock else ""),
            tenant_id,
        )
        return None if row is None else Account(row["tenant_id"], row["available"], row["held"], row["spent"])

    async def open_account(self, account: Account, grant: Entry | None) -> bool:
        """Create a tenant's account with its opening grant; False (nothing written) if it exists already.

        Runs in a savepoint (or its own transaction), so the account never exists without its grant."""
        async with self._conn.transaction():
            created = await self._conn.fetchval(
                "INSERT INTO credit_accounts (tenant_id, available, held, spent) VALUES ($1,$2,$3,$4) "
                "ON CONFLICT DO NOTHING RETURNING true",
                account.tenant_id,
                account.available,
                account.held,
                account.spent,
            )
            if created and grant is not None:
                await self.append_entry(grant)
        return bool(created)

    async def append_entry(self, entry: Entry) -> bool:
        """Append an entry to the ledger; False (nothing written) if an entry with its ``key`` exists."""
        inserted = await self._conn.fetchval(
            "INSERT INTO credit_entries "
            "(tenant_id, kind, amount, balance_after, model_id, run_id, actor, reason, key) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (key) DO NOTHING RETURNING true",
            entry.tenant_id,
            entry.kind.value,
            entry.amount,
            entry.balance_after,
            entry.model_id,
            entry.run_id,
            entry.actor,
            entry.reason,
            entry.key,
        )
        return bool(inserted)

    async def entry_by_key(self, key: str) -> Entry | None:
        """The ledger's entry with this key, if there is one."""
        row = await self._conn.fetchrow(f"SELECT {_ENTRY_COLUMNS} FROM credit_entries WHERE key=$1", key)
        return None if row is None else _entry(row)

    async def set_account(self, account: Account) -> None:
        """Write a tenant's sums after an entry (inside the entry's transaction)."""
        await self._conn.execute(
            "UPDATE credit_accounts SET available=$2, held=$3, spent=$4, updated_at=now() WHERE tenant_id=$1",
            account.tenant_id,
            account.available,
            account.held,
            account.spent,
        )

    async def entries(self, tenant_id: str, limit: int, before: int | None = None) -> list[Entry]:
        """A tenant's ledger, newest first; ``before``: only entries older than that entry id."""
        rows = await self._conn.fetch(
            f"SELECT {_ENTRY_COLUMNS} FROM credit_entries WHERE tenant_id=$1 AND ($2::bigint IS NULL OR id < $2) "
            "ORDER BY id DESC LIMIT $3",
            tenant_id,
            before,
            limit,
        )
        return [_entry(r) for r in rows]

    async def entry_sums(self, tenant_id: str) -> dict[EntryKind, int]:
        """The sum of a tenant's entries of each kind (to check the account against its ledger)."""
        rows = await self._conn.fetch(
            "SELECT kind, sum(amount) AS total FROM credit_entries WHERE tenant_id=$1 GROUP BY kind", tenant_id
        )
        sums = {k: 0 for k in EntryKind}
        sums.update({EntryKind(r["kind"]): int(r["total"]) for r in rows})
        return sums


def _entry(row: asyncpg.Record) -> Entry:
    return Entry(
        tenant_id=row["tenant_id"],
        kind=EntryKind(row["kind"]),
        amount=row["amount"],
        balance_after=row["balance_after"],
        actor=row["actor"],
        reason=row["reason"],
        model_id=row["model_id"],
        run_id=row["run_id"],
        key=row["key"],
        id=row["id"],
        created_at=row["created_at"],
    )


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
        reservation=None
        if row["reservation_id"] is None
        else Reservation(row["reservation_id"], row["reserved_credits"]),
    )
