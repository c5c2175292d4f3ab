"""Interpolating a domain LM with a general n-gram LM: every context still sums to 1."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from voxtrain_trainer.ml import TrainingResult
from voxtrain_trainer.ml.arpa import read_arpa, write_arpa
from voxtrain_trainer.ml.encoding import BOS, encode_sentences
from voxtrain_trainer.ml.interpolate import (
    MixedModel,
    fit_backoffs,
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
GENERAL_TEXT = [
    "the nurse walked to the patient",
    "a nurse walked the patient to the door",
    "the patient walked",
    "the door was open",
    "a patient has the door",
]


def _general(tmp_path: Path) -> MixedModel:
    """A small general-English model with bigrams and trigrams (not just unigrams)."""
    lm, _ = estimate_kneser_ney(encode_sentences(GENERAL_TEXT), 3, (0.5, 1.0, 1.5))
    write_arpa(lm, tmp_path / "general.arpa")
    return read_model(tmp_path / "general.arpa")


@pytest.fixture
def domain(tmp_path: Path):
    lm, _ = estimate_kneser_ney(encode_sentences(DOMAIN), 3, (0.5, 1.0, 1.5))
    write_arpa(lm, tmp_path / "domain.arpa")
    return read_model(tmp_path / "domain.arpa")


def _total(model, history: tuple[str, ...]) -> float:
    vocab = [ng[0] for ng in model.probs[0] if ng[0] != BOS]
    return sum(10 ** model.log10_prob(w, history) for w in vocab)


def test_every_context_sums_to_one_after_mixing(domain, tmp_path: Path) -> None:
    general = _general(tmp_path)
    assert len(general.probs[2]) > 5
    mixed = interpolate_with_general(domain, general, 0.7)
    contexts = {ng[:-1] for level in mixed.probs[1:] for ng in level} | {(BOS,), ("nurse",), ("heparin", "for")}
    assert {("the", "nurse"), ("heparin", "for"), ("nurse", "walked")} <= contexts  # both models' contexts
    for history in [(), *contexts, ("door", "heparin"), ("walked", "the")]:
        assert _total(mixed, history) == pytest.approx(1.0, abs=1e-5), history  # inputs: 6-decimal ARPA


def test_listed_ngrams_are_the_exact_mixture_of_both_models(domain, tmp_path: Path) -> None:
    general = _general(tmp_path)
    mixed = interpolate_with_general(domain, general, 0.6)
    for word, history in [("walked", ("the", "nurse")), ("heparin", (BOS, "start")), ("patient", ("the",))]:
        expected = 0.6 * 10 ** domain.log10_prob(word, history) + 0.4 * 10 ** general.log10_prob(word, history)
        assert 10 ** mixed.log10_prob(word, history) == pytest.approx(expected, rel=1e-9)
    assert ("the", "nurse", "walked") in mixed.probs[2] and ("the", "nurse", "walked") not in domain.probs[2]


def test_general_words_and_phrases_become_known_and_domain_ngrams_keep_most_weight(domain, tmp_path: Path) -> None:
    general = _general(tmp_path)
    mixed = interpolate_with_general(domain, general, 0.8)
    assert ("nurse",) in mixed.probs[0] and ("nurse",) not in domain.probs[0]
    after = (BOS, "start")
    assert mixed.log10_prob("heparin", after) > mixed.log10_prob("nurse", after)
    assert mixed.log10_prob("heparin", after) < domain.log10_prob("heparin", after)  # some mass went to general
    # a general phrase beats the same word after an unrelated general context
    assert mixed.log10_prob("walked", ("the", "nurse")) > mixed.log10_prob("walked", ("the", "door"))


def test_fitting_backoffs_renormalises_a_pruned_model() -> None:
    model = MixedModel(
        [{("a",): math.log10(0.5), ("b",): math.log10(0.3), ("c",): math.log10(0.2), (BOS,): -99.0}, {}],
        [{}, {}],
    )
    model.probs[1] = {("a", "b"): math.log10(0.6), ("b", "a"): math.log10(0.5), ("b", "c"): math.log10(0.5)}
    # after "c" every word is listed but the listed mass is 0.8: nothing is left to back off to
    model.probs[1].update({("c", w): math.log10(p) for w, p in (("a", 0.4), ("b", 0.3), ("c", 0.1))})
    fit_backoffs(model)
    for history in [("a",), ("b",), ("c",), (BOS,)]:
        assert _total(model, history) == pytest.approx(1.0, abs=1e-9), history
    assert 10 ** model.log10_prob("a", ("c",)) == pytest.approx(0.5)
    assert model.bows[0][("a",)] == pytest.approx(math.log10(0.4 / 0.7))


def test_written_model_is_a_valid_arpa_file(domain, tmp_path: Path) -> None:
    mixed = interpolate_with_general(domain, _general(tmp_path), 0.8)
    counts = write_model(mixed, tmp_path / "mixed.arpa")
    again = read_arpa(tmp_path / "mixed.arpa")
    assert again.ngram_counts() == counts
    assert "nurse" in again.word_index and counts[2] > len(domain.probs[2])


def test_weight_follows_the_held_out_text(domain, tmp_path: Path) -> None:
    general = _general(tmp_path)
    domain_like = tune_weight([(domain, ["start heparin for atrial fibrillation"])], general)
    general_like = tune_weight([(domain, ["the nurse walked", "a nurse walked the patient"])], general)
    assert domain_like.lam > general_like.lam
    assert domain_like.perplexity[domain_like.lam] == min(domain_like.perplexity.values())
    pooled = tune_weight([(domain, ["start heparin for atrial fibrillation"]), (domain, ["the nurse walked"])], general)
    assert pooled.tokens == domain_like.tokens + 4  # "the nurse walked </s>"


def test_a_run_ships_the_mixed_lm_and_the_general_words(tmp_path: Path) -> None:
    from voxtrain_trainer.ml import TextFile, TrainingInputs, TrainingSettings, run_training

    notes = tmp_path / "notes.txt"
    more = ["stop heparin before the procedure", "check the bleeding after surgery", "warfarin for the embolism"]
    notes.write_text("\n".join([*DOMAIN, *more]) + "\n", encoding="utf-8")
    settings = TrainingSettings(
        general_words=300, general_bigrams=2000, general_trigrams=1000, general_lm_cache_dir=str(tmp_path / "cache")
    )
    result = run_training(TrainingInputs([TextFile(notes)]), tmp_path, settings)
    lm = result.metrics["lm"]
    assert lm["smoothing"].endswith("mixed with general English") and lm["pruning"] is not None
    mix = lm["general_english"]
    assert mix["general_words"] == 300 and mix["general_ngram_counts"] == [302, 2000, 1000]
    assert mix["weight_tuned"] is True and "cross-validation" in mix["tuned_on"] and mix["heldout_tokens"] > 20
    mixed = read_arpa(result.artifacts["lm"])
    assert {"heparin", "the", "people"} <= set(mixed.word_index) and mixed.ngram_counts() == lm["ngram_counts"]
    assert mixed.ngram_counts()[1] >= 2000 and mix["mixed_ngram_counts"] == lm["ngram_counts"]
    dictionary = result.artifacts["lexicon"].read_text(encoding="utf-8")
    assert "\npeople " in dictionary and "\nheparin " in dictionary
    assert "General English" in result.artifacts["model_card"].read_text(encoding="utf-8")


def _small_mix_run(tmp_path: Path, **settings: Any) -> TrainingResult:
    """DOMAIN mixed with a small share of the general LM (300 words, 2,000 / 1,000 n-grams); ``settings``."""
    from voxtrain_trainer.ml import TextFile, TrainingInputs, TrainingSettings, run_training

    notes = tmp_path / "notes.txt"
    notes.write_text("\n".join(DOMAIN) + "\n", encoding="utf-8")
    small = {"general_words": 300, "general_bigrams": 2000, "general_trigrams": 1000}
    run_settings = TrainingSettings(**{**small, "general_lm_cache_dir": str(tmp_path / "cache"), **settings})
    return run_training(TrainingInputs([TextFile(notes)]), tmp_path, run_settings)


def test_a_run_with_more_text_than_the_mix_limit_ships_the_domain_lm_and_says_why(tmp_path: Path) -> None:
    result = _small_mix_run(tmp_path, general_mix_max_words=10)
    lm = result.metrics["lm"]
    assert not lm["smoothing"].endswith("mixed with general English")
    assert f"has {result.metrics['data']['training_words']} words, more than 10" in lm["general_english"]["skipped"]
    assert "people" not in read_arpa(result.artifacts["lm"]).word_index  # a general word the domain text lacks
    assert "General English: not mixed in" in result.artifacts["model_card"].read_text(encoding="utf-8")


def test_a_mix_that_would_not_fit_the_worker_takes_the_smaller_general_share_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxtrain_trainer.ml import types

    # as if each mixed n-gram took 100 kB: the 3,302 general n-grams alone would need 330 MB beside the 512 reserved
    monkeypatch.setattr(types, "MIX_BYTES_PER_NGRAM", 100_000)
    result = _small_mix_run(tmp_path, general_fallback=(100, 500, 200), worker_memory_mb=768)
    mix = result.metrics["lm"]["general_english"]
    assert mix["general_ngram_counts"] == [102, 500, 200] and mix["general_words"] == 100
    assert mix["general_pruning"] == {"words": 100, "bigrams": 500, "trigrams": 200}
    assert "do not fit the worker's 768 MB" in mix["general_fallback"]
    assert "A smaller share than usual" in result.artifacts["model_card"].read_text(encoding="utf-8")


def test_the_mix_memory_rule() -> None:
    from voxtrain_trainer.ml import TrainingSettings
    from voxtrain_trainer.ml.types import MIX_BYTES_PER_NGRAM, WORKER_RESERVE_MB

    room = (2048 - WORKER_RESERVE_MB) * 2**20 // MIX_BYTES_PER_NGRAM
    assert TrainingSettings(worker_memory_mb=2048).mix_fits(room)
    assert not TrainingSettings(worker_memory_mb=2048).mix_fits(room + 1)
    assert room > 4_000_000  # the whole shipped base LM (3.8M n-grams) with a small domain text fits the default
    # a second mixture (the tuning LM of a run with audio pairs and other text) costs more per n-gram
    assert not TrainingSettings(worker_memory_mb=2048).mix_fits(room, mixtures=2)
    assert TrainingSettings(worker_memory_mb=2048).mix_fits(3_900_000, mixtures=2)
