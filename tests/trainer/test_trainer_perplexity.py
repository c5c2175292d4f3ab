"""Perplexity and OOV rate: custom model by hand, base model through PocketSphinx."""

from __future__ import annotations

import pytest

from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.encoding import encode_sentences
from voxtrain_trainer.ml.kneser_ney import estimate_kneser_ney
from voxtrain_trainer.ml.perplexity import BaseLMScorer, custom_perplexity


def test_custom_perplexity_by_hand_with_oov() -> None:
    lm, _ = estimate_kneser_ney(encode_sentences(["a b", "a b", "b a"]), 2, fixed_discounts=(0.5, 1.0, 1.5))
    ix = lm.word_index
    result = custom_perplexity(lm, ["a zzz b"])
    # predicted: a | <s>; zzz is OOV (skipped, but is history <unk> for b); b | <unk>; </s> | b
    expected = (
        lm.log10_prob([ix["<s>"]], ix["a"])
        + lm.log10_prob([ix["<unk>"]], ix["b"])
        + lm.log10_prob([ix["b"]], ix["</s>"])
    )
    assert result.words == 3 and result.oov_words == 1 and result.oov_rate == pytest.approx(1 / 3)
    assert result.scored_tokens == 3
    assert result.log10_prob == pytest.approx(expected)
    assert result.perplexity == pytest.approx(10 ** (-expected / 3))


def test_base_lm_perplexity_is_finite_and_counts_oov() -> None:
    scorer = BaseLMScorer(base_model_files().lm)
    assert scorer.knows("patient") and not scorer.knows("zorvastatin")
    common = scorer.perplexity(["the patient is in the hospital"])
    odd = scorer.perplexity(["hospital the in is patient the"])
    assert common.oov_words == 0 and 1 < common.perplexity < odd.perplexity
    with_oov = scorer.perplexity(["give the patient zorvastatin"])
    assert with_oov.oov_words == 1 and with_oov.scored_tokens == 4
