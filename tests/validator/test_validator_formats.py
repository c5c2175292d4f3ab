"""Encodings whose refusal needs its own words.

A fragmented M4A has no sample table to count up front, but FFmpeg indexes every packet it reads: the packet limit
that guards a plain M4A before it is opened applies to a fragmented one while it is decoded. A free-format MP3 (no
standard bit rate in its frame headers) cannot be read by FFmpeg at all: it is refused as what it is, not as damaged.
"""

from __future__ import annotations

import io
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


FREE_FORMAT_FRAME = b"\xff\xfb\x08\x64" + bytes(257)  # MPEG-1 layer III, bit-rate index 0, 32 kHz


@pytest.mark.parametrize("tag", [b"", b"ID3\x03\x00\x00\x00\x00\x00\x00"], ids=["bare", "after an ID3v2 tag"])
def test_a_free_format_mp3_is_refused_as_such_with_what_to_do(tag: bytes) -> None:
    outcome = validate_audio(io.BytesIO(tag + FREE_FORMAT_FRAME * 200), "mp3")

    assert not outcome.passed and outcome.code is ErrorCode.INVALID_AUDIO_FORMAT
    assert outcome.message is not None and outcome.message.startswith("This MP3 is in free format")
    assert "Encode it again from the original recording at a standard bit rate" in outcome.message


def test_a_fragmented_m4a_reserves_what_its_size_could_index_and_a_big_one_is_checked_alone(fragmented: Path):
    import threading
    import time

    from voxtrain_validator.rules.memory import MemoryBudget

    size = fragmented.stat().st_size
    need = size // audio.MIN_MP4_PACKET_BYTES * audio.MP4_INDEX_BYTES_PER_PACKET
    budget = MemoryBudget(need, poll_seconds=0.01)
    out: dict = {}
    with budget.hold(1):  # another check holds a byte: this one's reservation no longer fits
        thread = threading.Thread(
            target=lambda: out.update(outcome=validate_audio(fragmented.open("rb"), "m4a", budget))
        )
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive() and not out
    thread.join(30)
    assert out["outcome"].passed and budget.used == 0

    small = MemoryBudget(need // 10)  # more than the budget: it takes all of it (checked alone), never refused
    assert validate_audio(fragmented.open("rb"), "m4a", small).passed and small.used == 0
