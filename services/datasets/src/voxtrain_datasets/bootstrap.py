"""Wires the datasets service: the one place that builds its dependencies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from voxtrain_shared.logs import get_logger
from voxtrain_shared.service import Service
from voxtrain_shared.settings import DatasetsSettings
from voxtrain_shared.storage import make_client

from . import consumers, handlers, http
from .domain import Limits
from .storage import S3ObjectStore, StorageUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"
SWEEP_EVERY_SECONDS = 60.0
log = get_logger(__name__)


def build(settings: DatasetsSettings, *, store: S3ObjectStore | None = None,
          sweep_every: float = SWEEP_EVERY_SECONDS) -> Service:
    """The datasets service; ``service.app.state.datasets`` holds its :class:`handlers.Deps`."""
    svc = Service(settings, migrations=MIGRATIONS, title="voxtrain datasets",
                  description="Dataset uploads (streamed or resumable) into object storage, for custom models.")
    store = store or S3ObjectStore(make_client(settings.minio), make_client(settings.minio, public=True),
                                   settings.minio.bucket)
    uow = handlers.UnitOfWork(lambda: svc.pool, svc.schema, svc.topics, lambda conn: conn)
    deps = handlers.Deps(
        uow=uow, store=store,
        limits=Limits(max_file_bytes=settings.max_file_bytes, max_files=settings.max_files,
                      part_size=settings.part_size_bytes),
        session_ttl=timedelta(seconds=settings.upload_session_ttl_seconds),
        presign_ttl=timedelta(seconds=settings.presign_ttl_seconds),
        unknown_model_grace=timedelta(seconds=settings.unknown_model_grace_seconds),
    )
    svc.app.state.datasets = deps
    svc.app.include_router(http.router(deps))
    http.install_errors(svc.app)
    svc.checks["minio"] = store.ping

    t = svc.topics
    svc.consumer(t.models, "models", consumers.models(uow), types=consumers.MODEL_TYPES)
    svc.consumer(t.status, "status", consumers.status(uow), types=consumers.STATUS_TYPES)
    svc.consumer(t.validation, "validation", consumers.validation(uow), types=consumers.VALIDATION_TYPES)
    svc.consumer(t.datasets, "published", consumers.published(uow), types=consumers.PUBLISHED_TYPES)

    async def start(service: Service) -> None:
        try:
            await store.ensure_bucket()
        except StorageUnavailable as exc:  # not ready until it answers; the sweeper keeps trying
            log.warning("storage_unavailable_at_start", error=str(exc))
        service.background(handlers.sweep_forever(deps, service.stopping, sweep_every))

    async def stop(_service: Service) -> None:
        store.close()

    svc.on_start(start)
    svc.on_stop(stop)
    return svc
