"""Wires the trainer service: the one place that builds its dependencies."""

from __future__ import annotations

from pathlib import Path

from voxtrain_shared import events as ev
from voxtrain_shared.service import Service
from voxtrain_shared.settings import TrainerSettings
from voxtrain_shared.storage import ensure_bucket, make_client

from . import runs, serving

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: TrainerSettings) -> Service:
    svc = Service(settings, migrations=MIGRATIONS, title="voxtrain trainer",
                  description="Trains domain language models, evaluates them against the base model, transcribes.")
    minio = make_client(settings.minio)
    supervisor = runs.Supervisor(lambda: svc.pool, svc.schema, svc.topics, settings)
    cache_dir = Path(settings.work_dir) / "serving"
    cache_dir.mkdir(parents=True, exist_ok=True)
    svc.app.include_router(serving.router(lambda: svc.pool, serving.DecoderCache(minio, cache_dir)))

    async def on_request(env: ev.Envelope) -> None:
        async with svc.pool.acquire() as conn, conn.transaction():
            await runs.record(conn, svc.schema, env)
        supervisor.wake()

    async def on_model(env: ev.Envelope) -> None:
        async with svc.pool.acquire() as conn, conn.transaction():
            await runs.model_deleted(conn, svc.schema, env)

    async def check_minio() -> None:
        import asyncio

        await asyncio.to_thread(minio.bucket_exists, settings.minio.bucket)

    async def start(s: Service) -> None:
        import asyncio

        await asyncio.to_thread(ensure_bucket, minio, settings.minio.bucket)
        s.background(supervisor.run(s.stopping))

    svc.checks["minio"] = check_minio
    svc.on_start(start)
    svc.consumer(svc.topics.training_commands, "requests", on_request, types={"TrainingRequested"})
    svc.consumer(svc.topics.models, "models", on_model, types={"ModelDeleted"})
    svc.supervisor = supervisor  # type: ignore[attr-defined]  # tests reach in to reap on demand
    return svc
