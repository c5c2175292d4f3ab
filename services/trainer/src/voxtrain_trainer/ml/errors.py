"""Typed failures of the training core.

Every failure a worker can report carries a stable machine ``code`` and a message a person can
act on. ``stage`` names the pipeline stage that failed (``None`` when the failure is about the
input as a whole).
"""

from __future__ import annotations


class TrainingError(Exception):
    """A training run failed; ``code`` is stable, ``message`` is for people."""

    NO_TRAINING_TEXT = "no_training_text"
    STAGE_FAILED = "stage_failed"
    LM_SPILL_LIMIT_EXCEEDED = "lm_spill_limit_exceeded"
    INPUTS_TOO_LARGE = "inputs_too_large"

    def __init__(self, code: str, message: str, stage: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.stage = stage

    def __str__(self) -> str:
        where = f" [{self.stage}]" if self.stage else ""
        return f"{self.code}{where}: {self.message}"
