"""Transcribe an audio file with a trained model or the base model.

Contract: ``transcribe(None, path)`` uses the shipped base model with default weights;
``transcribe(model_dir, path)`` uses the model directory a training run produced. For many files
keep one :func:`load_decoder` result and call :func:`transcribe_with`: loading costs ~0.3 s.
"""

from __future__ import annotations

from pathlib import Path

from voxtrain_trainer.ml.audio import load_pcm
from voxtrain_trainer.ml.decoder import SpeechDecoder, Transcript
from voxtrain_trainer.ml.model_files import decoder_config


def load_decoder(model_dir: Path | None) -> SpeechDecoder:
    """A ready decoder for ``model_dir`` (``None``: the base model)."""
    return SpeechDecoder(decoder_config(model_dir))


def transcribe_with(
    decoder: SpeechDecoder, audio_path: Path, offset: float | None = None, duration: float | None = None
) -> Transcript:
    """Decode ``audio_path`` (or its segment) with an already loaded decoder."""
    return decoder.decode(load_pcm(Path(audio_path), offset, duration))


def transcribe(
    model_dir: Path | None, audio_path: Path, offset: float | None = None, duration: float | None = None
) -> Transcript:
    """Text and word timings of ``audio_path`` under the given model (see module contract)."""
    return transcribe_with(load_decoder(model_dir), audio_path, offset, duration)
