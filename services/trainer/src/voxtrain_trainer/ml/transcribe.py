"""Transcribe an audio file with a trained model or the base model.

Contract: ``transcribe(None, path)`` uses the shipped base model with default weights;
``transcribe(model_dir, path)`` uses the model directory a training run produced. For many files
keep one :func:`load_decoder` result and call :func:`transcribe_with`: loading costs ~0.3 s.
With ``offset``/``duration`` only that segment is decoded; word times are always seconds from
the start of the file. Audio longer than ``max_utterance_seconds`` is split at silences (VAD)
and the pieces are decoded one by one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from voxtrain_trainer.ml.audio import SAMPLE_RATE, load_pcm, pcm_duration, stream_pcm
from voxtrain_trainer.ml.decoder import SpeechDecoder, Transcript, WordTiming
from voxtrain_trainer.ml.model_files import decoder_config
from voxtrain_trainer.ml.segmenting import speech_segments, streamed_speech

MAX_UTTERANCE_SECONDS = 30.0


def load_decoder(model_dir: Path | None) -> SpeechDecoder:
    """A ready decoder for ``model_dir`` (``None``: the base model)."""
    return SpeechDecoder(decoder_config(model_dir))


def _shifted(transcript: Transcript, seconds: float) -> list[WordTiming]:
    return [WordTiming(w.word, w.start + seconds, w.end + seconds) for w in transcript.words]


def transcribe_with(
    decoder: SpeechDecoder,
    audio_path: Path,
    offset: float | None = None,
    duration: float | None = None,
    max_utterance_seconds: float = MAX_UTTERANCE_SECONDS,
) -> Transcript:
    """Decode ``audio_path`` (or its segment) with an already loaded decoder."""
    pcm = load_pcm(Path(audio_path), offset, duration)
    start = offset or 0.0
    pieces = speech_segments(pcm) if pcm_duration(pcm) > max_utterance_seconds else [(0.0, pcm)]
    words: list[WordTiming] = []
    for piece_start, piece in pieces:
        words.extend(_shifted(decoder.decode(piece), start + piece_start))
    return Transcript(" ".join(w.word for w in words), words)


def transcribe_streaming(
    decoder: SpeechDecoder,
    audio_path: Path,
    on_progress: Callable[[float], None] | None = None,
    max_utterance_seconds: float = MAX_UTTERANCE_SECONDS,
) -> Transcript:
    """Decode the whole of ``audio_path`` in bounded memory: audio is decoded frame by frame and cut at silences
    (and every ``max_utterance_seconds`` of unbroken speech); each piece is recognised as it ends.
    Audio no longer than ``max_utterance_seconds`` is one utterance, as in :func:`transcribe_with`.
    ``on_progress`` is told the seconds of audio done after each piece."""
    chunks = stream_pcm(Path(audio_path))
    head: list[bytes] = []
    held = 0
    for chunk in chunks:
        head.append(chunk)
        held += len(chunk)
        if held / 2 / SAMPLE_RATE > max_utterance_seconds:
            break
    else:
        pcm = b"".join(head)
        if on_progress is not None:
            on_progress(pcm_duration(pcm))
        return decoder.decode(pcm)
    words: list[WordTiming] = []
    for piece_start, piece in streamed_speech(itertools.chain(head, chunks), max_utterance_seconds):
        words.extend(_shifted(decoder.decode(piece), piece_start))
        if on_progress is not None:
            on_progress(piece_start + pcm_duration(piece))
    return Transcript(" ".join(w.word for w in words), words)


def transcribe(
    model_dir: Path | None, audio_path: Path, offset: float | None = None, duration: float | None = None
) -> Transcript:
    """Text and word timings of ``audio_path`` under the given model (see module contract)."""
    return transcribe_with(load_decoder(model_dir), audio_path, offset, duration)
