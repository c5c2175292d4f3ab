"""Gathering training/test text and the deterministic hold-out."""

from __future__ import annotations

from pathlib import Path

from voxtrain_trainer.ml.prepare import prepare_data
from voxtrain_trainer.ml.types import AudioPair, TextFile, TrainingInputs


def _file(tmp_path: Path, name: str, lines: list[str]) -> TextFile:
    path = tmp_path / name
    path.write_text("\n".join(lines), encoding="utf-8")
    return TextFile(path)


def test_train_and_test_text_come_from_their_sources(tmp_path: Path) -> None:
    inputs = TrainingInputs(
        transcripts=[_file(tmp_path, "t.txt", ["Start 12 mg.", "Stop it. Now!"])],
        test_texts=[_file(tmp_path, "test.txt", ["Check the rate."])],
        train_pairs=[AudioPair(tmp_path / "a.wav", "Train pair text.")],
        test_pairs=[AudioPair(tmp_path / "b.wav", "Test pair text.")],
    )
    data = prepare_data(inputs, 0.1, tmp_path / "prep")
    assert list(data.training_sentences) == ["start twelve mg", "stop it", "now", "train pair text"]
    assert data.test_sentences == ["check the rate", "test pair text"]
    assert not data.heldout_text and not data.heldout_audio


def test_without_test_data_a_deterministic_slice_is_held_out(tmp_path: Path) -> None:
    lines = [f"sentence number {i}" for i in range(200)]
    inputs = TrainingInputs(transcripts=[_file(tmp_path, "t.txt", lines)])
    first, second = prepare_data(inputs, 0.1, tmp_path / "one"), prepare_data(inputs, 0.1, tmp_path / "two")
    assert first.heldout_text and first.test_sentences == second.test_sentences
    assert 8 <= len(first.test_sentences) <= 35
    assert not set(first.test_sentences) & set(first.training_sentences)
    assert len(first.test_sentences) + len(first.training_sentences) == 200


def test_without_test_audio_train_pairs_are_held_out(tmp_path: Path) -> None:
    pairs = [AudioPair(tmp_path / f"{i}.wav", f"pair {i} text") for i in range(12)]
    data = prepare_data(TrainingInputs(train_pairs=pairs), 0.1, tmp_path / "prep")
    assert data.heldout_audio and [p.audio.name for p in data.test_pairs] == ["9.wav"]
    assert len(data.train_pairs) == 11
    assert "pair nine text" not in data.training_sentences


def test_single_sentence_is_not_held_out(tmp_path: Path) -> None:
    data = prepare_data(TrainingInputs(transcripts=[_file(tmp_path, "t.txt", ["only one"])]), 0.1, tmp_path / "prep")
    assert list(data.training_sentences) == ["only one"] and data.test_sentences == [] and not data.heldout_text


def test_reading_the_text_reports_the_fraction_of_its_bytes_read(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("".join(f"check the hydraulic pump number {i}\n" for i in range(40_000)), encoding="utf-8")
    subtitles = tmp_path / "talk.vtt"
    cues = (f"{i // 60:02d}:{i % 60:02d}.000 --> {i // 60:02d}:{i % 60:02d}.500\ncue {i} text\n" for i in range(3600))
    subtitles.write_text("WEBVTT\n\n" + "\n".join(cues), encoding="utf-8")
    seen: list[float] = []
    data = prepare_data(
        TrainingInputs([TextFile(notes), TextFile(subtitles)]), 0.1, tmp_path / "out", progress=seen.append
    )
    assert data.training_sentences.count > 0
    assert len(seen) > 20 and seen == sorted(seen) and seen[-1] == 1.0
    first_file = notes.stat().st_size / (notes.stat().st_size + subtitles.stat().st_size)
    assert any(0.1 < f < first_file - 0.05 for f in seen)  # it moves within the first file, not only between files
