"""Shared fixtures of the trainer tests: the medical-domain data set, spoken once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.trainer.medical_domain import TEST_SENTENCES, TUNING_SENTENCES, speak_all


@dataclass(frozen=True)
class SpokenData:
    """Test and tuning utterances as 16 kHz mono WAV files with their sentences."""

    test: list[tuple[Path, str]]
    tuning: list[tuple[Path, str]]


@pytest.fixture(scope="session")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> SpokenData:
    directory = tmp_path_factory.mktemp("speech")
    test = speak_all(TEST_SENTENCES, directory, "test")
    tuning = speak_all(TUNING_SENTENCES, directory, "tune")
    return SpokenData(list(zip(test, TEST_SENTENCES, strict=True)), list(zip(tuning, TUNING_SENTENCES, strict=True)))
