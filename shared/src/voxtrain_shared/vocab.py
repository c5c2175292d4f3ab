"""The product's shared vocabulary: training statuses, dataset types and error codes.

Codes, names and badge colours are the spec's (shared/spec/training-process.txt); every service
speaks them, so they live here and nowhere else.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ModelStatus(IntEnum):
    """The five training statuses of a custom model."""

    NOT_RUNNING = 1
    READY_TO_RUN = 2
    RUNNING = 3
    SUCCESS = 4
    FAILED = 5

    @property
    def badge(self) -> str:
        """Badge colour shown next to the status."""
        return _BADGES[self]

    @property
    def label(self) -> str:
        """Human label, as the console shows it."""
        return _LABELS[self]

    @property
    def locked(self) -> bool:
        """While queued or running, a model and its datasets cannot change."""
        return self in (ModelStatus.READY_TO_RUN, ModelStatus.RUNNING)

    @property
    def can_train(self) -> bool:
        """The "Train the Language" button rule: shown only in 1 and 5."""
        return self in (ModelStatus.NOT_RUNNING, ModelStatus.FAILED)

    @property
    def accepts_datasets(self) -> bool:
        """Datasets may be added or removed in 1 and 5 only (locked in 2 and 3; 4 is final)."""
        return not self.locked and self is not ModelStatus.SUCCESS


_BADGES = {
    ModelStatus.NOT_RUNNING: "zinc",
    ModelStatus.READY_TO_RUN: "amber",
    ModelStatus.RUNNING: "sky",
    ModelStatus.SUCCESS: "emerald",
    ModelStatus.FAILED: "red",
}
_LABELS = {
    ModelStatus.NOT_RUNNING: "Not Running",
    ModelStatus.READY_TO_RUN: "Ready to Run",
    ModelStatus.RUNNING: "Running",
    ModelStatus.SUCCESS: "Success",
    ModelStatus.FAILED: "Failed",
}


class DatasetType(IntEnum):
    """Dataset types with the spec's numbers."""

    TRANSCRIPT = 1
    TEST = 2
    AUDIO = 3
    MANIFEST = 4

    @property
    def extensions(self) -> tuple[str, ...]:
        """File extensions (lower case, with the dot) accepted for this type."""
        return _EXTENSIONS[self]

    @property
    def auto_detected(self) -> bool:
        """Whether the type ``auto`` picks this type by extension (TEST shares TRANSCRIPT's: chosen explicitly)."""
        return self is not DatasetType.TEST

    @classmethod
    def parse(cls, value: str | int) -> DatasetType:
        """Accept a name (any case) or the spec's number; raise ValueError otherwise."""
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return cls(int(value))
        return cls[str(value).strip().upper()]


_EXTENSIONS = {
    DatasetType.TRANSCRIPT: (".vtt", ".srt", ".txt"),
    DatasetType.TEST: (".vtt", ".srt", ".txt"),
    DatasetType.AUDIO: (".wav", ".mp3", ".m4a", ".flac"),
    DatasetType.MANIFEST: (".jsonl",),
}


#: Display names of the languages the product knows (which of them have a base model is the models
#: service's setting).
LANGUAGE_NAMES = {"en-US": "English (en-US)"}


class ErrorCode(StrEnum):
    """Every error code a client or subscriber can see."""

    VALIDATION_FAILED = "validation_failed"
    INVALID_AUDIO_FORMAT = "invalid_audio_format"
    INVALID_TRANSCRIPT_FORMAT = "invalid_transcript_format"
    FILE_TOO_LARGE = "file_too_large"
    TOO_MANY_FILES = "too_many_files"
    MODEL_LOCKED = "model_locked"
    INVALID_STATUS = "invalid_status"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    DEPENDENCY_UNAVAILABLE = "dependency_unavailable"
    INTERNAL_ERROR = "internal_error"
    NO_TRAINING_TEXT = "no_training_text"
    STAGE_FAILED = "stage_failed"
    WORKER_LOST = "worker_lost"
    TRAINING_TIMEOUT = "training_timeout"
    VALIDATION_TIMEOUT = "validation_timeout"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    NO_DATASETS = "no_datasets"
    CANCELLED = "cancelled"
    REQUEST_TOO_LARGE = "request_too_large"
    TOO_MANY_UPLOADS = "too_many_uploads"
    SERVER_BUSY = "server_busy"
    UPLOAD_ABANDONED = "upload_abandoned"
    PART_CHECKSUM_MISSING = "part_checksum_missing"
    PART_CHECKSUM_MISMATCH = "part_checksum_mismatch"


class Scope(StrEnum):
    """What a token (or the API key it was exchanged for) may do: ``read`` (GET routes and transcription),
    ``write`` (create, update, delete, upload) and ``train`` (start or cancel a training, auto_train)."""

    READ = "read"
    WRITE = "write"
    TRAIN = "train"
