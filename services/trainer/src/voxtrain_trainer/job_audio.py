"""Where asynchronous transcription jobs keep their uploads: objects in the service's MinIO bucket, copied
between a local file and storage in parts (never whole in memory)."""

from __future__ import annotations

import uuid
from pathlib import Path

from minio import Minio

PART_SIZE = 16 * 2**20


def job_key(tenant_id: str, job_id: uuid.UUID, ext: str) -> str:
    return f"transcriptions/{tenant_id}/{job_id}/audio{ext}"


class JobAudio:
    def __init__(self, minio: Minio, bucket: str) -> None:
        self._minio, self._bucket = minio, bucket

    def put(self, key: str, path: Path) -> None:
        self._minio.fput_object(self._bucket, key, str(path), part_size=PART_SIZE)

    def get(self, key: str, path: Path) -> None:
        self._minio.fget_object(self._bucket, key, str(path))

    def remove(self, key: str) -> None:
        self._minio.remove_object(self._bucket, key)
