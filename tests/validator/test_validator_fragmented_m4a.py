"""A fragmented M4A has no sample table to count up front, but FFmpeg indexes every packet it reads: the packet
limit that guards a plain M4A before it is opened applies to a fragmented one while it is decoded."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from voxtrain_shared.vocab import ErrorCode
from voxtrain_validator.rules import audio, validate_audio
from voxtrain_validator.rules.audio_headers import mp4_audio_packets


@pytest.fixture(scope="module")
def fragmented(media, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fragmented") / "fragmented.m4a"
    flags = ("-movflags", "frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "1000000")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(media["speech.wav"]), "-c:a", "aac", *flags, str(out)], check=True
    )
    return out


def check(path: Path):
    with path.open("rb") as stream:
        return validate_audio(stream, "m4a")


def test_a_fragmented_m4a_lists_no_packets_up_front_and_passes_under_the_limit(fragmented: Path) -> None:
    with fragmented.open("rb") as stream:
        assert not mp4_audio_packets(stream, fragmented.stat().st_size)  # nothing to guard with before opening
    outcome = check(fragmented)
    assert outcome.passed, outcome.message
    assert outcome.metadata["duration_seconds"] > 3


def test_a_fragmented_m4a_with_more_packets_than_the_limit_is_refused_while_decoded(fragmented: Path, monkeypatch):
    monkeypatch.setattr(audio, "MAX_MP4_PACKETS", 40)  # the speech is ~100 packets

    outcome = check(fragmented)

    assert not outcome.passed and outcome.code is ErrorCode.INVALID_AUDIO_FORMAT
    assert outcome.message == (
        "This M4A file holds more than 40 audio packets: FFmpeg keeps an index entry for every packet it reads, more "
        "than the memory a validation or a training has. Split the recording into shorter files and upload those."
    )
