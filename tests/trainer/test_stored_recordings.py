"""Recordings read where they are stored: FFmpeg reads a StoredRecording through ranged GETs, decodes the same audio
as from a local file, reads only around the segment it cuts, and a storage that stops answering is the storage's
fault (InputUnavailable), not a damaged file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.fakes import FakeObjectStore
from voxtrain_shared.range_reader import S3RangeReader
from voxtrain_trainer.audio_probe import duration_seconds
from voxtrain_trainer.ml.audio import OpenRecording, load_pcm
from voxtrain_trainer.ml.types import StoredRecording
from voxtrain_trainer.storage_errors import InputUnavailable

CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """120 s of 44.1 kHz stereo: a tone whose pitch steps up every second, in each accepted container."""
    directory = tmp_path_factory.mktemp("stored")
    t = np.arange(120 * 44100) / 44100
    samples = (0.3 * np.sin(2 * np.pi * (200 + 20 * np.floor(t)) * t) * 32767).astype("<i2")
    raw = directory / "talk.raw"
    raw.write_bytes(np.repeat(samples[:, None], 2, axis=1).tobytes())
    wav = directory / "talk.wav"
    subprocess.run(
        ["sox", "-t", "raw", "-r", "44100", "-e", "signed", "-b", "16", "-c", "2", str(raw), str(wav)], check=True
    )
    files = {".wav": wav}
    for suffix in (".flac", ".mp3", ".m4a"):
        files[suffix] = wav.with_suffix(suffix)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), str(files[suffix])], check=True)
    return files


def stored(path: Path, store: FakeObjectStore) -> StoredRecording:
    store.objects[f"b/{path.name}"] = path.read_bytes()
    size = path.stat().st_size
    return StoredRecording(
        path.name, size, lambda: S3RangeReader(store, "b", path.name, size, chunk_size=CHUNK, retry_delay=0)
    )


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".m4a"])
def test_a_stored_recording_decodes_as_the_local_file_does(talk: dict[str, Path], suffix: str) -> None:
    recording = stored(talk[suffix], FakeObjectStore())

    assert load_pcm(recording) == load_pcm(talk[suffix])
    assert load_pcm(recording, offset=72.3, duration=1.5) == load_pcm(talk[suffix], offset=72.3, duration=1.5)
    assert duration_seconds(recording) == duration_seconds(talk[suffix])


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_a_segment_reads_the_bytes_around_it_not_the_whole_recording(talk: dict[str, Path], suffix: str) -> None:
    """WAV: the header, then the segment's bytes; FLAC without a seek table: FFmpeg's binary search over frames."""
    store = FakeObjectStore()
    recording = stored(talk[suffix], store)

    load_pcm(recording, offset=90.0, duration=1.0)

    read = sum(length for _, length, _ in store.gets)
    assert read < recording.size / 2, f"{read} of {recording.size} bytes read for 1 s of 120"


def test_a_storage_that_stops_answering_is_input_unavailable_naming_the_recording(talk: dict[str, Path]) -> None:
    store = FakeObjectStore()
    recording = stored(talk[".flac"], store)
    store.failures = [ConnectionError("connection refused")] * 100  # every retry of every GET fails

    with pytest.raises(InputUnavailable, match=r"talk\.flac: reading it from storage failed: .*connection refused"):
        load_pcm(recording, offset=5.0, duration=1.0)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".m4a"])
def test_segments_cut_through_one_open_recording_equal_those_cut_one_by_one(talk: dict[str, Path], suffix: str) -> None:
    cuts = [(10.0, 1.0), (40.5, 2.0), (41.0, 0.5), (100.0, 3.0), (5.0, 1.0), (0.0, None)]  # back, then the whole

    with OpenRecording() as recording:
        through_one = [recording.load_pcm(talk[suffix], offset, duration) for offset, duration in cuts]

    one_by_one = [load_pcm(talk[suffix], offset, duration) for offset, duration in cuts]
    if suffix != ".m4a":
        assert through_one == one_by_one
        return
    # AAC is decoded from its packets' overlap: the first ~20 ms after a seek depend on where the decoder came from
    for held, fresh in zip(through_one, one_by_one, strict=True):
        a, b = np.frombuffer(held, "<i2").astype(int), np.frombuffer(fresh, "<i2").astype(int)
        assert len(a) == len(b) and np.abs(a[400:] - b[400:]).max() <= 1


def test_the_cues_of_a_stored_mp3_cost_one_pass_through_it_not_one_per_cue(talk: dict[str, Path]) -> None:
    """FFmpeg finds a time in an MP3 without a seek table by reading from its start, and indexes what it read: with
    the recording held open, later cues seek by that index."""
    cues = [(float(t), 1.0) for t in range(20, 120, 10)]
    one_by_one, held = FakeObjectStore(), FakeObjectStore()

    for offset, duration in cues:
        load_pcm(stored(talk[".mp3"], one_by_one), offset, duration)
    with OpenRecording() as recording:
        for offset, duration in cues:
            recording.load_pcm(stored(talk[".mp3"], held), offset, duration)

    size = talk[".mp3"].stat().st_size
    assert sum(length for _, length, _ in held.gets) < 1.3 * size
    assert sum(length for _, length, _ in one_by_one.gets) > 4 * size
