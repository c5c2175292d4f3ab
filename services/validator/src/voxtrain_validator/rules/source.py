"""Reading the caller's stream: every failure of the stream itself becomes SourceReadError.

A content check must never blame the file for a storage hiccup, so all access to the caller's
stream goes through these helpers (or through :class:`GuardedStream` for decoders that read it
themselves).
"""

from __future__ import annotations

import io
from typing import BinaryIO

from .outcome import SourceReadError


def stream_size(stream: BinaryIO) -> int:
    """Size in bytes of a seekable stream; leaves it positioned at 0."""
    try:
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
    except Exception as exc:
        raise SourceReadError(f"cannot seek the stream: {exc}") from exc
    return int(size)


def read_at(stream: BinaryIO, offset: int, count: int) -> bytes:
    """Up to ``count`` bytes at ``offset`` (fewer only at the end of the stream)."""
    try:
        stream.seek(offset)
        parts: list[bytes] = []
        left = count
        while left > 0:
            part = stream.read(left)
            if not part:
                break
            parts.append(part)
            left -= len(part)
    except Exception as exc:
        raise SourceReadError(f"cannot read the stream at byte {offset}: {exc}") from exc
    return b"".join(parts)


def read_chunk(stream: BinaryIO, count: int) -> bytes:
    """The next up to ``count`` bytes from the current position (b"" at the end)."""
    try:
        return stream.read(count) or b""
    except Exception as exc:
        raise SourceReadError(f"cannot read the stream: {exc}") from exc


class GuardedStream(io.RawIOBase):
    """A read-only view of the caller's stream for a decoder that reads it by itself.

    * It has no ``name``: FFmpeg would otherwise use the name's extension as a hint when it
      guesses the format, and the point is to find the real format from the bytes alone.
    * Closing it does not close the caller's stream (PyAV closes the file object it was given).
    * The first exception raised by the caller's stream is kept in ``error``: decoders report a
      failed read as a damaged file, so the caller checks ``error`` before blaming the content.
    """

    def __init__(self, inner: BinaryIO) -> None:
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
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]  # io.RawIOBase takes any buffer
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

    def raise_if_failed(self) -> None:
        """Raise SourceReadError if any read or seek of the caller's stream failed."""
        if self.error is not None:
            raise SourceReadError(f"reading the file failed: {self.error}") from self.error
