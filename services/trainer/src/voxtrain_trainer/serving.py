"""Transcription with a trained model (status 4) or the base model: how a model is "available for use".

Artifacts of a succeeded run are fetched once into a local cache; loaded decoders are kept in a
small cache, each used by one thread at a time (PocketSphinx decoders are not thread-safe).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, File, UploadFile
from minio import Minio
from pydantic import BaseModel

from voxtrain_shared.auth import CurrentPrincipal
from voxtrain_shared.errors import ApiError
from voxtrain_shared.vocab import DatasetType, ErrorCode

from .ml.decoder import SpeechDecoder
from .ml.transcribe import load_decoder, transcribe_with

BASE = "base"
MAX_AUDIO_BYTES = 512 * 1024 * 1024


class Word(BaseModel):
    word: str
    start: float
    end: float


class TranscriptionView(BaseModel):
    model: str
    text: str
    words: list[Word]


class DecoderCache:
    """Up to ``size`` loaded decoders, keyed by run id (``None`` = base model)."""

    def __init__(self, minio: Minio, root: Path, size: int = 4) -> None:
        self._minio, self._root, self._size = minio, root, size
        self._items: OrderedDict[Any, tuple[SpeechDecoder, threading.Lock]] = OrderedDict()
        self._guard = threading.Lock()

    def _model_dir(self, run_id: uuid.UUID, artifacts: dict[str, str]) -> Path:
        target = self._root / str(run_id)
        if (target / ".complete").exists():
            return target
        tmp = Path(tempfile.mkdtemp(dir=self._root))
        for uri in artifacts.values():
            bucket, key = uri.removeprefix("s3://").split("/", 1)
            self._minio.fget_object(bucket, key, str(tmp / Path(key).name))
        (tmp / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        return target

    def transcribe(self, run_id: uuid.UUID | None, artifacts: dict[str, str] | None, audio: Path) -> Any:
        with self._guard:
            entry = self._items.get(run_id)
            if entry is not None:
                self._items.move_to_end(run_id)
        if entry is None:
            model_dir = self._model_dir(run_id, artifacts or {}) if run_id else None
            entry = (load_decoder(model_dir), threading.Lock())
            with self._guard:
                self._items[run_id] = entry
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
        decoder, lock = entry
        with lock:
            return transcribe_with(decoder, audio)


async def succeeded_run(conn: asyncpg.Connection, tenant_id: str, model_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT run_id, artifacts FROM runs WHERE tenant_id=$1 AND model_id=$2 AND status='succeeded' "
        "AND NOT model_deleted ORDER BY finished_at DESC LIMIT 1", tenant_id, model_id)


def router(pool: Any, cache: DecoderCache) -> APIRouter:
    r = APIRouter(prefix="/v1/models", tags=["transcriptions"])

    @r.post("/{model_id}/transcriptions", response_model=TranscriptionView)
    async def transcribe(model_id: str, principal: CurrentPrincipal,
                         file: Annotated[UploadFile, File(description="audio: .wav .mp3 .m4a .flac")]) -> TranscriptionView:
        """Transcribe an audio file with a trained model (status 4, Success) or with `base`."""
        name = file.filename or "audio"
        ext = Path(name).suffix.lower()
        if ext not in DatasetType.AUDIO.extensions:
            raise ApiError(422, ErrorCode.INVALID_AUDIO_FORMAT,
                           f"{name}: use one of {', '.join(DatasetType.AUDIO.extensions)}")
        run_id, artifacts = None, None
        if model_id != BASE:
            try:
                mid = uuid.UUID(model_id)
            except ValueError:
                raise ApiError(404, ErrorCode.NOT_FOUND, f"No model {model_id}.") from None
            async with pool().acquire() as conn:
                row = await succeeded_run(conn, principal.tenant_id, mid)
            if row is None:
                raise ApiError(409, ErrorCode.INVALID_STATUS,
                               "This model has no successful training (status 4 Success needed): train it first, "
                               "or use the base model.")
            run_id, artifacts = row["run_id"], json.loads(row["artifacts"])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"audio{ext}"
            size = 0
            with path.open("wb") as out:
                while chunk := await file.read(1024 * 1024):
                    size += len(chunk)
                    if size > MAX_AUDIO_BYTES:
                        raise ApiError(413, ErrorCode.FILE_TOO_LARGE,
                                       f"{name}: transcription takes files up to {MAX_AUDIO_BYTES // 2**20} MB.")
                    out.write(chunk)
            try:
                t = await asyncio.to_thread(cache.transcribe, run_id, artifacts, path)
            except (ValueError, RuntimeError) as exc:
                raise ApiError(422, ErrorCode.INVALID_AUDIO_FORMAT, f"{name}: could not decode the audio ({exc}).") from None
        return TranscriptionView(model=str(run_id and model_id or BASE), text=t.text,
                                 words=[Word(word=w.word, start=round(w.start, 3), end=round(w.end, 3)) for w in t.words])

    return r
