"""voxtrain's training core: offline CPU training, evaluation and transcription.

Pure, synchronous functions a worker process calls; no I/O beyond local files and the
``espeak-ng`` binary. Entry points: :func:`run_training` and :func:`transcribe`.
"""

from voxtrain_trainer.ml.decoder import Transcript, WordTiming
from voxtrain_trainer.ml.errors import TrainingError
from voxtrain_trainer.ml.normalize import normalize_text
from voxtrain_trainer.ml.pipeline import run_training
from voxtrain_trainer.ml.transcribe import load_decoder, transcribe, transcribe_with
from voxtrain_trainer.ml.types import AudioPair, TextFile, TrainingInputs, TrainingResult, TrainingSettings

__all__ = [
    "AudioPair",
    "TextFile",
    "TrainingError",
    "TrainingInputs",
    "TrainingResult",
    "TrainingSettings",
    "Transcript",
    "WordTiming",
    "load_decoder",
    "normalize_text",
    "run_training",
    "transcribe",
    "transcribe_with",
]
