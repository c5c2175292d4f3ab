"""Audio decoding to 16 kHz mono s16 with PyAV, whole files and segments, in every container."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from voxtrain_trainer.audio_probe import duration_seconds
from voxtrain_trainer.eta import Workload
from voxtrain_trainer.ml.audio import SAMPLE_RATE, load_pcm, pcm_duration
from voxtrain_trainer.ml.types import AudioPair, TrainingInputs
from voxtrain_trainer.worker import measured_workload


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


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """70 s of band-limited pink noise (no two places alike), 22.05 kHz mono 16-bit WAV."""
    path = tmp_path_factory.mktemp("noise") / "noise.wav"
    source = "anoisesrc=d=70:c=pink:r=22050:a=0.3:seed=7,lowpass=3000"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, str(path)], check=True)
    return path


def _encode(source: Path, name: str, *options: str) -> Path:
    out = source.with_name(name)
    if not out.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), *options, str(out)], check=True)
    return out


def _segment_is_where_asked(path: Path, offset: float, duration: float = 1.0) -> None:
    whole = np.frombuffer(load_pcm(path), "<i2").astype(float)
    segment = np.frombuffer(load_pcm(path, offset, duration), "<i2").astype(float)
    expected = whole[round(offset * SAMPLE_RATE) :][: segment.size]
    assert segment.size == round(duration * SAMPLE_RATE)
    assert np.corrcoef(segment, expected)[0, 1] > 0.9  # lossy, but the same audio, not 1 ms apart
    head = round(0.05 * SAMPLE_RATE)  # decoded from cold, an MP3's first frames are noise: the segment's are not
    assert np.corrcoef(segment[:head], expected[:head])[0, 1] > 0.9


@pytest.mark.parametrize("codec", ["adpcm_ima_wav", "adpcm_ms"])
def test_an_adpcm_wav_segment_far_in_is_the_audio_there(noise: Path, codec: str) -> None:
    """FFmpeg seeks a WAV by the header's byte rate, which ADPCM only rounds: 60 s in it landed seconds off."""
    _segment_is_where_asked(_encode(noise, f"{codec}.wav", "-c:a", codec), 60.0)


def test_a_wav_whose_header_misstates_its_byte_rate_is_cut_where_asked(noise: Path) -> None:
    data = bytearray(noise.read_bytes())
    assert data[12:16] == b"fmt " and int.from_bytes(data[28:32], "little") == 44100
    data[28:32] = (40000).to_bytes(4, "little")  # what a careless writer puts; the samples are as before
    path = noise.with_name("wrong_byte_rate.wav")
    path.write_bytes(bytes(data))
    _segment_is_where_asked(path, 60.0)


def test_mp3_offsets_count_from_the_first_heard_sample(noise: Path) -> None:
    """FFmpeg drops a LAME-encoded MP3's encoder delay and starts its clock there (50 ms at 22.05 kHz)."""
    path = _encode(noise, "lame.mp3", "-c:a", "libmp3lame", "-b:a", "96k")
    _segment_is_where_asked(path, 0.5)
    _segment_is_where_asked(path, 60.0)


@pytest.mark.parametrize(
    ("name", "options"),
    [("mp3_in.wav", ("-c:a", "libmp3lame", "-f", "wav")), ("g726.wav", ("-c:a", "g726", "-ar", "8000"))],
)
def test_segments_of_codecs_that_carry_state_across_frames_start_clean(noise: Path, name: str, options) -> None:
    _segment_is_where_asked(_encode(noise, name, *options), 60.0)


def test_a_vbr_mp3_without_a_length_header_is_measured_not_guessed(noise: Path) -> None:
    """Without a Xing frame FFmpeg guesses the length from the first frames' bit rate: silence first makes it 2x."""
    quiet_start = noise.with_name("quiet_start.wav")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(noise), "-af", "volume=0:enable='lt(t,40)'", str(quiet_start)],
        check=True,
    )
    path = _encode(quiet_start, "vbr_no_xing.mp3", "-c:a", "libmp3lame", "-q:a", "4", "-write_xing", "0")
    decoded = pcm_duration(load_pcm(path))
    assert decoded == pytest.approx(70.0, abs=0.1)
    assert duration_seconds(path) == pytest.approx(decoded, abs=0.01)


def test_a_recording_cut_by_many_manifest_lines_is_measured_once(tmp_path: Path) -> None:
    """Counting an MP3's frames reads the whole file: the workload reads each recording's length once."""
    recording = tmp_path / "ward.mp3"
    probed: list[Path] = []

    def probe(path: Path) -> float:
        probed.append(path)
        return 600.0

    pairs = [AudioPair(recording, f"line {i}", offset=60.0 * i) for i in range(5)]
    got = measured_workload(TrainingInputs(train_pairs=pairs), Workload(), probe=probe)

    assert probed == [recording]
    assert got.train_pairs == 5 and got.train_audio_seconds == sum(600.0 - 60.0 * i for i in range(5))
