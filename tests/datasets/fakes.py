"""In-memory stand-ins for the datasets service's ports: the object store (the contract tests hold it to the
real one) and :class:`~voxtrain_datasets.repository.DatasetRepository` (for handler unit tests)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import google_crc32c

from voxtrain_datasets.domain import ChecksumAlgorithm, Dataset, DatasetStatus, UploadSession
from voxtrain_datasets.storage import PartRefused, ReceivedPart, StorageUnavailable, UploadGone
from voxtrain_shared.vocab import ModelStatus

SHA256, CRC32C = ChecksumAlgorithm.SHA256, ChecksumAlgorithm.CRC32C


def checksum_bytes(data: bytes | memoryview, algorithm: ChecksumAlgorithm = SHA256) -> bytes:
    if algorithm is CRC32C:
        return int(google_crc32c.value(bytes(data))).to_bytes(4, "big")
    return hashlib.sha256(data).digest()


def part_checksum(data: bytes | memoryview, algorithm: ChecksumAlgorithm = SHA256) -> str:
    """What an uploader sends with a part: the base64 of its SHA-256 or CRC32C (4 bytes, big-endian)."""
    return base64.b64encode(checksum_bytes(data, algorithm)).decode()


class FakeObjectStore:
    def __init__(self, bucket: str = "fake", keep_bytes: bool = True) -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, tuple[str, dict[int, bytes | int]]] = {}  # upload id -> (key, parts or sizes)
        self.checksums: dict[str, dict[int, tuple[ChecksumAlgorithm, str] | None]] = {}  # upload id -> part's
        self.checksummed: dict[str, ChecksumAlgorithm] = {}  # upload ids whose parts must carry a checksum of this
        self.read_backs = 0  # objects read whole (sha256_of)
        self.keep_bytes = keep_bytes  # False: count sizes only (memory tests)
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StorageUnavailable("fake store is down")

    async def ensure_bucket(self) -> None:
        self._check()

    async def ping(self) -> None:
        self._check()

    async def put(self, key: str, data: bytes | memoryview, content_type: str) -> None:
        self._check()
        self.objects[key] = bytes(data)

    async def start_multipart(self, key: str, content_type: str, *, checksum: ChecksumAlgorithm | None = None) -> str:
        self._check()
        upload_id = uuid.uuid4().hex
        self.uploads[upload_id] = (key, {})
        self.checksums[upload_id] = {}
        if checksum is not None:
            self.checksummed[upload_id] = checksum
        return upload_id

    def _upload(self, key: str, upload_id: str) -> dict[int, bytes | int]:
        if upload_id not in self.uploads or self.uploads[upload_id][0] != key:
            raise UploadGone(upload_id)
        return self.uploads[upload_id][1]

    async def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        data: bytes | memoryview,
        checksum: str | None = None,
        algorithm: ChecksumAlgorithm = SHA256,
    ) -> str:
        self._check()
        await asyncio.sleep(0)
        parts = self._upload(key, upload_id)
        chosen = self.checksummed.get(upload_id)
        if chosen is not None and (checksum is None or algorithm is not chosen):
            raise PartRefused(f"InvalidArgument: a part of this upload needs its {chosen} checksum")
        if checksum is not None and checksum != part_checksum(data, algorithm):
            raise PartRefused("XAmzContentChecksumMismatch")
        parts[number] = bytes(data) if self.keep_bytes else len(data)
        self.checksums[upload_id][number] = (algorithm, checksum) if checksum is not None else None
        return hashlib.md5(str(number).encode()).hexdigest()

    def _checksum(self, upload_id: str, number: int, algorithm: ChecksumAlgorithm) -> str | None:
        """A part's checksum of ``algorithm``, as ListParts shows it (none of another algorithm)."""
        stored = self.checksums[upload_id].get(number)
        return stored[1] if stored is not None and stored[0] is algorithm else None

    async def list_parts(self, key: str, upload_id: str, algorithm: ChecksumAlgorithm = SHA256) -> list[ReceivedPart]:
        self._check()
        parts = self._upload(key, upload_id)
        return [
            ReceivedPart(
                n,
                len(p) if isinstance(p, bytes) else p,
                hashlib.md5(str(n).encode()).hexdigest(),
                self._checksum(upload_id, n, algorithm),
            )
            for n, p in sorted(parts.items())
        ]

    async def complete(
        self, key: str, upload_id: str, parts: list[ReceivedPart], algorithm: ChecksumAlgorithm = SHA256
    ) -> str | None:
        self._check()
        stored = self._upload(key, upload_id)
        ordered = sorted(parts, key=lambda p: p.number)
        if any(p.checksum != self._checksum(upload_id, p.number, algorithm) for p in ordered):
            raise PartRefused("InvalidPart")
        self.objects[key] = b"".join(b for b in (stored[p.number] for p in ordered) if isinstance(b, bytes))
        del self.uploads[upload_id]
        sums = [p.checksum for p in ordered]
        if upload_id not in self.checksummed or not all(sums):  # as MinIO: a composite only for a checksummed upload
            return None
        joined = b"".join(base64.b64decode(c or "") for c in sums)
        return f"{part_checksum(joined, algorithm)}-{len(sums)}"

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
        self.read_backs += 1
        data = self.objects[key]
        return len(data), hashlib.sha256(data).hexdigest()

    async def incomplete_uploads(self, key: str) -> list[str]:
        return [u for u, (k, _) in self.uploads.items() if k == key]

    async def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def presign_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        ttl: timedelta,
        size: int,
        checksum: str | None = None,
        algorithm: ChecksumAlgorithm = SHA256,
    ) -> str:
        signed = f"&{algorithm.header}={checksum}" if checksum else ""
        return f"fake://{self.bucket}/{key}?uploadId={upload_id}&partNumber={number}&length={size}{signed}"

    def presign_get(self, key: str, ttl: timedelta, download_name: str) -> str:
        return f"fake://{self.bucket}/{key}"

    def close(self) -> None:
        pass


@dataclass
class ModelRow:
    tenant_id: str
    status: ModelStatus
    status_at: datetime
    deleted: bool = False


@dataclass
class PendingRow:
    created_at: datetime
    abandoned: bool = False


class FakeDatasetRepository:
    """:class:`~voxtrain_datasets.repository.DatasetRepository` in memory, with the same rules (the
    projection's tombstones, the newest verdict wins, claims of upload sessions)."""

    def __init__(self) -> None:
        self.models: dict[uuid.UUID, ModelRow] = {}
        self.datasets: dict[uuid.UUID, Dataset] = {}
        self.validated_at: dict[uuid.UUID, datetime] = {}
        self.pending: dict[str, PendingRow] = {}
        self.sessions: dict[uuid.UUID, UploadSession] = {}
        self.session_updated: dict[uuid.UUID, datetime] = {}
        self.slots: dict[uuid.UUID, tuple[str, datetime]] = {}

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    # model status projection
    async def model_status(self, tenant_id: str, model_id: uuid.UUID, *, lock: bool = False) -> ModelStatus | None:
        m = self.models.get(model_id)
        return None if m is None or m.deleted or m.tenant_id != tenant_id else m.status

    async def model_known(self, model_id: uuid.UUID) -> bool:
        return model_id in self.models

    async def model_seen(self, tenant_id: str, model_id: uuid.UUID, status: ModelStatus, at: datetime) -> None:
        self.models.setdefault(model_id, ModelRow(tenant_id, status, at))

    async def model_status_changed(
        self, tenant_id: str, model_id: uuid.UUID, status: ModelStatus, at: datetime
    ) -> None:
        m = self.models.get(model_id)
        if m is None:
            self.models[model_id] = ModelRow(tenant_id, status, at)
        elif not m.deleted and m.tenant_id == tenant_id and m.status_at <= at:
            m.status, m.status_at = status, at

    async def model_deleted(self, tenant_id: str, model_id: uuid.UUID, at: datetime) -> list[str]:
        m = self.models.get(model_id)
        if m is None:
            self.models[model_id] = ModelRow(tenant_id, ModelStatus.NOT_RUNNING, at, deleted=True)
        elif m.tenant_id == tenant_id:
            m.deleted = True

        def mine(x: Dataset | UploadSession) -> bool:
            return x.model_id == model_id and x.tenant_id == tenant_id

        keys = [ds.object_key for ds in self.datasets.values() if mine(ds)]
        self.datasets = {k: ds for k, ds in self.datasets.items() if not mine(ds)}
        keys += [s.object_key for s in self.sessions.values() if mine(s) and s.state != "completed"]
        self.sessions = {k: s for k, s in self.sessions.items() if not mine(s)}
        return keys

    # datasets
    async def insert_dataset(self, d: Dataset) -> Dataset:
        assert d.id not in self.datasets
        now = self._now()
        self.datasets[d.id] = replace(d, created_at=now, updated_at=now)
        return self.datasets[d.id]

    async def get_dataset(
        self, tenant_id: str, model_id: uuid.UUID, dataset_id: uuid.UUID, *, lock: bool = False
    ) -> Dataset | None:
        ds = self.datasets.get(dataset_id)
        return ds if ds is not None and ds.tenant_id == tenant_id and ds.model_id == model_id else None

    async def list_datasets(self, tenant_id: str, model_id: uuid.UUID) -> list[Dataset]:
        return [ds for ds in self.datasets.values() if ds.tenant_id == tenant_id and ds.model_id == model_id]

    async def delete_dataset(self, dataset_id: uuid.UUID) -> None:
        self.datasets.pop(dataset_id, None)

    async def mark_validating(self, tenant_id: str, dataset_id: uuid.UUID) -> bool:
        ds = self.datasets.get(dataset_id)
        if ds is None or ds.tenant_id != tenant_id or ds.status is not DatasetStatus.UPLOADED:
            return False
        self.datasets[dataset_id] = replace(ds, status=DatasetStatus.VALIDATING)
        return True

    async def record_validation(
        self, tenant_id: str, dataset_id: uuid.UUID, status: DatasetStatus, details: dict[str, Any], at: datetime
    ) -> bool:
        ds = self.datasets.get(dataset_id)
        if ds is None or ds.tenant_id != tenant_id or self.validated_at.get(dataset_id, at) > at:
            return False
        self.datasets[dataset_id] = replace(ds, status=status, validation=details)
        self.validated_at[dataset_id] = at
        return True

    # objects not (yet) owned by a dataset
    async def stage_object(self, key: str) -> None:
        self.pending.setdefault(key, PendingRow(self._now()))

    async def unstage_objects(self, keys: list[str]) -> None:
        for key in keys:
            self.pending.pop(key, None)

    async def abandon_objects(self, keys: list[str]) -> None:
        for key in keys:
            self.pending.setdefault(key, PendingRow(self._now())).abandoned = True

    async def objects_to_remove(self, staged_before: datetime, limit: int = 100) -> list[str]:
        return [k for k, p in self.pending.items() if p.abandoned or p.created_at < staged_before][:limit]

    async def pending_objects(self) -> list[tuple[str, bool]]:
        return [(k, p.abandoned) for k, p in self.pending.items()]

    # upload sessions
    async def insert_session(self, s: UploadSession) -> UploadSession:
        self.sessions[s.id] = s
        self.session_updated[s.id] = self._now()
        return s

    async def get_session(self, tenant_id: str, model_id: uuid.UUID, session_id: uuid.UUID) -> UploadSession | None:
        s = self.sessions.get(session_id)
        return s if s is not None and s.tenant_id == tenant_id and s.model_id == model_id else None

    async def claim_for_completion(
        self, tenant_id: str, model_id: uuid.UUID, session_id: uuid.UUID, stale_before: datetime
    ) -> UploadSession | None:
        s = await self.get_session(tenant_id, model_id, session_id)
        if s is None or s.expires_at <= self._now():
            return None
        if s.state == "open" or (s.state == "completing" and self.session_updated[s.id] < stale_before):
            await self.set_session_state(s.id, "completing")
            return self.sessions[s.id]
        return None

    async def set_session_state(self, session_id: uuid.UUID, state: str) -> None:
        if session_id in self.sessions:
            self.sessions[session_id] = replace(self.sessions[session_id], state=state)
            self.session_updated[session_id] = self._now()

    async def delete_session(self, session_id: uuid.UUID) -> None:
        self.sessions.pop(session_id, None)

    async def expired_sessions(self, now: datetime, stale_before: datetime, limit: int = 100) -> list[UploadSession]:
        return [
            s
            for s in self.sessions.values()
            if s.expires_at < now
            and (s.state == "open" or (s.state == "completing" and self.session_updated[s.id] < stale_before))
        ][:limit]

    async def forget_completed_sessions(self, before: datetime) -> int:
        old = [k for k, s in self.sessions.items() if s.state == "completed" and self.session_updated[k] < before]
        for k in old:
            del self.sessions[k]
        return len(old)

    # per-tenant upload quotas
    async def lock_tenant_uploads(self, tenant_id: str) -> None:
        pass  # one event loop, no await between the check and the insert of a use case: nothing to serialise

    async def open_sessions(self, tenant_id: str, now: datetime) -> int:
        mine = [s for s in self.sessions.values() if s.tenant_id == tenant_id]
        return sum(1 for s in mine if s.state != "completed" and s.expires_at > now)

    async def upload_slots_in_use(self, tenant_id: str) -> int:
        now = self._now()
        self.slots = {k: v for k, v in self.slots.items() if v[1] > now}
        return sum(1 for t, _ in self.slots.values() if t == tenant_id)

    async def take_upload_slot(self, slot_id: uuid.UUID, tenant_id: str, model_id: uuid.UUID, lease: float) -> None:
        self.slots[slot_id] = (tenant_id, self._now() + timedelta(seconds=lease))

    async def renew_upload_slot(self, slot_id: uuid.UUID, lease: float) -> None:
        if slot_id in self.slots:
            self.slots[slot_id] = (self.slots[slot_id][0], self._now() + timedelta(seconds=lease))

    async def release_upload_slot(self, slot_id: uuid.UUID) -> None:
        self.slots.pop(slot_id, None)
