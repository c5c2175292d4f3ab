"""HTTP routes of the trainer service (thin): transcription with a trained model (status 4) or the base
model — how a model is "available for use" — and export of a trained model as one archive."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from voxtrain_shared.auth import ReadPrincipal

from . import handlers as h
from . import uploads
from .admission import Places
from .domain import TranscriptionJob

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "audio: .wav .mp3 .m4a .flac"}
                    },
                }
            }
        },
    }
}


class Word(BaseModel):
    word: str
    start: float
    end: float


class TranscriptionView(BaseModel):
    model: str
    text: str
    words: list[Word]


class JobProgress(BaseModel):
    percent: float
    audio_seconds: float
    done_seconds: float


class JobResult(BaseModel):
    text: str
    words: list[Word]


class JobError(BaseModel):
    code: str
    message: str


class TranscriptionJobView(BaseModel):
    job_id: str
    model: str
    file_name: str
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: JobProgress
    result: JobResult | None = None
    error: JobError | None = None


def job_view(job: TranscriptionJob) -> TranscriptionJobView:
    return TranscriptionJobView(
        job_id=str(job.job_id),
        model=job.model,
        file_name=job.file_name,
        status=job.status.value,
        progress=JobProgress(
            percent=job.percent, audio_seconds=round(job.audio_seconds, 3), done_seconds=round(job.done_seconds, 3)
        ),
        result=None if job.result is None else JobResult.model_validate(job.result),
        error=None if job.error is None else JobError.model_validate(job.error),
    )


def job_location(job: TranscriptionJob) -> str:
    return f"/v1/transcriptions/{job.job_id}"


@dataclass(frozen=True)
class Limits:
    """Body and duration caps of a transcription: answered at once (sync) and as a job (async)."""

    max_bytes: int
    max_seconds: float
    async_max_bytes: int
    async_max_seconds: float


@dataclass(frozen=True)
class Jobs:
    """Where job uploads go, and how a new job wakes this replica's transcription workers."""

    store: h.AudioStore
    wake: Callable[[], None]


def router(
    uow: h.TrainerWork,
    cache: h.Transcriber,
    exporter: h.Exporter,
    *,
    limits: Limits,
    duration_of: Callable[[Path], float],
    jobs: Jobs,
    places: Places | None = None,
) -> APIRouter:
    """``places``: the synchronous route's decoders, each request waiting a bounded time for one."""
    r = APIRouter(prefix="/v1/models", tags=["transcriptions"])

    @r.post(
        "/{model_id}/transcriptions",
        response_model=TranscriptionView,
        openapi_extra=UPLOAD_BODY,
        responses={
            202: {
                "model": TranscriptionJobView,
                "description": "mode=async: the job is queued; poll the Location (/v1/transcriptions/{job_id})",
            },
            413: {"description": "body or audio duration over the limit of the mode (file_too_large)"},
            503: {"description": "mode=sync: every decoder stayed busy for the wait (server_busy, Retry-After)"},
        },
    )
    async def transcribe(
        model_id: str, principal: ReadPrincipal, request: Request, mode: Literal["sync", "async"] = "sync"
    ) -> Any:
        """Transcribe an audio file (multipart field `file`) with a trained model (status 4, Success) or with
        `base`. `mode=sync` (default) answers with the transcript; `mode=async` answers 202 at once with a job
        to poll at `/v1/transcriptions/{job_id}` (for long audio: a larger duration limit, decoded in the
        background). Bodies over the size limit are refused unread, audio over the duration limit before
        decoding."""
        background = mode == "async"
        max_bytes = limits.async_max_bytes if background else limits.max_bytes
        uploads.refuse_declared_size(request, max_bytes)
        model = await h.model_for_transcription(uow, principal.tenant_id, model_id)
        upload = await uploads.receive_file(request, "file", max_bytes)
        try:
            name = upload.filename or "audio"
            ext = h.check_audio_name(name)
            with tempfile.TemporaryDirectory() as tmp:
                path = await uploads.save(upload, Path(tmp) / f"audio{ext}")
                await upload.close()
                if background:
                    job = await h.submit_transcription(
                        uow, jobs.store, principal.tenant_id, model, path, name, limits.async_max_seconds, duration_of
                    )
                else:
                    advice = (
                        f"Send it with ?mode=async (up to {limits.async_max_seconds:g} s), or cut it into shorter "
                        "files."
                    )
                    t = await h.transcribe(
                        cache, model, path, name, limits.max_seconds, duration_of, advice=advice, places=places
                    )
        finally:
            await upload.close()
        if background:
            jobs.wake()
            return JSONResponse(
                job_view(job).model_dump(mode="json"), status_code=202, headers={"location": job_location(job)}
            )
        return TranscriptionView(
            model=model.name,
            text=t.text,
            words=[Word(word=w.word, start=round(w.start, 3), end=round(w.end, 3)) for w in t.words],
        )

    @r.get(
        "/{model_id}/export",
        response_class=StreamingResponse,
        tags=["export"],
        responses={
            200: {"content": {"application/gzip": {}}, "description": "voxtrain-model-<id>.tar.gz, streamed"},
            404: {"description": "no trained model of this tenant with this id (not_found)"},
            409: {"description": "the model has no successful training (invalid_status)"},
            503: {"description": "the model's files cannot be read right now (storage_unavailable)"},
        },
    )
    async def export(model_id: str, principal: ReadPrincipal) -> StreamingResponse:
        """The trained model (status 4) as one tar.gz to decode with stock PocketSphinx outside voxtrain: LM,
        dictionary, complete acoustic model directory, decoder settings, model card and SHA-256 manifest."""
        model = await h.model_for_export(uow, principal.tenant_id, model_id)
        chunks = await h.open_export(exporter, model)
        name = f"voxtrain-model-{model.model_id}.tar.gz"
        return StreamingResponse(
            chunks, media_type="application/gzip", headers={"content-disposition": f'attachment; filename="{name}"'}
        )

    return r


def jobs_router(uow: h.TrainerWork) -> APIRouter:
    r = APIRouter(prefix="/v1/transcriptions", tags=["transcriptions"])

    @r.get(
        "/{job_id}",
        response_model=TranscriptionJobView,
        responses={404: {"description": "no transcription job of this tenant with this id (not_found)"}},
    )
    async def transcription(job_id: str, principal: ReadPrincipal) -> TranscriptionJobView:
        """An asynchronous transcription job: status queued, running, succeeded or failed; progress in seconds
        of audio decoded; once it succeeded, the text and each word with its start and end in seconds."""
        return job_view(await h.transcription_job(uow, principal.tenant_id, job_id))

    return r
