"""A seekable, read-only file over an S3 object, read with ranged GETs in fixed-size chunks, and a guard that keeps
the first failure of a stream a decoder reads by itself.

Decoders want a file: they read forward, seek back to a header, jump to an index at the end (MP4).
Downloading a 10 GB object first would need 10 GB of disk; streaming it once would not allow
seeks. This reader fetches ``chunk_size`` bytes around the position on demand and keeps at most
``cached_chunks`` of them, so memory stays at ``chunk_size * cached_chunks`` whatever the object's
size, and each GET is short enough to retry on its own.
"""

from __future__ import annotations

import io
import time
from collections import OrderedDict
from typing import Any, Protocol

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
DEFAULT_CACHED_CHUNKS = 2
# S3 error codes that no retry will fix.
_PERMANENT = frozenset(
    {
        "NoSuchKey",
        "NoSuchBucket",
        "AccessDenied",
        "PreconditionFailed",
        "InvalidRange",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    }
)


class ObjectReadError(OSError):
    """The object could not be read from the store (after retries): not the content's fault."""


class ObjectResponse(Protocol):
    """The part of urllib3's response that the reader uses."""

    def read(self) -> bytes: ...
    def close(self) -> None: ...
    def release_conn(self) -> None: ...


class RangeSource(Protocol):
    """What the reader needs from a store client; ``minio.Minio`` is one."""

    def get_object(
        self,
        bucket_name: str,
        object_name: str,
        offset: int = 0,
        length: int = 0,
        request_headers: dict[str, str] | None = None,
    ) -> ObjectResponse:
        """Bytes ``[offset, offset + length)`` of the object (``length`` > 0 here)."""
        ...

    def stat_object(self, bucket_name: str, object_name: str) -> Any:
        """Object information with ``.size`` (and ``.etag``)."""
        ...


class S3RangeReader(io.RawIOBase):
    """``open()``-like read-only view of ``bucket/key``; not shared between threads.

    ``size`` is the object's length (looked up with ``stat_object`` when not given). With
    ``etag``, every GET carries ``If-Match`` so an object replaced mid-read is detected instead of
    mixing two versions. Read failures raise ObjectReadError after ``retries`` attempts.
    """

    def __init__(
        self,
        client: RangeSource,
        bucket: str,
        key: str,
        size: int | None = None,
        *,
        etag: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        cached_chunks: int = DEFAULT_CACHED_CHUNKS,
        retries: int = 3,
        retry_delay: float = 0.2,
    ) -> None:
        super().__init__()
        if chunk_size <= 0 or cached_chunks <= 0:
            raise ValueError("chunk_size and cached_chunks must be positive")
        self._client = client
        self._bucket = bucket
        self._key = key
        self._retries = max(1, retries)
        self._retry_delay = retry_delay
        if size is None:
            info = self._call(lambda: client.stat_object(bucket, key), "stat")
            size = int(info.size)
            etag = etag or getattr(info, "etag", None)
        self._size = size
        self._headers = {"If-Match": etag} if etag else None
        self._chunk_size = chunk_size
        self._cached = cached_chunks
        self._chunks: OrderedDict[int, bytes] = OrderedDict()
        self._pos = 0
        self.requests = 0  # ranged GETs made, for tests and metrics

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._pos = target
        return target

    def readinto(self, buffer: Any) -> int:
        self._check_open()
        view = memoryview(buffer).cast("B")
        if self._pos >= self._size or len(view) == 0:
            return 0
        index, start = divmod(self._pos, self._chunk_size)
        chunk = self._chunk(index)
        count = min(len(view), len(chunk) - start)
        view[:count] = memoryview(chunk)[start : start + count]
        self._pos += count
        return count

    def close(self) -> None:
        self._chunks.clear()
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed S3RangeReader")

    def _chunk(self, index: int) -> bytes:
        chunk = self._chunks.get(index)
        if chunk is not None:
            self._chunks.move_to_end(index)
            return chunk
        offset = index * self._chunk_size
        length = min(self._chunk_size, self._size - offset)
        fetched: bytes = self._call(lambda: self._get(offset, length), f"bytes {offset}-{offset + length - 1}")
        self._chunks[index] = fetched
        while len(self._chunks) > self._cached:
            self._chunks.popitem(last=False)
        return fetched

    def _get(self, offset: int, length: int) -> bytes:
        self.requests += 1
        response = self._client.get_object(
            self._bucket, self._key, offset=offset, length=length, request_headers=self._headers
        )
        try:
            data = response.read()
        finally:
            response.close()
            response.release_conn()
        if len(data) != length:
            raise ObjectReadError(f"short read: got {len(data)} of {length} bytes")
        return data

    def _call(self, action: Any, what: str) -> Any:
        error: BaseException | None = None
        for attempt in range(self._retries):
            try:
                return action()
            except Exception as exc:
                error = exc
                if getattr(exc, "code", None) in _PERMANENT:
                    break
            if attempt + 1 < self._retries:
                time.sleep(self._retry_delay * (2**attempt))
        raise ObjectReadError(f"cannot read s3://{self._bucket}/{self._key} ({what}): {error}") from error


class ReadGuard(io.RawIOBase):
    """A read-only view of a stream for a decoder that reads it by itself (FFmpeg through PyAV).

    * It has no ``name``: FFmpeg would otherwise take the name's extension as a hint when it guesses the format;
      the format is found from the bytes alone.
    * Closing it does not close the inner stream (PyAV closes the file object it was given).
    * The first exception raised by the inner stream is kept in ``error``: decoders report a failed read as a
      damaged file, so the caller checks ``error`` before blaming the content.
    """

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self._inner = inner
        self.error: BaseException | None = None
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._inner.read(size) or b""
        except Exception as exc:
            self.error = self.error or exc
            raise
        self.bytes_read += len(data)
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return int(self._inner.seek(offset, whence))
        except Exception as exc:
            self.error = self.error or exc
            raise

    def tell(self) -> int:
        try:
            return int(self._inner.tell())
        except Exception as exc:
            self.error = self.error or exc
            raise

    def close(self) -> None:
        # The caller owns the inner stream; only this view is closed.
        super().close()
