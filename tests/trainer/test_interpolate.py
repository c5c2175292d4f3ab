"""Interpolating a domain LM with general English: every context still sums to 1."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from voxtrain_trainer.ml.arpa import read_arpa, write_arpa
from voxtrain_trainer.ml.encoding import BOS, EOS, encode_sentences
from voxtrain_trainer.ml.interpolate import (
    general_unigrams,
    interpolate_with_general,
    read_model,
    tune_weight,
    write_model,
)
from voxtrain_trainer.ml.kneser_ney import estimate_kneser_ney

DOMAIN = [
    "start heparin for the embolism",
    "hold warfarin for the bleeding",
    "start warfarin for atrial fibrillation",
    "the patient has atrial fibrillation",
    "continue heparin until warfarin is therapeutic",
]
GENERAL_LOG10 = {"the": -1.2, "a": -1.4, "nurse": -4.0, "walked": -4.2, "patient": -3.9, EOS: -1.1, BOS: -99.0}


@pytest.fixture
def domain(tmp_path: Path):
    lm, _ = estimate_kneser_ney(encode_sentences(DOMAIN), 3, (0.5, 1.0, 1.5))
    write_arpa(lm, tmp_path / "domain.arpa")
    return read_model(tmp_path / "domain.arpa")


def _total(model, history: tuple[str, ...]) -> float:
    vocab = [ng[0] for ng in model.probs[0] if ng[0] != BOS]
    return sum(10 ** model.log10_prob(w, history) for w in vocab)


def test_every_context_sums_to_one_after_mixing(domain) -> None:
    general = general_unigrams(GENERAL_LOG10, 10)
    assert math.isclose(sum(general.values()), 1.0)
    mixed = interpolate_with_general(domain, general, 0.7)
    contexts = {ng[:-1] for level in mixed.probs[1:] for ng in level} | {(BOS,), ("nurse",), ("heparin", "for")}
    assert len(contexts) > 10
    for history in [(), *contexts]:
        assert _total(mixed, history) == pytest.approx(1.0, abs=1e-4), history


def test_general_words_become_known_and_domain_ngrams_keep_most_weight(domain) -> None:
    mixed = interpolate_with_general(domain, general_unigrams(GENERAL_LOG10, 10), 0.8)
    assert ("nurse",) in mixed.probs[0] and ("nurse",) not in domain.probs[0]
    after = (BOS, "start")
    assert mixed.log10_prob("heparin", after) > mixed.log10_prob("nurse", after)
    assert mixed.log10_prob("heparin", after) < domain.log10_prob("heparin", after)  # some mass went to general


def test_written_model_is_a_valid_arpa_file(domain, tmp_path: Path) -> None:
    mixed = interpolate_with_general(domain, general_unigrams(GENERAL_LOG10, 10), 0.8)
    counts = write_model(mixed, tmp_path / "mixed.arpa")
    again = read_arpa(tmp_path / "mixed.arpa")
    assert again.ngram_counts() == counts
    assert "nurse" in again.word_index


def test_pruning_keeps_the_most_probable_general_words() -> None:
    general = general_unigrams(GENERAL_LOG10, 2)
    assert set(general) == {"the", "a", EOS}


def test_weight_follows_the_held_out_text(domain) -> None:
    general = general_unigrams(GENERAL_LOG10, 10)
    domain_like = tune_weight(domain, general, ["start heparin for atrial fibrillation"])
    general_like = tune_weight(domain, general, ["the nurse walked", "a nurse walked the patient"])
    assert domain_like.lam > general_like.lam
    assert domain_like.perplexity[domain_like.lam] == min(domain_like.perplexity.values())


def test_a_run_ships_the_mixed_lm_and_the_general_words(tmp_path: Path) -> None:
    from voxtrain_trainer.ml import TextFile, TrainingInputs, TrainingSettings, run_training

    notes = tmp_path / "notes.txt"
    notes.write_text("\n".join(DOMAIN) + "\n", encoding="utf-8")
    result = run_training(TrainingInputs([TextFile(notes)]), tmp_path, TrainingSettings(general_words=300))
    lm = result.metrics["lm"]
    assert lm["smoothing"].endswith("mixed with general English") and lm["pruning"] is not None
    mix = lm["general_english"]
    assert mix["general_words"] == 300 and mix["weight_tuned"] is False and mix["domain_weight"] == 0.8
    mixed = read_arpa(result.artifacts["lm"])
    assert {"heparin", "the", "people"} <= set(mixed.word_index) and mixed.ngram_counts() == lm["ngram_counts"]
    dictionary = result.artifacts["lexicon"].read_text(encoding="utf-8")
    assert "\npeople " in dictionary and "\nheparin " in dictionary
    assert "General English" in result.artifacts["model_card"].read_text(encoding="utf-8")
