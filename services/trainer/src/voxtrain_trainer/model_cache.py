"""Trained models for serving: artifacts fetched from MinIO into a local directory bounded by size, and
loaded decoders kept in a small in-memory cache — both least-recently-used first out.

Each decoder is used by one thread at a time (PocketSphinx decoders are not thread-safe).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minio import Minio

from .ml.decoder import SpeechDecoder
from .ml.transcribe import load_decoder, transcribe_streaming

COMPLETE = ".complete"  # marks a fully fetched model; its mtime is the model's last use


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class ModelCache:
    """Up to ``decoders`` loaded decoders (keyed by run id, ``None`` = base model) and up to ``max_bytes`` of
    fetched model files on disk under ``root``."""

    def __init__(self, minio: Minio, root: Path, *, max_bytes: int, decoders: int = 4) -> None:
        self._minio, self._root, self._max_bytes, self._decoders = minio, root, max_bytes, decoders
        self._items: OrderedDict[uuid.UUID | None, tuple[SpeechDecoder, threading.Lock]] = OrderedDict()
        self._guard = threading.Lock()
        self._disk = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    def model_dir(self, run_id: uuid.UUID, artifacts: dict[str, str]) -> Path:
        """The local directory of a trained model, fetched if needed (then older models may be evicted)."""
        target = self._root / str(run_id)
        marker = target / COMPLETE
        if marker.exists():
            os.utime(marker)
            return target
        tmp = Path(tempfile.mkdtemp(dir=self._root, prefix=".fetch-"))
        try:
            for uri in artifacts.values():
                bucket, key = uri.removeprefix("s3://").split("/", 1)
                self._minio.fget_object(bucket, key, str(tmp / Path(key).name))
            (tmp / COMPLETE).touch()
            with self._disk:
                shutil.rmtree(target, ignore_errors=True)
                tmp.rename(target)
                self._evict(keep=target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def _evict(self, keep: Path) -> None:
        """Remove least recently used models until the cache fits (never ``keep``, the one just fetched)."""
        entries = sorted(
            ((d / COMPLETE).stat().st_mtime if (d / COMPLETE).exists() else 0.0, d) for d in self._models()
        )
        total = sum(_size(d) for _, d in entries)
        for _, d in entries:
            if total <= self._max_bytes:
                break
            if d == keep:
                continue
            total -= _size(d)
            shutil.rmtree(d, ignore_errors=True)  # a loaded decoder keeps working: its files are in memory

    def _models(self) -> list[Path]:
        return sorted(d for d in self._root.iterdir() if d.is_dir() and not d.name.startswith("."))

    def disk_bytes(self) -> int:
        return sum(_size(d) for d in self._models())

    def transcribe(
        self,
        run_id: uuid.UUID | None,
        artifacts: dict[str, str] | None,
        audio: Path,
        on_progress: Callable[[float], None] | None = None,
    ) -> Any:
        """Text and word times of ``audio`` under the model, decoded piece by piece in bounded memory."""
        with self._guard:
            entry = self._items.get(run_id)
            if entry is not None:
                self._items.move_to_end(run_id)
        if entry is None:
            model_dir = self.model_dir(run_id, artifacts or {}) if run_id else None
            entry = (load_decoder(model_dir), threading.Lock())
            with self._guard:
                self._items[run_id] = entry
                while len(self._items) > self._decoders:
                    self._items.popitem(last=False)
        elif run_id is not None:
            marker = self._root / str(run_id) / COMPLETE
            if marker.exists():
                os.utime(marker)
        decoder, lock = entry
        with lock:
            return transcribe_streaming(decoder, audio, on_progress)
