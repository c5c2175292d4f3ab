"""Transcription jobs decode in child processes: PocketSphinx holds the GIL while it recognises an utterance
(a 25 s piece stalled the event loop for tens of seconds on this machine), so decoding in a thread of the
service would stall its HTTP routes, consumers and the training supervisor. A pool of ``workers`` processes
decodes one file each at a time, streamed in bounded memory; progress comes back through a small file."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Protocol

from .ml.decoder import SpeechDecoder, Transcript
from .ml.transcribe import load_decoder, transcribe_streaming

POLL_SECONDS = 0.5
_decoders: dict[Path | None, SpeechDecoder] = {}  # in a child: the last model it loaded


def decode_file(model_dir: Path | None, audio: Path, progress: Path) -> Transcript:
    """(In a child process.) Transcribe ``audio``, writing the seconds done to ``progress`` after each piece."""
    decoder = _decoders.get(model_dir)
    if decoder is None:
        _decoders.clear()
        decoder = _decoders[model_dir] = load_decoder(model_dir)

    def note(seconds: float) -> None:
        tmp = progress.with_suffix(".tmp")
        tmp.write_text(f"{seconds:.3f}")
        tmp.replace(progress)

    return transcribe_streaming(decoder, audio, note)


class ModelFiles(Protocol):
    def model_dir(self, run_id: uuid.UUID, artifacts: dict[str, str]) -> Path: ...


class DecodingProcesses:
    """Transcribes files in a pool of ``workers`` child processes (the ``handlers.Transcriber`` of jobs)."""

    def __init__(self, models: ModelFiles, *, workers: int) -> None:
        self._models, self._workers = models, workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    def _broken(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def transcribe(
        self,
        run_id: uuid.UUID | None,
        artifacts: dict[str, str] | None,
        audio: Path,
        on_progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        """Blocks the calling thread (not the GIL) until the child is done. A child that died raises
        ``BrokenProcessPool`` (the job is taken up again once its lease runs out); the pool is renewed."""
        model_dir = self._models.model_dir(run_id, artifacts or {}) if run_id is not None else None
        progress = audio.with_name(audio.name + ".progress")
        pool = self._executor()
        try:
            future: Future[Transcript] = pool.submit(decode_file, model_dir, audio, progress)
            while True:
                try:
                    return future.result(timeout=POLL_SECONDS)
                except TimeoutError:
                    if on_progress is not None and progress.exists():
                        on_progress(float(progress.read_text() or 0.0))
        except BrokenProcessPool:
            self._broken(pool)
            raise

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
