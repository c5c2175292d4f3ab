"""Decode any supported audio file to what the decoder needs: 16 kHz mono signed 16-bit PCM.

Contract of :func:`load_pcm`: returns little-endian s16 mono samples at ``SAMPLE_RATE`` of the
first audio stream (wav, mp3, m4a, flac, anything FFmpeg reads), optionally only the segment
``[offset, offset + duration)`` in seconds, counted from the first sample a player plays. A file that
cannot be decoded or has no audio stream raises ``ValueError`` naming the file. A recording is a local file or a
:class:`~voxtrain_trainer.ml.types.StoredRecording` (read where it is stored, as FFmpeg seeks: a segment costs the
bytes around it, not the whole file); a stored one whose bytes cannot be read raises
:class:`~voxtrain_trainer.storage_errors.InputUnavailable` instead (the storage's fault, not the file's).
"""

from __future__ import annotations

import contextlib
import itertools
import wave
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from voxtrain_trainer.audio_probe import opened
from voxtrain_trainer.ml.types import Media

SAMPLE_RATE = 16_000
# Decoding starts this much before a segment: an MP3 frame needs the bit reservoir and overlap of the frames before
# it (up to ~220 ms at 8 kHz), G.726 its adapted state; started cold, a segment's first ~50 ms are noise.
PREROLL_SECONDS = 0.25


def load_pcm(path: Media, offset: float | None = None, duration: float | None = None) -> bytes:
    """Decode ``path`` (or a segment of it) to 16 kHz mono s16 PCM bytes (see module contract)."""
    with OpenRecording() as recording:
        return recording.load_pcm(path, offset, duration)


class OpenRecording:
    """Cuts segments like :func:`load_pcm`, keeping the last recording open between calls: consecutive segments of
    one recording (the cues of a long recording, one after another) then cost one opening — an MP4's index is read
    once — and FFmpeg's seek index, which it builds while it reads an MP3 without one, serves every later seek
    instead of each segment reading the file again from its start. Close it (or use it as a context manager)."""

    def __init__(self) -> None:
        self._media: Media | None = None
        self._stack: contextlib.ExitStack | None = None
        self._container: Any = None
        self._used = False

    def __enter__(self) -> OpenRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        stack, self._stack, self._media, self._container = self._stack, None, None, None
        if stack is not None:
            stack.close()

    def load_pcm(self, path: Media, offset: float | None = None, duration: float | None = None) -> bytes:
        """``path`` (or its segment) as 16 kHz mono s16 PCM bytes (see module contract)."""
        offset = max(float(offset or 0.0), 0.0)
        if duration is not None and duration <= 0:
            raise ValueError(f"{path.name}: segment duration must be positive, got {duration}")
        try:
            if path != self._media:
                self.close()
                stack = contextlib.ExitStack()
                self._container = stack.enter_context(opened(path))
                self._stack, self._media, self._used = stack, path, False
            try:
                return self._cut(path.name, offset, duration)
            except BaseException as exc:  # through opened(), which tells a failed read from a damaged file
                held, self._stack, self._media, self._container = self._stack, None, None, None
                if held is not None:
                    held.__exit__(type(exc), exc, exc.__traceback__)
                raise
        except av.error.FFmpegError as exc:
            raise ValueError(f"{path.name}: cannot decode audio ({exc})") from exc

    def _cut(self, name: str, offset: float, duration: float | None) -> bytes:
        container = self._container
        streams = container.streams.audio
        if not streams:
            raise ValueError(f"{name}: no audio stream")
        stream = streams[0]
        rewind, self._used = self._used, True  # the container read an earlier segment: start again from the top
        if rewind:
            stream.codec_context.flush_buffers()  # no state of the earlier segment (AAC's overlap) leaks into this
        # Offsets count from the first sample a listener hears; an MP3's timestamps start after the encoder
        # delay FFmpeg drops (50 ms at 22.05 kHz), so that start is where offset 0 is.
        begins, tick = stream.start_time, stream.time_base
        origin = max(float(begins * tick), 0.0) if begins is not None and tick is not None else 0.0
        at = origin + offset
        chunks: list[np.ndarray] = []
        have = 0
        first_time: float | None = None
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        wanted_end = None if duration is None else at + duration
        if offset > 0:
            packets = _packets_from(container, stream, at, rewind)
        else:
            if rewind:
                container.seek(0, stream=stream, backward=True, any_frame=False)
            packets = container.demux(stream)
        for packet in packets:
            for frame in packet.decode():
                if first_time is None:
                    first_time = float(frame.time or 0.0)
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1)
                    chunks.append(samples)
                    have += samples.size
            if wanted_end is not None and first_time is not None and first_time + have / SAMPLE_RATE >= wanted_end:
                break
        else:
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        start = max(round((at - (first_time or 0.0)) * SAMPLE_RATE), 0)
        stop = None if duration is None else start + round(duration * SAMPLE_RATE)
        return pcm[start:stop].astype("<i2", copy=False).tobytes()


def _packets_from(container: Any, stream: Any, at: float, rewind: bool = False) -> Iterator[Any]:
    """The packets of ``stream`` from ``PREROLL_SECONDS`` before second ``at`` of its timeline (or a little earlier) on.

    FFmpeg's seek lands where the timestamps say in MP3, M4A (plain and fragmented) and FLAC, but its WAV
    demuxer turns the time into a byte position with the header's average byte rate, which for ADPCM is a
    rounded (or plainly wrong) figure, as it is in a WAV whose writer got it wrong: the timestamps after such a
    seek drift from the audio by seconds. So unless that rate is exactly what the first packet shows, a WAV's
    packets are read in order, which FFmpeg times exactly, and the ones before ``at`` are skipped undecoded
    (~0.15 s for an hour of 16 kHz IMA ADPCM). ``rewind``: the container has read on since its start (a WAV
    then goes back to its first packet; one seek is all the others take, as a second seek after a seek to 0 would
    find FFmpeg about to drop an encoder delay from the wrong packet).
    """
    at = max(at - PREROLL_SECONDS, 0.0)
    if container.format.name == "wav" and rewind:  # read in order from the top, below (a seek to 0 is exact)
        container.seek(0, stream=stream, backward=True, any_frame=False)
    packets = container.demux(stream)
    if container.format.name == "wav":
        first = next(packets, None)
        if first is None or not _byte_rate_is_exact(stream, first):
            head = [] if first is None else [first]
            return itertools.dropwhile(lambda p: _ends_before(p, stream.time_base, at), itertools.chain(head, packets))
    container.seek(int(at / stream.time_base), stream=stream, backward=True, any_frame=False)
    return container.demux(stream)


def _byte_rate_is_exact(stream: Any, first: Any) -> bool:
    """Whether the byte rate FFmpeg seeks a WAV with is what its first packet shows (bytes per second of audio)."""
    if not (first.size and first.duration and stream.time_base and stream.codec_context.bit_rate):
        return False
    return Fraction(first.size * 8) / (first.duration * stream.time_base) == stream.codec_context.bit_rate


def _ends_before(packet: Any, time_base: Fraction | None, at: float) -> bool:
    if packet.pts is None or not packet.duration or time_base is None:
        return False  # the flush packet at the end, or one FFmpeg cannot place: decode it
    return float((packet.pts + packet.duration) * time_base) <= at


def stream_pcm(path: Media) -> Iterator[bytes]:
    """16 kHz mono s16 PCM of the whole of ``path``, one decoded frame at a time (memory does not grow with the
    file's length). ``ValueError`` when it cannot be decoded, as :func:`load_pcm`."""
    try:
        with opened(path) as container:
            if not container.streams.audio:
                raise ValueError(f"{path.name}: no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().astype("<i2", copy=False).tobytes()
            for out in resampler.resample(None):
                yield out.to_ndarray().astype("<i2", copy=False).tobytes()
    except av.error.FFmpegError as exc:
        raise ValueError(f"{path.name}: cannot decode audio ({exc})") from exc


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
