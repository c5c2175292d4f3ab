"""Split long audio into speech segments (PocketSphinx's VAD) so each is decoded on its own.

Contract: :func:`speech_segments` returns ``(start_seconds, pcm)`` for every stretch of speech
in 16 kHz mono s16 ``pcm``, in order; silence between them is dropped. Decoding a long file as
one utterance is slow and memory-hungry, so callers segment anything longer than a few tens of
seconds.
"""

from __future__ import annotations

import io

import pocketsphinx

from voxtrain_trainer.ml.audio import SAMPLE_RATE


def speech_segments(pcm: bytes) -> list[tuple[float, bytes]]:
    """Speech stretches of ``pcm`` with their start times (see module contract)."""
    segmenter = pocketsphinx.Segmenter(sample_rate=SAMPLE_RATE)
    return [(float(seg.start_time), seg.pcm) for seg in segmenter.segment(io.BytesIO(pcm))]
