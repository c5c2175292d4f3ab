"""AUDIO + same-named VTT/SRT: paired automatically, cut by cue times, odd cues skipped and reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.medical_domain import speak
from voxtrain_trainer.ml.audio import load_pcm, pcm_duration
from voxtrain_trainer.ml.pairing import NamedFile, cut_by_cues, pair_recordings

VTT = """WEBVTT

00:00:00.500 --> 00:00:02.000
Start heparin today.

00:00:02.100 --> 00:00:02.200
uh

00:00:03.000 --> 00:00:45.000
A cue far too long to align in one piece.

00:00:46.000 --> 00:00:47.500


00:01:00.000 --> 00:01:02.500
<v Doctor>Hold <b>warfarin</b> tonight.
"""

SRT = """1
00:00:01,000 --> 00:00:02,000
First line.

2
00:00:02,050 --> 00:00:03,000
Second line.
"""


def _file(tmp_path: Path, name: str, text: str = "", split: str = "train") -> NamedFile:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return NamedFile(name, path, split)


def test_cues_become_padded_segments_and_odd_cues_are_skipped(tmp_path: Path) -> None:
    audio = _file(tmp_path, "ward.wav")
    pairs, skipped, _ = cut_by_cues(audio, _file(tmp_path, "ward.vtt", VTT))
    assert [p.text for p in pairs] == ["Start heparin today.", "Hold warfarin tonight."]
    first, last = pairs
    assert first.offset == pytest.approx(0.35) and first.duration == pytest.approx(
        1.75
    )  # stops where the next cue starts
    assert last.offset == pytest.approx(59.85) and last.duration == pytest.approx(2.8)
    assert last.name == "ward.wav@60.00"
    reasons = " | ".join(skipped)
    assert "cue 2" in reasons and "shorter than" in reasons
    assert "cue 3" in reasons and "longer than 30 s" in reasons
    assert "cue 4" in reasons and "no text" in reasons


def test_padding_never_reaches_into_the_neighbouring_cue(tmp_path: Path) -> None:
    pairs, skipped, _ = cut_by_cues(_file(tmp_path, "a.wav"), _file(tmp_path, "a.srt", SRT))
    assert not skipped
    first, second = pairs
    assert first.offset + first.duration == pytest.approx(2.05)
    assert second.offset == pytest.approx(2.0)


def test_same_base_name_pairs_manifest_wins_and_unpaired_audio_is_named(tmp_path: Path) -> None:
    audio = [
        _file(tmp_path, "Ward.WAV"),
        _file(tmp_path, "clinic.mp3"),
        _file(tmp_path, "lonely.wav"),
        _file(tmp_path, "manifested.wav"),
    ]
    transcripts = [
        _file(tmp_path, "ward.vtt", VTT),
        _file(tmp_path, "clinic.srt", SRT, split="test"),
        _file(tmp_path, "manifested.vtt", VTT),
        _file(tmp_path, "lonely.txt", "no cue times here"),
    ]
    result = pair_recordings(audio, transcripts, already_paired={audio[3].path})
    assert [p.text for p in result.train_pairs] == ["Start heparin today.", "Hold warfarin tonight."]
    assert [p.text for p in result.test_pairs] == ["First line.", "Second line."]
    assert result.used_transcripts == [transcripts[0].path, transcripts[1].path]
    report = result.report()
    assert report["recordings_paired"] == 2 and report["cues_cut"] == 4 and report["cues_skipped"] == 3
    assert report["unused_audio"] == ["lonely.wav"]


def test_a_cut_segment_holds_only_its_cue(tmp_path: Path) -> None:
    """Real audio: two spoken sentences with silence between; each cue cut gets its own speech."""
    import subprocess

    one = speak("Start heparin today.", tmp_path / "one.wav", "en-us+m3")
    two = speak("Hold warfarin tonight.", tmp_path / "two.wav", "en-us+f2")
    gap = tmp_path / "gap.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(gap), "trim", "0", "2"], check=True)
    long = tmp_path / "shift.wav"
    subprocess.run(["sox", str(one), str(gap), str(two), str(long)], check=True)
    d1 = pcm_duration(load_pcm(one))
    d2 = pcm_duration(load_pcm(two))
    vtt = f"WEBVTT\n\n00:00:00.000 --> 00:00:{d1:06.3f}\nStart heparin today.\n\n"
    vtt += f"00:00:{d1 + 2:06.3f} --> 00:00:{d1 + 2 + d2:06.3f}\nHold warfarin tonight.\n"
    result = pair_recordings([NamedFile("shift.wav", long)], [_file(tmp_path, "shift.vtt", vtt)])
    first, second = result.train_pairs
    pcm = load_pcm(long, second.offset, second.duration)
    assert pcm_duration(pcm) == pytest.approx(d2 + 0.15, abs=0.05)  # the file ends with the cue
    assert pcm_duration(load_pcm(long, first.offset, first.duration)) == pytest.approx(d1 + 0.15, abs=0.05)


def test_build_inputs_pairs_by_base_name_and_a_run_without_transcript_says_audio_was_unused(tmp_path: Path) -> None:
    from voxtrain_shared.vocab import DatasetType
    from voxtrain_trainer.inputs import LocalDataset, build_inputs
    from voxtrain_trainer.ml import TrainingSettings, run_training

    def dataset(name: str, kind: DatasetType, text: str = "") -> LocalDataset:
        path = tmp_path / f"{len(name)}-{name}"  # stored under another name, as the worker does
        path.write_text(text, encoding="utf-8")
        return LocalDataset(f"id-{name}", kind, name, path)

    notes = dataset("notes.txt", DatasetType.TRANSCRIPT, "start heparin today\nhold warfarin tonight\n" * 3)
    ward = dataset("ward.vtt", DatasetType.TRANSCRIPT, VTT)
    inputs, used = build_inputs(
        [notes, ward, dataset("ward.wav", DatasetType.AUDIO), dataset("dictation.mp3", DatasetType.AUDIO)]
    )
    assert [p.text for p in inputs.train_pairs] == ["Start heparin today.", "Hold warfarin tonight."]
    assert [t.path for t in inputs.transcripts] == [notes.path]  # the cues are pairs, not counted twice
    assert inputs.unused_audio == ["dictation.mp3"] and used["train_pairs"] == 2
    assert inputs.pairing is not None and inputs.pairing["cues_cut"] == 2

    only_text, _ = build_inputs([notes, dataset("dictation.mp3", DatasetType.AUDIO)])
    result = run_training(only_text, tmp_path / "run", TrainingSettings(general_words=0))
    data = result.metrics["data"]
    assert data["unused_audio"] == ["dictation.mp3"] and data["train_pairs"] == 0
    assert any("were not used" in note and "dictation.mp3" in note for note in data["notes"])
    assert "dictation.mp3" in result.artifacts["model_card"].read_text()
    assert result.metrics["acoustic"]["method"] == "none"
