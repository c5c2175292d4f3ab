"""Wires the validator service: the one place that builds its dependencies."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from pathlib import Path

from voxtrain_shared.service import Service
from voxtrain_shared.settings import ValidatorSettings
from voxtrain_shared.storage import make_client

from . import consumers, handlers
from .domain import JobRules
from .rules.memory import MemoryBudget
from .storage import Validator, object_validator, reachable
from .workers import JobLoop

MIGRATIONS = Path(__file__).parent / "migrations"


def rules_of(settings: ValidatorSettings) -> JobRules:
    return JobRules(
        max_attempts=settings.max_attempts,
        lease_seconds=settings.lease_seconds,
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=settings.retry_max_seconds,
    )


def build(
    settings: ValidatorSettings,
    *,
    validate: Validator | None = None,
    owner: str | None = None,
    poll_seconds: float = 1.0,
) -> Service:
    """The validator service. Tests may pass ``validate`` (the content check of one dataset, instead of reading
    object storage) and ``owner`` (the worker's name in its leases)."""
    svc = Service(
        settings,
        migrations=MIGRATIONS,
        title="voxtrain validator",
        description="Checks what is really inside every dataset (health and metrics only).",
    )
    minio = make_client(settings.minio)
    uow = handlers.unit_of_work(lambda: svc.pool, svc.schema, svc.topics)
    jobs = JobLoop(
        uow,
        validate or object_validator(minio, MemoryBudget(settings.check_memory_mb * 2**20)),
        rules_of(settings),
        owner=owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        concurrency=settings.concurrency,
        poll_seconds=poll_seconds,
        health=svc.health,
        tracing=svc.tracing,
    )
    svc.consumer(svc.topics.datasets, "datasets", consumers.datasets(uow, jobs.wake), types=consumers.DATASET_TYPES)
    svc.consumer(
        svc.topics.models, "requests", consumers.requests(uow, jobs.wake, jobs.cancel), types=consumers.REQUEST_TYPES
    )
    probe = reachable(minio, settings.minio.bucket)

    async def check_minio() -> None:
        await asyncio.to_thread(probe)

    async def start_jobs(s: Service) -> None:
        s.background(jobs.run(s.stopping))

    svc.checks["minio"] = check_minio
    svc.on_start(start_jobs)
    return svc
