"""G2P re-mapped from the base dictionary: measured on held-out CMUdict words, kept only if better."""

from __future__ import annotations

from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.g2p import ipa_to_cmu
from voxtrain_trainer.ml.g2p_learn import learn_g2p, learned_pronunciations, phone_error_rate, pronunciations
from voxtrain_trainer.ml.lexicon import load_base_dictionary


def test_without_overrides_it_is_the_espeak_table() -> None:
    for ipa in ("h_ˈæ_p_i", "s_ˈɪ_ɾ_i", "ɐ_b_ˈaʊ_t", "n_ˈeɪ_ʃ_ə_n"):
        assert pronunciations(ipa, {}) == ipa_to_cmu(ipa)


def test_an_override_applies_only_in_its_context() -> None:
    overrides = {("ɪ", 0, "d"): "AH"}
    assert pronunciations("w_ˈɔ_n_t_ɪ_d", overrides) == [("W", "AO", "N", "T", "AH", "D")]
    assert pronunciations("s_ˈɪ_t_ɪ_z", overrides) == [("S", "IH", "T", "IH", "Z")]


def test_phone_error_rate_counts_edits_against_the_closest_reference() -> None:
    base = {"city": [("S", "IH", "T", "IY")], "about": [("AH", "B", "AW", "T")]}
    assert phone_error_rate({"city": "s_ˈɪ_t_i", "about": "ɐ_b_ˈaʊ_t"}, base, {}) == 0.0
    assert phone_error_rate({"city": "s_ˈɪ_t_ɪ"}, base, {}) == 0.25  # IY -> IH: one edit in four phones


def test_learning_on_the_base_dictionary_is_measured_on_words_it_never_saw() -> None:
    base = load_base_dictionary(base_model_files().dictionary)
    learned = learn_g2p(base, train_words=1500, heldout_words=200)
    report = learned.report
    assert report["heldout_words"] > 150 and report["train_words"] == 1500
    assert 0.0 < report["phone_error_rate"] < 0.2
    assert report["phone_error_rate"] == min(report["phone_error_rate_table"], report["phone_error_rate_learned"])
    assert (report["used"] == "learned") == bool(learned.overrides)
    prons = learned_pronunciations(["borescope", "metoprolol"], "en-us", learned.overrides)
    assert set(prons) == {"borescope", "metoprolol"}
