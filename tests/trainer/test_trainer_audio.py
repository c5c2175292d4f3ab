"""Audio decoding to 16 kHz mono s16 with PyAV, whole files and segments, in every container."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from voxtrain_trainer.ml.audio import SAMPLE_RATE, load_pcm, pcm_duration


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of stereo 44.1 kHz audio: a 440 Hz tone whose loudness steps up every second."""
    directory = tmp_path_factory.mktemp("audio")
    path = directory / "tone.wav"
    t = np.arange(3 * 44100) / 44100
    amplitude = 0.1 + 0.3 * np.floor(t)  # 0.1, 0.4, 0.7
    samples = (amplitude * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    raw = directory / "tone.raw"
    raw.write_bytes(np.repeat(samples[:, None], 2, axis=1).tobytes())
    subprocess.run(
        ["sox", "-t", "raw", "-r", "44100", "-e", "signed", "-b", "16", "-c", "2", str(raw), str(path)], check=True
    )
    return path


def _rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, "<i2").astype(float) / 32767
    return float(np.sqrt(np.mean(x**2)))


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".m4a"])
def test_every_container_decodes_to_16k_mono(tone: Path, suffix: str) -> None:
    path = tone if suffix == ".wav" else tone.with_suffix(suffix)
    if suffix != ".wav":
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(tone), str(path)], check=True)
    pcm = load_pcm(path)
    assert pcm_duration(pcm) == pytest.approx(3.0, abs=0.06)
    assert _rms(pcm) == pytest.approx(np.sqrt((0.1**2 + 0.4**2 + 0.7**2) / 3 / 2), rel=0.05)


def test_segment_is_cut_where_asked(tone: Path) -> None:
    middle = load_pcm(tone, offset=1.1, duration=0.8)
    assert len(middle) == 2 * int(0.8 * SAMPLE_RATE)
    assert _rms(middle) == pytest.approx(0.4 / np.sqrt(2), rel=0.03)
    tail = load_pcm(tone, offset=2.2)
    assert pcm_duration(tail) == pytest.approx(0.8, abs=0.01)
    assert _rms(tail) == pytest.approx(0.7 / np.sqrt(2), rel=0.03)


def test_not_audio_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is text, not audio")
    with pytest.raises(ValueError, match=r"notes\.wav"):
        load_pcm(path)
