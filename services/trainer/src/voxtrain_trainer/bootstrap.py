"""Wires the trainer service: the one place that builds its dependencies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from voxtrain_shared.service import Service
from voxtrain_shared.settings import TrainerSettings
from voxtrain_shared.storage import ensure_bucket, make_client

from . import consumers, handlers, http
from .admission import Places
from .audio_probe import duration_seconds
from .decoding import DecodingProcesses
from .exporter import ModelExporter
from .job_audio import JobAudio
from .ml.base_model import base_model_files
from .model_cache import ModelCache
from .processes import WorkerProcess, WorkerProcesses
from .workers import Supervisor, TranscriptionSweeper, TranscriptionWorkers

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: TrainerSettings, *, on_worker_started: Callable[[WorkerProcess], None] | None = None) -> Service:
    """The trainer service; ``on_worker_started`` is told of each training worker process (tests)."""
    svc = Service(
        settings,
        migrations=MIGRATIONS,
        title="voxtrain trainer",
        description="Trains domain language models, evaluates them against the base model, transcribes.",
    )
    minio = make_client(settings.minio)
    uow = handlers.unit_of_work(lambda: svc.pool, svc.schema, svc.topics)
    supervisor = Supervisor(
        uow, WorkerProcesses(settings, on_started=on_worker_started), settings, svc.health, tracing=svc.tracing
    )
    cache = ModelCache(minio, Path(settings.work_dir) / "serving", max_bytes=settings.model_cache_bytes)
    store = JobAudio(minio, settings.minio.bucket)
    decoding = DecodingProcesses(cache, workers=settings.parallel_transcriptions)
    # the synchronous route decodes in child processes of its own too: PocketSphinx holds the GIL while it
    # decodes, so a thread would stall this service's routes, consumers and supervisor; its own pool keeps
    # short requests from waiting behind hour-long jobs
    answering = DecodingProcesses(cache, workers=settings.parallel_sync_transcriptions)
    transcriptions = TranscriptionWorkers(uow, store, decoding, settings, svc.health)
    sweeper = TranscriptionSweeper(uow, store, settings, svc.health)
    limits = http.Limits(
        settings.transcription_max_bytes,
        settings.transcription_max_seconds,
        settings.transcription_async_max_bytes,
        settings.transcription_async_max_seconds,
    )
    svc.app.include_router(
        http.router(
            uow,
            answering,
            ModelExporter(minio, base_model_files().hmm),
            limits=limits,
            duration_of=duration_seconds,
            jobs=http.Jobs(store, transcriptions.wake),
            places=Places(settings.parallel_sync_transcriptions, settings.transcription_busy_wait_seconds),
        )
    )
    svc.app.include_router(http.jobs_router(uow))
    svc.consumer(
        svc.topics.training_commands, "requests", consumers.requests(uow, supervisor.wake), types={"TrainingRequested"}
    )
    svc.consumer(svc.topics.models, "models", consumers.models(uow, supervisor.cancel), types=consumers.MODEL_TYPES)

    async def check_minio() -> None:
        await asyncio.to_thread(minio.bucket_exists, settings.minio.bucket)

    async def start(s: Service) -> None:
        await asyncio.to_thread(ensure_bucket, minio, settings.minio.bucket)
        s.background(supervisor.run(s.stopping))
        s.background(transcriptions.run(s.stopping))
        s.background(sweeper.run(s.stopping))

    async def stop(_: Service) -> None:
        decoding.close()
        answering.close()

    svc.checks["minio"] = check_minio
    svc.on_start(start)
    svc.on_stop(stop)
    return svc
