"""One entry point for every dataset type, so the service needs no per-type branching."""

from __future__ import annotations

import threading
from pathlib import PurePosixPath
from typing import BinaryIO

from voxtrain_shared.vocab import DatasetType

from .audio import validate_audio
from .manifest import Resolver, validate_manifest
from .memory import MemoryBudget
from .outcome import Outcome
from .transcript import validate_transcript


def extension(file_name: str) -> str:
    """The file name's extension as the rules compare it: lower-case, with its dot (``".wav"``)."""
    return PurePosixPath(file_name.replace("\\", "/")).suffix.lower()


def validate_dataset(
    stream: BinaryIO,
    dataset_type: DatasetType,
    file_name: str,
    resolve: Resolver | None = None,
    memory: MemoryBudget | None = None,
    abandoned: threading.Event | None = None,
) -> Outcome:
    """Validate ``stream`` as a dataset of ``dataset_type`` uploaded as ``file_name``.

    ``resolve`` is required for MANIFEST datasets (see validate_manifest); ``memory`` and ``abandoned`` are the
    process's shared budget and this check's give-up signal (see validate_audio). Same contract as the
    per-type functions: content problems are a failed Outcome, stream failures raise
    SourceReadError.
    """
    ext = extension(file_name)
    if dataset_type == DatasetType.AUDIO:
        return validate_audio(stream, ext, memory, abandoned)
    if dataset_type in (DatasetType.TRANSCRIPT, DatasetType.TEST):
        return validate_transcript(stream, ext)
    if dataset_type == DatasetType.MANIFEST:
        if resolve is None:
            raise ValueError("validating a MANIFEST dataset needs a resolve function")
        return validate_manifest(stream, resolve)
    raise ValueError(f"unknown dataset type {dataset_type!r}")
