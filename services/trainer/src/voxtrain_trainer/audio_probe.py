"""Opening a recording with FFmpeg (a local file, or a stored one read with ranged GETs as FFmpeg seeks), and how long
it plays, read from its container (headers or packet timestamps, no decoding).

An MP3 states its length only in an optional Xing/Info frame; without one FFmpeg guesses it from the file size
and the first frames' bit rate, which for VBR audio is off by any factor (a VBR MP3 of 23.6 s that starts with
silence is "50 s"). So an MP3's frames are counted instead: reading them without decoding takes well under a
second for hours of audio.

Imports nothing of the training pipeline: the service process uses it too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av

from voxtrain_shared.range_reader import ReadGuard

from .storage_errors import InputUnavailable

if TYPE_CHECKING:
    from .ml.types import Media


@contextlib.contextmanager
def opened(media: Media) -> Iterator[Any]:
    """The recording opened by FFmpeg (a PyAV input container), closed after. A stored recording whose bytes
    cannot be read raises InputUnavailable (the storage's fault, not the file's), wherever FFmpeg noticed it."""
    if isinstance(media, Path):
        with av.open(str(media)) as container:
            yield container
        return
    stream = media.open()
    guard = ReadGuard(stream)
    try:
        with av.open(guard, mode="r") as container:
            yield container
    except Exception as exc:
        if guard.error is not None:  # FFmpeg reports a failed read as damage: it was the storage
            raise InputUnavailable(f"{media.name}: reading it from storage failed: {guard.error}") from exc
        raise
    finally:
        stream.close()


def duration_seconds(path: Media) -> float:
    """Seconds of audio in ``path`` (a local file or a stored recording); ValueError if it is not audio PyAV can
    read."""
    try:
        with opened(path) as container:
            if not container.streams.audio:
                raise ValueError("no audio stream")
            if container.format.name == "mp3":
                return _counted_seconds(container, container.streams.audio[0])
            if container.duration:
                return float(container.duration / av.time_base)
            stream = container.streams.audio[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            return _counted_seconds(container, stream)
    except av.FFmpegError as exc:
        raise ValueError(str(exc)) from None


def _counted_seconds(container: Any, stream: Any) -> float:
    """The packets' durations added up, less the encoder delay FFmpeg drops at the start (``start_time``)."""
    if not stream.time_base:
        return 0.0
    ticks = sum(packet.duration or 0 for packet in container.demux(stream))
    return max(float((ticks - max(stream.start_time or 0, 0)) * stream.time_base), 0.0)
