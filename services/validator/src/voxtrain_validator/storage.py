"""The object-storage adapter: reads a dataset's object as a ranged, seekable stream and runs the content rule
of its type over it (synchronously: the job loop calls it in a thread).

Read failures are sorted here, because only the storage side can tell them apart: an object that is gone
(:class:`ObjectMissing`) is final; anything else (:class:`StorageUnavailable`) is retried by the job loop.
Content problems are never exceptions: they are a failed result.
"""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO, Protocol, cast

from minio import Minio

from voxtrain_shared.range_reader import RangeSource, S3RangeReader
from voxtrain_shared.vocab import DatasetType

from .domain import Dataset, JobStatus, Sibling
from .rules.dispatch import validate_dataset
from .rules.manifest import AmbiguousReference, DatasetRef, DatasetState, Resolver
from .rules.memory import MemoryBudget, WaitAbandoned
from .rules.outcome import Outcome, SourceReadError

#: S3 error codes meaning the object is not there (retrying will not bring it back).
MISSING = frozenset({"NoSuchKey", "NoSuchBucket"})
_STATE = {
    JobStatus.PENDING: DatasetState.PENDING,
    JobStatus.RUNNING: DatasetState.PENDING,
    JobStatus.PASSED: DatasetState.PASSED,
    JobStatus.FAILED: DatasetState.FAILED,
    JobStatus.DEAD: DatasetState.FAILED,
    JobStatus.CANCELLED: DatasetState.PENDING,
}


class StorageUnavailable(Exception):
    """The object could not be read now (network, storage down, timeouts): not the file's fault; retry later."""


class ObjectMissing(Exception):
    """The object is not in storage (deleted, or never stored)."""


class Cancelled(Exception):
    """The job loop gave the job up while it was being read (lease lost, training cancelled): stop reading."""


class Validator(Protocol):
    """What the job loop needs: the result (``Outcome.to_dict()`` form) of checking one dataset."""

    def __call__(
        self, dataset: Dataset, siblings: Mapping[uuid.UUID, Sibling], cancelled: threading.Event
    ) -> dict[str, Any]: ...


def resolver(dataset: Dataset, siblings: Mapping[uuid.UUID, Sibling]) -> Resolver:
    """Resolve a manifest reference (a dataset id, or a file name unique in the model) among ``siblings``."""
    by_name: dict[str, list[Sibling]] = {}
    for s in siblings.values():
        by_name.setdefault(s.file_name, []).append(s)

    def ref(s: Sibling) -> DatasetRef:
        return DatasetRef(
            dataset_id=str(s.dataset_id),
            type=s.type,
            file_name=s.file_name,
            status=_STATE[s.status],
            duration_seconds=s.duration_seconds,
        )

    def resolve(name: str) -> DatasetRef | None:
        try:
            found = siblings.get(uuid.UUID(name))
        except ValueError:
            found = None
        if found is None:
            same = by_name.get(name, [])
            if len(same) > 1:
                raise AmbiguousReference(name, [ref(s) for s in same])
            found = same[0] if same else None
        if found is None or found.dataset_id == dataset.dataset_id:
            return None
        return ref(found)

    return resolve


def run_rules(
    stream: BinaryIO,
    dataset: Dataset,
    siblings: Mapping[uuid.UUID, Sibling],
    memory: MemoryBudget | None = None,
    abandoned: threading.Event | None = None,
) -> Outcome:
    """The content rule of the dataset's type over ``stream`` (``memory``: see rules.memory)."""
    resolve = resolver(dataset, siblings) if dataset.type is DatasetType.MANIFEST else None
    return validate_dataset(stream, dataset.type, dataset.file_name, resolve, memory, abandoned)


class _Cancellable(io.RawIOBase):
    """A read-only view of ``inner`` that fails every read once ``cancelled`` is set."""

    def __init__(self, inner: S3RangeReader, cancelled: threading.Event) -> None:
        super().__init__()
        self._inner, self._cancelled = inner, cancelled

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._inner.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        if self._cancelled.is_set():
            raise Cancelled("the job was given up (lease lost or training cancelled)")
        return self._inner.readinto(buffer)


def _codes(exc: BaseException) -> set[str]:
    """The S3 error codes anywhere in ``exc``'s chain of causes."""
    codes: set[str] = set()
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        code = getattr(e, "code", None)
        if isinstance(code, str):
            codes.add(code)
        todo += [e.__cause__, e.__context__]
    return codes


def object_validator(client: Minio, memory: MemoryBudget | None = None) -> Validator:
    """The :class:`Validator` over object storage; its checks share ``memory`` (see rules.memory)."""
    # minio's typed get_object returns urllib3's BaseHTTPResponse, whose read() takes more arguments than the
    # reader's protocol spells out; it is the client the protocol was written for.
    source = cast(RangeSource, client)

    def validate(dataset: Dataset, siblings: Mapping[uuid.UUID, Sibling], cancelled: threading.Event) -> dict[str, Any]:
        raw = _Cancellable(S3RangeReader(source, dataset.bucket, dataset.object_key, dataset.size), cancelled)
        try:
            with io.BufferedReader(raw, buffer_size=1024 * 1024) as stream:
                # a BufferedReader is a binary file
                outcome = run_rules(cast(BinaryIO, stream), dataset, siblings, memory, cancelled)
        except WaitAbandoned as exc:
            raise Cancelled(str(exc)) from exc
        except SourceReadError as exc:
            if cancelled.is_set():
                raise Cancelled(str(exc)) from exc
            if _codes(exc) & MISSING:
                raise ObjectMissing(f"{dataset.bucket}/{dataset.object_key}") from exc
            raise StorageUnavailable(str(exc)) from exc
        return outcome.to_dict()

    return validate


def reachable(client: Minio, bucket: str) -> Callable[[], None]:
    """A readiness probe of the store: raises when it does not answer or ``bucket`` is not there (a HEAD of the
    bucket, which the validator's read-only storage policy allows; listing buckets or keys it does not)."""

    def probe() -> None:
        if not client.bucket_exists(bucket):
            raise StorageUnavailable(f"bucket {bucket} does not exist")

    return probe
