"""Object storage for datasets: the port the use cases need, its S3 adapter (minio-py), and the
streaming writer that turns a byte stream of unknown length into an S3 multipart upload.

Only S3 API calls are used, so any S3-compatible store works. minio-py keeps the multipart
primitives (create / upload part / list parts / complete / abort / list uploads) private — its
maintainers point to them for resumable uploads (minio/minio-py#1484) — so their use is confined
to :class:`S3ObjectStore`, whose behaviour the integration tests pin. Its ListParts and
CompleteMultipartUpload know no part checksums, so those two requests are sent through its request
executor here, with the checksums written and read. minio-py is blocking: every
call runs on this store's own thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error
from minio.helpers import DictType, md5sum_hash
from minio.xml import Element, SubElement, findall, findtext, getbytes

from voxtrain_shared.errors import Rejected
from voxtrain_shared.logs import get_logger
from voxtrain_shared.storage import ensure_bucket
from voxtrain_shared.vocab import ErrorCode

from .domain import ChecksumAlgorithm
from .presign import presigned_put

log = get_logger(__name__)
T = TypeVar("T")
READ_CHUNK = 1024 * 1024


class StorageUnavailable(Exception):
    """The object store cannot be reached, or failed (network error, 5xx, unexpected answer)."""


class UploadGone(Exception):
    """The multipart upload does not exist (any more): completed or aborted."""


class PartRefused(Exception):
    """Storage refused a part: its bytes do not match its checksum, or it is not the part named."""


class ObjectTooLarge(Exception):
    """More bytes arrived than the writer's limit allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


#: A checksummed upload is opened with a checksum algorithm (:class:`ChecksumAlgorithm`); the uploader sends each
#: part with that algorithm's header (``x-amz-checksum-sha256`` or ``x-amz-checksum-crc32c``: base64 of the part's
#: checksum). Storage verifies it against the bytes it receives and refuses the part (400
#: ``XAmzContentChecksumMismatch``) when they differ; a part of a checksummed upload sent without it is refused too
#: (400 ``InvalidArgument``). MinIO verifies it whether the part's URL signs it or not (the integration tests pin
#: both, for each algorithm). AWS S3 refuses a presigned request carrying an unsigned ``x-amz-*`` header: there,
#: uploaders ask for URLs that sign their parts' checksums (``POST …/uploads/{id}/part-urls``); the URLs a session
#: lists sign the length only.
SHA256 = ChecksumAlgorithm.SHA256


@dataclass(frozen=True)
class ReceivedPart:
    number: int
    size: int
    etag: str
    #: base64 checksum (of the upload's algorithm) of the part as storage verified it on arrival (None: sent without)
    checksum: str | None = None


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str


class ObjectStore(Protocol):
    """What the dataset use cases need from an object store (one bucket)."""

    bucket: str

    async def ensure_bucket(self) -> None:
        """Create the bucket when missing."""

    async def ping(self) -> None:
        """Return when the store answers and the bucket exists (raise otherwise)."""

    def close(self) -> None:
        """Release the store's connections (at shutdown)."""

    async def put(self, key: str, data: bytes | memoryview, content_type: str) -> None:
        """Store ``data`` at ``key`` in one request."""

    async def start_multipart(self, key: str, content_type: str, *, checksum: ChecksumAlgorithm | None = None) -> str:
        """Begin a multipart upload to ``key``; returns its upload id. ``checksum``: every part must come with its
        checksum of that algorithm (in ``checksum.header``), which storage verifies on arrival."""

    async def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        data: bytes | memoryview,
        checksum: str | None = None,
        algorithm: ChecksumAlgorithm = SHA256,
    ) -> str:
        """Upload part ``number`` (with its base64 ``checksum`` of ``algorithm``, which storage verifies); returns its
        ETag (raises :class:`UploadGone`, or :class:`PartRefused` when the bytes do not match the checksum)."""

    async def list_parts(self, key: str, upload_id: str, algorithm: ChecksumAlgorithm = SHA256) -> list[ReceivedPart]:
        """Parts received so far, by number, with their checksums of ``algorithm`` as storage verified them (raises
        :class:`UploadGone`)."""

    async def complete(
        self, key: str, upload_id: str, parts: list[ReceivedPart], algorithm: ChecksumAlgorithm = SHA256
    ) -> str | None:
        """Assemble the object from ``parts`` (their checksums of ``algorithm``, when they have them, are checked
        again by storage); returns storage's composite checksum of the object (base64 checksum of the parts'
        checksums, ``-<count>``) or None for parts without checksums. Raises :class:`UploadGone`, or
        :class:`PartRefused` when a part is not (any more) what ``parts`` says."""

    async def abort(self, key: str, upload_id: str) -> None:
        """Discard a multipart upload and its parts; a missing upload is fine."""

    async def abort_all(self, key: str) -> int:
        """Abort every incomplete multipart upload of ``key``; returns how many."""

    async def remove(self, key: str) -> None:
        """Delete the object; a missing object is fine."""

    async def size_of(self, key: str) -> int | None:
        """The object's size, None when it does not exist."""

    async def sha256_of(self, key: str) -> tuple[int, str]:
        """Read the object once: its size and SHA-256 hex digest."""

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
        """A URL an outside client PUTs part ``number`` to, valid for ``ttl``; storage refuses a body that is not
        exactly ``size`` bytes. With ``checksum`` (of ``algorithm``) the URL signs it too: the PUT must carry it in
        ``algorithm.header`` (storage refuses another value, or none), and storage verifies the bytes."""

    def presign_get(self, key: str, ttl: timedelta, download_name: str) -> str:
        """A URL to download the object (as an attachment named ``download_name``), valid for ``ttl``."""


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, S3Error) and exc.code in ("NoSuchUpload",):
        return UploadGone(str(exc.message or exc.code))
    if isinstance(exc, S3Error) and (
        exc.code in ("XAmzContentChecksumMismatch", "BadDigest", "InvalidPart")
        or (exc.code == "InvalidArgument" and "checksum" in (exc.message or "").lower())  # a part without one
    ):
        return PartRefused(f"{exc.code}: {exc.message}")
    if isinstance(exc, S3Error):
        return StorageUnavailable(f"object store refused the request: {exc.code}: {exc.message}")
    return StorageUnavailable(f"object store unreachable: {type(exc).__name__}: {str(exc)[:300]}")


_STORAGE_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError)


def _checksum_tag(algorithm: ChecksumAlgorithm) -> str:
    """The element of a part's checksum in ListParts and CompleteMultipartUpload (``ChecksumSHA256``, ...)."""
    return f"Checksum{algorithm.value}"


class S3ObjectStore:
    """:class:`ObjectStore` on the S3 API through minio-py; URLs are signed for ``public``, the endpoint
    clients reach."""

    def __init__(self, client: Minio, public: Minio, bucket: str, threads: int = 16) -> None:
        self._client = client
        self._public = public
        self.bucket = bucket
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3")

    def close(self) -> None:
        """Stop the store's threads (calls still running finish on their own)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn`` on the store's threads; storage failures become :class:`StorageUnavailable`."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except _STORAGE_ERRORS as exc:
            raise _translate(exc) from exc

    async def ensure_bucket(self) -> None:
        await self.run(ensure_bucket, self._client, self.bucket)

    async def ping(self) -> None:
        if not await self.run(self._client.bucket_exists, self.bucket):
            raise StorageUnavailable(f"bucket {self.bucket} does not exist")

    async def put(self, key: str, data: bytes | memoryview, content_type: str) -> None:
        await self.run(
            lambda: self._client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type)
        )

    async def start_multipart(self, key: str, content_type: str, *, checksum: ChecksumAlgorithm | None = None) -> str:
        headers = {"Content-Type": content_type}
        if checksum is not None:
            headers["x-amz-checksum-algorithm"] = checksum.value
        return await self.run(self._client._create_multipart_upload, self.bucket, key, headers)

    async def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        data: bytes | memoryview,
        checksum: str | None = None,
        algorithm: ChecksumAlgorithm = SHA256,
    ) -> str:
        headers = {algorithm.header: checksum} if checksum else None
        return await self.run(self._client._upload_part, self.bucket, key, data, headers, upload_id, number)

    async def list_parts(self, key: str, upload_id: str, algorithm: ChecksumAlgorithm = SHA256) -> list[ReceivedPart]:
        tag = _checksum_tag(algorithm)

        # minio-py's ListParts result has no checksums: the same request, its answer read here
        def all_parts() -> list[ReceivedPart]:
            out: list[ReceivedPart] = []
            marker = "0"
            while True:
                query: DictType = {"uploadId": upload_id, "max-parts": "1000", "part-number-marker": marker}
                page = ET.fromstring(self._client._execute("GET", self.bucket, key, query_params=query).data)
                out.extend(
                    ReceivedPart(
                        int(findtext(p, "PartNumber", True) or 0),
                        int(findtext(p, "Size") or 0),
                        (findtext(p, "ETag", True) or "").replace('"', ""),
                        findtext(p, tag) or None,
                    )
                    for p in findall(page, "Part")
                )
                marker = findtext(page, "NextPartNumberMarker") or ""
                if findtext(page, "IsTruncated") != "true" or not marker:
                    return out

        return await self.run(all_parts)

    async def complete(
        self, key: str, upload_id: str, parts: list[ReceivedPart], algorithm: ChecksumAlgorithm = SHA256
    ) -> str | None:
        # minio-py's CompleteMultipartUpload sends no checksums: the same request, with them
        tag = _checksum_tag(algorithm)

        def complete_upload() -> str | None:
            element = Element("CompleteMultipartUpload")
            for p in sorted(parts, key=lambda p: p.number):
                part = SubElement(element, "Part")
                SubElement(part, "PartNumber", str(p.number))
                SubElement(part, "ETag", f'"{p.etag}"')
                if p.checksum:
                    SubElement(part, tag, p.checksum)
            body = getbytes(element)
            headers: DictType = {"Content-Type": "application/xml", "Content-MD5": md5sum_hash(body) or ""}
            answer = self._client._execute(
                "POST", self.bucket, key, body=body, headers=headers, query_params={"uploadId": upload_id}
            )
            return findtext(ET.fromstring(answer.data), tag) or None

        return await self.run(complete_upload)

    async def abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(UploadGone):
            await self.run(self._client._abort_multipart_upload, self.bucket, key, upload_id)

    async def abort_all(self, key: str) -> int:
        def abort_uploads() -> int:
            result = self._client._list_multipart_uploads(self.bucket, prefix=key, max_uploads=1000)
            ids = [u.upload_id for u in result.uploads if u.object_name == key and u.upload_id]
            for upload_id in ids:
                try:
                    self._client._abort_multipart_upload(self.bucket, key, upload_id)
                except S3Error as exc:
                    if exc.code != "NoSuchUpload":
                        raise
            return len(ids)

        return await self.run(abort_uploads)

    async def remove(self, key: str) -> None:
        await self.run(self._client.remove_object, self.bucket, key)

    async def size_of(self, key: str) -> int | None:
        def stat() -> int | None:
            try:
                return self._client.stat_object(self.bucket, key).size
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject"):
                    return None
                raise

        return await self.run(stat)

    async def sha256_of(self, key: str) -> tuple[int, str]:
        def digest() -> tuple[int, str]:
            h, size = hashlib.sha256(), 0
            response = self._client.get_object(self.bucket, key)
            try:
                for chunk in response.stream(READ_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
            finally:
                response.close()
                response.release_conn()
            return size, h.hexdigest()

        return await self.run(digest)

    async def incomplete_uploads(self, key: str) -> list[str]:
        """Upload ids of unfinished multipart uploads of ``key`` (for checks and tests)."""
        result = await self.run(self._client._list_multipart_uploads, self.bucket, None, None, None, 1000, key)
        return [u.upload_id for u in result.uploads if u.object_name == key and u.upload_id]

    async def keys(self, prefix: str) -> list[str]:
        """Object keys under ``prefix`` (for checks and tests)."""
        return await self.run(
            lambda: [o.object_name for o in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)]
        )

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
        query = {"uploadId": upload_id, "partNumber": str(number)}
        headers = {algorithm.header: checksum} if checksum else None
        return presigned_put(self._public, self.bucket, key, query, ttl, size, headers=headers)

    def presign_get(self, key: str, ttl: timedelta, download_name: str) -> str:
        disposition = f"attachment; filename*=UTF-8''{quote(download_name, safe='')}"
        return self._public.presigned_get_object(
            self.bucket, key, expires=ttl, response_headers={"response-content-disposition": disposition}
        )


class ByteBudget:
    """Bytes that the upload buffers of this process may hold, all requests together.

    :meth:`take` waits (first come, first served) until the bytes are free; a request waiting here reads
    no more of its body, so the client is slowed by TCP flow control instead of the process growing. A wait
    longer than ``max_wait_seconds`` (None: no limit) ends in :class:`Rejected` ``server_busy``.
    """

    def __init__(self, total: int, *, max_wait_seconds: float | None = None) -> None:
        self.total = total
        self.max_wait_seconds = max_wait_seconds
        self.free = total
        self.peak = 0  #: the most ever taken at once (for operators and tests)
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def take(self, n: int) -> None:
        if n > self.total:
            raise ValueError(f"{n} bytes can never fit a budget of {self.total}")
        if not self._waiters and self.free >= n:
            self._grant(n)
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((n, granted))
        try:
            async with asyncio.timeout(self.max_wait_seconds):
                try:
                    await granted
                except asyncio.CancelledError:  # (a timeout too: asyncio.timeout cancels, then raises TimeoutError)
                    if granted.done() and not granted.cancelled():
                        self.give(n)  # granted, but the taker is gone
                    else:
                        # (already gone if another taker's _wake passed over it while this one was unwinding)
                        with contextlib.suppress(ValueError):
                            self._waiters.remove((n, granted))
                        self._wake()  # a smaller request behind it may fit now
                    raise
        except TimeoutError:
            raise Rejected(
                ErrorCode.SERVER_BUSY,
                f"The server is busy: the memory it gives all uploads together ({self.total // 2**20} MB) stayed "
                f"full for {self.max_wait_seconds:g} s, so this upload was stopped and nothing of it was kept. Try "
                "again in a minute, or upload with the resumable upload (`vt datasets upload`), whose parts go "
                "straight to storage.",
            ) from None

    def give(self, n: int) -> None:
        self.free += n
        self._wake()

    def _grant(self, n: int) -> None:
        self.free -= n
        self.peak = max(self.peak, self.total - self.free)

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.free:
            n, granted = self._waiters.popleft()
            if granted.done():  # its taker was cancelled (or timed out) and is unwinding: nothing to grant
                continue
            self._grant(n)
            granted.set_result(None)


class StreamingWriter:
    """Writes one object of unknown length as it arrives: a single PUT when it fits in one part,
    else a multipart upload with up to ``in_flight`` parts uploading while more bytes arrive.

    Received bytes are copied once, into the buffer of the part being filled; a full part is hashed
    and uploaded from its buffer (no join, no slice copies), and once it is stored and hashed its
    buffer is kept for a later part of the same object rather than a fresh one allocated (and paged
    in) for every part. A buffer is allocated only when none is free, so memory stays below
    ``(in_flight + 1) * part_size`` whatever the object's size. With a ``budget`` shared by all writers
    of the process, each buffer takes ``part_size`` from it before its first byte is accepted and gives
    it back when it is released (at the end, or when its part is stored while the writer waits for the
    budget), so all uploads together hold about the budget (plus one received chunk per upload).
    The SHA-256 is computed on the way (in part order, off the event loop). More than ``limit`` bytes
    raise :class:`ObjectTooLarge` at once; the caller then calls :meth:`abort`, which leaves nothing
    behind.
    """

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        content_type: str,
        *,
        part_size: int,
        limit: int,
        in_flight: int = 2,
        budget: ByteBudget | None = None,
    ) -> None:
        self.key = key
        self.size = 0
        self.upload_id: str | None = None
        self._store = store
        self._content_type = content_type
        self._part_size = part_size
        self._limit = limit
        self._buffer: bytearray | None = None  # the part being filled (budget taken for it)
        self._filled = 0
        self._spare: list[bytearray] = []  # stored parts' buffers (budget still taken), for the next parts
        self._waiting = False  # for the budget: a finished part's buffer is then given back, not kept
        self._done = False
        self._sha = hashlib.sha256()
        # One thread hashes parts in order; parts upload concurrently on the store's threads.
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        self._hashing: list[Future[None]] = []
        self._slots = asyncio.Semaphore(in_flight)
        self._uploads: list[asyncio.Task[ReceivedPart]] = []
        self._parts = 0
        self._budget = budget

    async def write(self, data: bytes | memoryview) -> None:
        """Add bytes; uploads a part whenever a full part is followed by more bytes."""
        self.size += len(data)
        if self.size > self._limit:
            raise ObjectTooLarge(self._limit)
        view = memoryview(data).cast("B")
        while view:
            if self._filled == self._part_size:
                await self._flush_part()
            buffer = self._buffer if self._buffer is not None else await self._new_buffer()
            n = min(len(view), self._part_size - self._filled)
            buffer[self._filled : self._filled + n] = view[:n]
            self._filled += n
            view = view[n:]

    async def _new_buffer(self) -> bytearray:
        """The buffer for the next part: the spare one, else a new one once the budget has room for it."""
        if self._spare:
            self._buffer = self._spare.pop()
            return self._buffer
        if self._budget is not None:
            self._waiting = True
            try:
                await self._budget.take(self._part_size)
            finally:
                self._waiting = False
        self._buffer = bytearray(self._part_size)
        return self._buffer

    def _release(self, *buffers: bytearray | None) -> None:
        """Drop ``buffers`` (their budget comes back)."""
        if self._budget is not None:
            self._budget.give(self._part_size * sum(b is not None for b in buffers))

    def _hand_over(self, task: asyncio.Task[Any]) -> None:
        """The part being filled is now ``task``'s: once the task ends, however, its buffer is kept for a later
        part (unless this writer is done, or waits for the budget: a buffer is then worth more to others) or
        released."""
        buffer, self._buffer, self._filled = self._buffer, None, 0

        def done(_task: asyncio.Task[Any]) -> None:
            if buffer is not None and not self._waiting and not self._done:
                self._spare.append(buffer)
            else:
                self._release(buffer)

        task.add_done_callback(done)

    async def _flush_part(self) -> None:
        self._raise_failed_upload()
        assert self._buffer is not None
        part = memoryview(self._buffer)
        hashed = self._hash(part)
        if self.upload_id is None:
            self.upload_id = await self._store.start_multipart(self.key, self._content_type)
        await self._upload_in_slot(part, hashed)

    async def _upload_in_slot(self, part: memoryview, hashed: Future[None]) -> None:
        """Upload ``part`` as the next part once fewer than ``in_flight`` are uploading."""
        await self._slots.acquire()
        self._parts += 1
        task = asyncio.create_task(self._upload(self._parts, part, hashed))
        self._hand_over(task)
        task.add_done_callback(lambda _t: self._slots.release())  # after the buffer is back: the next part gets it
        self._uploads.append(task)

    def _hash(self, data: memoryview) -> Future[None]:
        hashed = self._hasher.submit(self._sha.update, data)
        self._hashing.append(hashed)
        if len(self._hashing) > 1:  # hashing may lag one part behind, never more (bounds memory)
            self._hashing.pop(0).result()
        return hashed

    async def _upload(self, number: int, data: memoryview, hashed: Future[None]) -> ReceivedPart:
        etag = await self._store.upload_part(self.key, self.upload_id or "", number, data)
        await asyncio.wrap_future(hashed)  # the part's memory is free only once it is hashed too
        return ReceivedPart(number, len(data), etag)

    def _raise_failed_upload(self) -> None:
        for task in self._uploads:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]  # not None: the task failed (checked above)

    async def finish(self) -> StoredObject:
        """Store what is left and assemble the object; returns its key, size and SHA-256."""
        self._done = True
        rest = memoryview(self._buffer or b"")[: self._filled]
        hashed = self._hash(rest)
        if self.upload_id is None:
            put = asyncio.create_task(self._store.put(self.key, rest, self._content_type))
            self._hand_over(put)
            await put
        else:
            if rest:
                await self._upload_in_slot(rest, hashed)
            parts = await asyncio.gather(*self._uploads)
            await self._store.complete(self.key, self.upload_id, list(parts))
        self._release(*self._spare)
        self._spare.clear()
        digest = await asyncio.wrap_future(self._hasher.submit(self._sha.hexdigest))
        self._hasher.shutdown(wait=False)
        return StoredObject(self.key, self.size, digest)

    async def abort(self, *, storage_down: bool = False) -> None:
        """Discard everything written so far. With ``storage_down`` nothing is awaited that needs
        the store; the caller leaves the clean-up to the sweeper instead."""
        self._done = True
        self._release(self._buffer, *self._spare)
        self._buffer, self._filled = None, 0
        self._spare.clear()
        self._hasher.shutdown(wait=False, cancel_futures=True)
        if not storage_down:
            await asyncio.gather(*self._uploads, return_exceptions=True)  # so no part lands after the abort
            if self.upload_id is not None:
                await self._store.abort(self.key, self.upload_id)
        else:
            for task in self._uploads:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: the failure is reported by the caller
                task.cancel()
