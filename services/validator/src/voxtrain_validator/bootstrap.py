"""Wires the validator service: the one place that builds its dependencies."""

from __future__ import annotations

import asyncio
from pathlib import Path

from voxtrain_shared import events as ev
from voxtrain_shared.service import Service
from voxtrain_shared.settings import ValidatorSettings
from voxtrain_shared.storage import make_client

from . import jobs
from .checks import storage_validator

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: ValidatorSettings) -> Service:
    svc = Service(settings, migrations=MIGRATIONS, title="voxtrain validator",
                  description="Checks what is really inside every dataset (health and metrics only).")
    minio = make_client(settings.minio)

    async def publish_dead(topic: str, value: bytes, key: bytes | None, headers: dict[str, str]) -> None:
        await svc.broker.publish(value, topic=topic, key=key, headers=headers)

    workers = jobs.Workers(lambda: svc.pool, svc.schema, svc.topics, storage_validator(minio), publish_dead,
                           max_attempts=settings.max_attempts, retry_base_seconds=settings.retry_base_seconds,
                           lease_seconds=settings.lease_seconds)

    async def on_dataset(env: ev.Envelope) -> None:
        async with svc.pool.acquire() as conn, conn.transaction():
            if env.type == "DatasetUploaded":
                await jobs.record(conn, svc.schema, env)
            else:
                await jobs.forget(conn, svc.schema, env)
        workers.wake()

    async def check_minio() -> None:
        await asyncio.to_thread(minio.list_buckets)

    async def start(s: Service) -> None:
        s.background(workers.run(settings.concurrency, s.stopping))

    svc.checks["minio"] = check_minio
    svc.on_start(start)
    svc.consumer(svc.topics.datasets, "datasets", on_dataset, types={"DatasetUploaded", "DatasetDeleted"})
    svc.workers = workers  # type: ignore[attr-defined]
    return svc
