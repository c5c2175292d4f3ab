"""Reading the caller's stream: every failure of the stream itself becomes SourceReadError.

A content check must never blame the file for a storage hiccup, so all access to the caller's
stream goes through these helpers (or through :class:`GuardedStream` for decoders that read it
themselves).
"""

from __future__ import annotations

import io
from typing import BinaryIO

from voxtrain_shared.range_reader import ReadGuard

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


class GuardedStream(ReadGuard):
    """The caller's stream as a decoder reads it (see :class:`~voxtrain_shared.range_reader.ReadGuard`): a failed
    read or seek is the stream's fault, raised as SourceReadError, not the content's."""

    def raise_if_failed(self) -> None:
        """Raise SourceReadError if any read or seek of the caller's stream failed."""
        if self.error is not None:
            raise SourceReadError(f"reading the file failed: {self.error}") from self.error
