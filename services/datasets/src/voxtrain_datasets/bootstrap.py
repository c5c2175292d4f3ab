"""Wires the datasets service: the one place that builds its dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from voxtrain_shared.logs import get_logger
from voxtrain_shared.loops import Loop
from voxtrain_shared.service import Service
from voxtrain_shared.settings import DatasetsSettings
from voxtrain_shared.storage import BucketMissing, make_client
from voxtrain_shared.uow import UnitOfWork

from . import consumers, http, workers
from .domain import Limits, streaming_part_size
from .handlers import Deps
from .repository import DatasetRepository
from .storage import ByteBudget, ObjectStore, S3ObjectStore, StorageUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"
log = get_logger(__name__)


@dataclass(frozen=True)
class Datasets:
    """The built service and what its tests drive directly: the use cases' dependencies and the sweeper."""

    service: Service
    deps: Deps
    sweeper: Loop


def assemble(
    settings: DatasetsSettings, *, store: ObjectStore | None = None, sweep_every: float = workers.SWEEP_EVERY_SECONDS
) -> Datasets:
    """The datasets service, wired. ``store`` replaces the S3 store (tests pass a spy)."""
    svc = Service(
        settings,
        migrations=MIGRATIONS,
        title="voxtrain datasets",
        description="Dataset uploads (streamed or resumable) into object storage, for custom models.",
    )
    objects = store or S3ObjectStore(
        make_client(settings.minio), make_client(settings.minio, public=True), settings.minio.bucket
    )
    uow = UnitOfWork(lambda: svc.pool, svc.schema, svc.topics, DatasetRepository)
    quota = settings.uploads
    part = streaming_part_size(settings.part_size_bytes, settings.max_file_bytes)
    if quota.memory_budget_bytes < 2 * part:
        raise ValueError(
            f"VOXTRAIN_UPLOADS__MEMORY_BUDGET_BYTES={quota.memory_budget_bytes} is below two upload parts "
            f"({2 * part} bytes with these part-size and file-size settings): raise it."
        )
    deps = Deps(
        uow=uow,
        store=objects,
        limits=Limits(
            max_file_bytes=settings.max_file_bytes,
            max_files=settings.max_files,
            part_size=settings.part_size_bytes,
            max_concurrent_per_tenant=quota.max_concurrent_per_tenant,
            max_sessions_per_tenant=quota.max_sessions_per_tenant,
        ),
        slot_lease=timedelta(seconds=quota.slot_lease_seconds),
        budget=ByteBudget(quota.memory_budget_bytes, max_wait_seconds=quota.memory_budget_wait_seconds),
        session_ttl=timedelta(seconds=settings.upload_session_ttl_seconds),
        presign_ttl=timedelta(seconds=settings.presign_ttl_seconds),
        unknown_model_grace=timedelta(seconds=settings.unknown_model_grace_seconds),
    )
    svc.app.include_router(http.router(deps))
    http.install_errors(svc.app)
    svc.checks["minio"] = objects.ping

    t = svc.topics
    svc.consumer(t.models, "models", consumers.models(uow), types=consumers.MODEL_TYPES)
    svc.consumer(t.status, "status", consumers.status(uow), types=consumers.STATUS_TYPES)
    svc.consumer(t.validation, "validation", consumers.validation(uow), types=consumers.VALIDATION_TYPES)
    svc.consumer(t.datasets, "published", consumers.published(uow), types=consumers.PUBLISHED_TYPES)

    sweeper = workers.sweeper(deps, every=sweep_every, health=svc.health)

    async def start(service: Service) -> None:
        try:
            await objects.ensure_bucket()
        except (StorageUnavailable, BucketMissing) as exc:  # not ready until it answers; the sweeper keeps trying
            log.warning("storage_unavailable_at_start", error=str(exc))
        service.background(sweeper.run(service.stopping))

    async def stop(_service: Service) -> None:
        objects.close()

    svc.on_start(start)
    svc.on_stop(stop)
    return Datasets(svc, deps, sweeper)


def build(
    settings: DatasetsSettings, *, store: ObjectStore | None = None, sweep_every: float = workers.SWEEP_EVERY_SECONDS
) -> Service:
    """The datasets service (see :func:`assemble` for its parts)."""
    return assemble(settings, store=store, sweep_every=sweep_every).service
