"""Decode any supported audio file to what the decoder needs: 16 kHz mono signed 16-bit PCM.

Contract of :func:`load_pcm`: returns little-endian s16 mono samples at ``SAMPLE_RATE`` of the
first audio stream (wav, mp3, m4a, flac, anything FFmpeg reads), optionally only the segment
``[offset, offset + duration)`` in seconds. A file that cannot be decoded or has no audio
stream raises ``ValueError`` naming the file.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 16_000


def load_pcm(path: Path, offset: float | None = None, duration: float | None = None) -> bytes:
    """Decode ``path`` (or a segment of it) to 16 kHz mono s16 PCM bytes (see module contract)."""
    offset = max(float(offset or 0.0), 0.0)
    if duration is not None and duration <= 0:
        raise ValueError(f"{Path(path).name}: segment duration must be positive, got {duration}")
    chunks: list[np.ndarray] = []
    have = 0
    first_time: float | None = None
    try:
        with av.open(str(path)) as container:
            streams = container.streams.audio
            if not streams:
                raise ValueError(f"{Path(path).name}: no audio stream")
            stream = streams[0]
            if offset > 0 and stream.time_base is not None:
                # Seeks to a point at or before the offset; the exact cut happens below.
                container.seek(int(offset / stream.time_base), stream=stream, backward=True, any_frame=False)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            wanted_end = None if duration is None else offset + duration
            for frame in container.decode(stream):
                if first_time is None:
                    first_time = float(frame.time or 0.0)
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1)
                    chunks.append(samples)
                    have += samples.size
                if wanted_end is not None and first_time + have / SAMPLE_RATE >= wanted_end:
                    break
            else:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise ValueError(f"{Path(path).name}: cannot decode audio ({exc})") from exc
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    start = max(round((offset - (first_time or 0.0)) * SAMPLE_RATE), 0)
    stop = None if duration is None else start + round(duration * SAMPLE_RATE)
    return pcm[start:stop].astype("<i2", copy=False).tobytes()


def stream_pcm(path: Path) -> Iterator[bytes]:
    """16 kHz mono s16 PCM of the whole of ``path``, one decoded frame at a time (memory does not grow with the
    file's length). ``ValueError`` when it cannot be decoded, as :func:`load_pcm`."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError(f"{Path(path).name}: no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().astype("<i2", copy=False).tobytes()
            for out in resampler.resample(None):
                yield out.to_ndarray().astype("<i2", copy=False).tobytes()
    except av.error.FFmpegError as exc:
        raise ValueError(f"{Path(path).name}: cannot decode audio ({exc})") from exc


def pcm_duration(pcm: bytes) -> float:
    """Seconds of audio in 16 kHz mono s16 ``pcm``."""
    return len(pcm) / 2 / SAMPLE_RATE


def write_wav(path: Path, pcm: bytes) -> Path:
    """Write 16 kHz mono s16 ``pcm`` as a WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm)
    return path


def read_wav(path: Path) -> bytes:
    """The PCM of a WAV file written by :func:`write_wav`."""
    with wave.open(str(path), "rb") as handle:
        if (handle.getnchannels(), handle.getsampwidth(), handle.getframerate()) != (1, 2, SAMPLE_RATE):
            raise ValueError(f"{Path(path).name}: not 16 kHz mono 16-bit audio")
        return handle.readframes(handle.getnframes())
