"""An in-memory :class:`~voxtrain_datasets.storage.ObjectStore` (the contract tests hold it to the real one)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta

from voxtrain_datasets.storage import ReceivedPart, StorageUnavailable, UploadGone


class FakeObjectStore:
    def __init__(self, bucket: str = "fake", keep_bytes: bool = True) -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, tuple[str, dict[int, bytes | int]]] = {}  # upload id -> (key, parts or sizes)
        self.keep_bytes = keep_bytes  # False: count sizes only (memory tests)
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StorageUnavailable("fake store is down")

    async def ensure_bucket(self) -> None:
        self._check()

    async def ping(self) -> None:
        self._check()

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self._check()
        self.objects[key] = bytes(data)

    async def start_multipart(self, key: str, content_type: str) -> str:
        self._check()
        upload_id = uuid.uuid4().hex
        self.uploads[upload_id] = (key, {})
        return upload_id

    def _upload(self, key: str, upload_id: str) -> dict[int, bytes | int]:
        if upload_id not in self.uploads or self.uploads[upload_id][0] != key:
            raise UploadGone(upload_id)
        return self.uploads[upload_id][1]

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        self._check()
        await asyncio.sleep(0)
        self._upload(key, upload_id)[number] = bytes(data) if self.keep_bytes else len(data)
        return hashlib.md5(str(number).encode()).hexdigest()

    async def list_parts(self, key: str, upload_id: str) -> list[ReceivedPart]:
        self._check()
        parts = self._upload(key, upload_id)
        return [ReceivedPart(n, len(p) if isinstance(p, bytes) else p, hashlib.md5(str(n).encode()).hexdigest())
                for n, p in sorted(parts.items())]

    async def complete(self, key: str, upload_id: str, parts: list[ReceivedPart]) -> None:
        self._check()
        stored = self._upload(key, upload_id)
        ordered = [stored[p.number] for p in sorted(parts, key=lambda p: p.number)]
        self.objects[key] = b"".join(p for p in ordered if isinstance(p, bytes))
        del self.uploads[upload_id]

    async def abort(self, key: str, upload_id: str) -> None:
        self._check()
        self.uploads.pop(upload_id, None)

    async def abort_all(self, key: str) -> int:
        self._check()
        ids = [u for u, (k, _) in self.uploads.items() if k == key]
        for u in ids:
            del self.uploads[u]
        return len(ids)

    async def remove(self, key: str) -> None:
        self._check()
        self.objects.pop(key, None)

    async def size_of(self, key: str) -> int | None:
        self._check()
        return len(self.objects[key]) if key in self.objects else None

    async def sha256_of(self, key: str) -> tuple[int, str]:
        self._check()
        data = self.objects[key]
        return len(data), hashlib.sha256(data).hexdigest()

    async def incomplete_uploads(self, key: str) -> list[str]:
        return [u for u, (k, _) in self.uploads.items() if k == key]

    async def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def presign_part(self, key: str, upload_id: str, number: int, ttl: timedelta) -> str:
        return f"fake://{self.bucket}/{key}?uploadId={upload_id}&partNumber={number}"

    def presign_get(self, key: str, ttl: timedelta, download_name: str) -> str:
        return f"fake://{self.bucket}/{key}"

    def close(self) -> None:
        pass
