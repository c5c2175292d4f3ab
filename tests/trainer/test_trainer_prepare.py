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
