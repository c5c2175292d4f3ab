"""Export a trained model as one tar.gz streamed from MinIO (adapter; what goes in is ``export``'s).

:meth:`ModelExporter.open` reads the run's small files (``decoder.json``, ``model_card.md``) and the sizes of
the others at once — so a storage outage is known before the response starts — and returns the archive as a
lazy iterator of chunks that reads each artifact from MinIO only while it is written (``archive.tar_gz``).
Blocking: call ``open`` in a thread; the iterator is consumed in one too (Starlette does that for a sync
iterator).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from minio import Minio

from . import archive, export
from .ml.model_files import CARD_FILE, DECODER_FILE

CHUNK = 1 << 20


def _split(uri: str) -> tuple[str, str]:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return bucket, key


class ModelExporter:
    """Builds export archives of trained runs from their artifacts in ``minio`` and the base acoustic model
    directory ``base_acoustic``."""

    def __init__(self, minio: Minio, base_acoustic: Path) -> None:
        self._minio, self._base = minio, base_acoustic

    def _read(self, uri: str) -> bytes:
        response = self._minio.get_object(*_split(uri))
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def _object(self, name: str, uri: str) -> archive.Member:
        size = self._minio.stat_object(*_split(uri)).size or 0

        def chunks() -> Iterator[bytes]:
            response = self._minio.get_object(*_split(uri))
            try:
                yield from response.stream(CHUNK)
            finally:
                response.close()
                response.release_conn()

        return archive.Member(name, size, chunks)

    def _file(self, name: str, path: Path) -> archive.Member:
        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        return archive.Member(name, path.stat().st_size, chunks)

    def open(
        self, model_id: uuid.UUID, run_id: uuid.UUID, artifacts: dict[str, str], trained_at: datetime | None
    ) -> Iterator[bytes]:
        """The archive of one trained run, as chunks (see module contract)."""
        by_name = {uri.rsplit("/", 1)[-1]: uri for uri in artifacts.values()}
        if DECODER_FILE not in by_name:
            raise ValueError(f"the trained model has no {DECODER_FILE}")
        decoder = json.loads(self._read(by_name[DECODER_FILE]))
        p = export.plan(decoder, artifacts, [f.name for f in self._base.iterdir() if f.is_file()])
        members = [
            self._object(name, src.uri) if isinstance(src, export.Artifact) else self._file(name, self._base / src.name)
            for name, src in p.files
        ]
        now = datetime.now(UTC)
        card = self._read(by_name[CARD_FILE]).decode() if CARD_FILE in by_name else ""
        card = export.model_card(model_id, run_id, trained_at, now, p, card)
        members += [
            archive.from_bytes(export.SETTINGS_FILE, export.settings_json(p)),
            archive.from_bytes(export.CARD_FILE, card.encode()),
        ]
        return archive.tar_gz(export.archive_root(model_id), members, mtime=int(now.timestamp()))
