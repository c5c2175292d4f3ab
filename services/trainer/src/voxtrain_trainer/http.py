"""HTTP routes of the trainer service (thin): transcription with a trained model (status 4) or the base
model — how a model is "available for use" — and export of a trained model as one archive."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from voxtrain_shared.auth import ReadPrincipal

from . import handlers as h
from . import uploads

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


def router(
    uow: h.TrainerWork,
    cache: h.Transcriber,
    exporter: h.Exporter,
    *,
    max_bytes: int,
    max_seconds: float,
    duration_of: Callable[[Path], float],
) -> APIRouter:
    r = APIRouter(prefix="/v1/models", tags=["transcriptions"])

    @r.post(
        "/{model_id}/transcriptions",
        response_model=TranscriptionView,
        openapi_extra=UPLOAD_BODY,
        responses={413: {"description": "body or audio duration over the limit (file_too_large)"}},
    )
    async def transcribe(model_id: str, principal: ReadPrincipal, request: Request) -> TranscriptionView:
        """Transcribe an audio file (multipart field `file`) with a trained model (status 4, Success) or with
        `base`. Bodies over the size limit are refused unread, audio over the duration limit before decoding."""
        uploads.refuse_declared_size(request, max_bytes)
        model = await h.model_for_transcription(uow, principal.tenant_id, model_id)
        upload = await uploads.receive_file(request, "file", max_bytes)
        try:
            name = upload.filename or "audio"
            ext = h.check_audio_name(name)
            with tempfile.TemporaryDirectory() as tmp:
                path = await uploads.save(upload, Path(tmp) / f"audio{ext}")
                await upload.close()
                t = await h.transcribe(cache, model, path, name, max_seconds, duration_of)
        finally:
            await upload.close()
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
