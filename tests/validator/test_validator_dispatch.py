"""validate_dataset routes each dataset type to its rule."""

from __future__ import annotations

import io

import pytest

from voxtrain_shared.vocab import DatasetType
from voxtrain_validator.rules import validate_dataset


def test_each_type_goes_to_its_rule(media):
    with media["speech.wav"].open("rb") as stream:
        audio = validate_dataset(stream, DatasetType.AUDIO, "call.WAV")
    text = validate_dataset(io.BytesIO(b"hello there\n"), DatasetType.TEST, "exam.txt")
    manifest = validate_dataset(
        io.BytesIO(b'{"audio": "x.wav", "text": "hi"}\n'), DatasetType.MANIFEST, "pairs.jsonl", resolve=lambda ref: None
    )

    assert audio.passed and audio.metadata["codec"] == "pcm_s16le"
    assert text.passed and text.metadata["format"] == "txt"
    assert not manifest.passed and manifest.code == "validation_failed"


def test_a_file_without_extension_is_judged_by_its_type():
    outcome = validate_dataset(io.BytesIO(b"hello"), DatasetType.TRANSCRIPT, "README")

    assert outcome.code == "invalid_transcript_format"


def test_a_manifest_needs_a_resolver():
    with pytest.raises(ValueError):
        validate_dataset(io.BytesIO(b"{}"), DatasetType.MANIFEST, "pairs.jsonl")
