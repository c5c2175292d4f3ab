"""Split long audio into speech segments (PocketSphinx's VAD) so each is decoded on its own.

Contract: :func:`speech_segments` returns ``(start_seconds, pcm)`` for every stretch of speech
in 16 kHz mono s16 ``pcm``, in order; silence between them is dropped. Decoding a long file as
one utterance is slow and memory-hungry, so callers segment anything longer than a few tens of
seconds.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import pocketsphinx

from voxtrain_trainer.ml.audio import SAMPLE_RATE


def speech_segments(pcm: bytes) -> list[tuple[float, bytes]]:
    """Speech stretches of ``pcm`` with their start times (see module contract)."""
    segmenter = pocketsphinx.Segmenter(sample_rate=SAMPLE_RATE)
    return [(float(seg.start_time), seg.pcm) for seg in segmenter.segment(io.BytesIO(pcm))]


def streamed_speech(chunks: Iterable[bytes], max_seconds: float) -> Iterator[tuple[float, bytes]]:
    """Speech stretches of a PCM stream as they end, with their start times, none longer than ``max_seconds``
    (longer speech is cut there): memory holds one stretch, whatever the stream's length."""
    seg = pocketsphinx.Segmenter(sample_rate=SAMPLE_RATE)
    limit = max(int(max_seconds * SAMPLE_RATE) * 2, seg.frame_bytes)
    pending = bytearray()
    frames: list[bytes] = []
    size, start = 0, 0.0
    rest: float | None = None  # where the rest of a stretch cut at the limit starts

    def add(speech: bytes) -> None:
        nonlocal size, start
        if not frames:
            start = rest if rest is not None else float(seg.speech_start)
        frames.append(speech)
        size += len(speech)

    for chunk in chunks:
        pending += chunk
        used = 0
        while len(pending) - used >= seg.frame_bytes:
            speech = seg.process(bytes(pending[used : used + seg.frame_bytes]))
            used += seg.frame_bytes
            if speech is None:
                continue
            add(speech)
            if not seg.in_speech or size >= limit:
                yield start, b"".join(frames)
                rest = start + size / 2 / SAMPLE_RATE if seg.in_speech else None
                frames, size = [], 0
        del pending[:used]
    if seg.in_speech:
        tail = seg.end_stream(bytes(pending))
        if tail:
            add(tail)
    if frames:
        yield start, b"".join(frames)
