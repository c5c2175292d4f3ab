"""Interpolated modified Kneser-Ney: normalisation, hand-computed values, discounts, fallback."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from voxtrain_trainer.ml.encoding import BOS_ID, encode_sentences, restrict_vocabulary
from voxtrain_trainer.ml.kneser_ney import estimate_kneser_ney

SMALL = ["a b", "a b", "b a"]
FIXED = (0.5, 1.0, 1.5)


def _zipf_corpus(n_sentences: int, vocab: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    weights = [1 / (r + 1) for r in range(vocab)]
    return [" ".join(rng.choices(words, weights, k=rng.randint(1, 12))) for _ in range(n_sentences)]


def _ids(lm, text: str) -> list[int]:
    return [lm.word_index[w] for w in text.split()]


def _assert_every_context_sums_to_one(lm, limit_per_order: int | None = None) -> None:
    predictable = [w for w in range(lm.vocab_size) if w != BOS_ID]
    contexts = [[]] + [_ids(lm, t) for n in range(1, lm.order) for t in lm.words_of_level(n)[:limit_per_order]]
    for context in contexts:
        total = sum(10 ** lm.log10_prob(context, w) for w in predictable)
        assert total == pytest.approx(1.0, abs=1e-9), (context, total)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_sum_to_one_for_every_context(order: int) -> None:
    encoded = encode_sentences(_zipf_corpus(60, 25, seed=order))
    lm, _ = estimate_kneser_ney(encoded, order)
    assert lm.order == order
    _assert_every_context_sums_to_one(lm)


def test_sum_to_one_with_estimated_discounts() -> None:
    encoded = encode_sentences(_zipf_corpus(600, 800, seed=7))
    lm, discounts = estimate_kneser_ney(encoded, 3)
    assert not any(d.fallback for d in discounts)
    _assert_every_context_sums_to_one(lm, limit_per_order=15)


def test_hand_computed_bigram() -> None:
    # Unigram continuation counts a=b=</s>=2, S=6, D2=1 -> gamma0=1/2, uniform 1/4 over 4 words:
    #   p(b) = (2-1)/6 + 1/2 * 1/4 = 7/24.
    # Context "a": c(a b)=2, c(a </s>)=1, S=3, gamma(a) = (0.5 + 1.0)/3 = 1/2:
    #   p(b|a) = (2-1)/3 + 1/2 * 7/24 = 23/48;  p(a|a) = 1/2 * 7/24 = 7/48.
    lm, _ = estimate_kneser_ney(encode_sentences(SMALL), 2, fixed_discounts=FIXED)
    a, b, unk = lm.word_index["a"], lm.word_index["b"], lm.word_index["<unk>"]
    assert 10 ** lm.log10_prob([], b) == pytest.approx(7 / 24)
    assert 10 ** lm.log10_prob([], unk) == pytest.approx(1 / 8)
    assert 10 ** lm.log10_prob([a], b) == pytest.approx(23 / 48)
    assert 10 ** lm.log10_prob([a], a) == pytest.approx(7 / 48)


def test_hand_computed_trigram() -> None:
    # Bigram level uses continuation counts except after <s>: a(a b) = a(a </s>) = 1 ->
    #   p(b|a) = (1-0.5)/2 + 1/2 * 7/24 = 19/48.
    # Trigram "<s> a b" seen twice, only entry of its context, gamma = 1.0/2:
    #   p(b|<s> a) = (2-1)/2 + 1/2 * 19/48 = 67/96;  p(</s>|<s> a) = 1/2 * p(</s>|a) = 19/96.
    lm, _ = estimate_kneser_ney(encode_sentences(SMALL), 3, fixed_discounts=FIXED)
    s, a, b, e = (lm.word_index[w] for w in ("<s>", "a", "b", "</s>"))
    assert 10 ** lm.log10_prob([a], b) == pytest.approx(19 / 48)
    assert 10 ** lm.log10_prob([s, a], b) == pytest.approx(67 / 96)
    assert 10 ** lm.log10_prob([s, a], e) == pytest.approx(19 / 96)
    assert 10 ** lm.log10_prob([s], a) == pytest.approx(23 / 48)


def _adjusted_count_of_counts(sentences: list[str], order: int) -> dict[int, Counter]:
    """Independent (slow, obvious) adjusted counts per order -> count-of-counts."""
    grams: dict[int, Counter] = {n: Counter() for n in range(1, order + 1)}
    for s in sentences:
        tokens = ["<s>", *s.split(), "</s>"]
        for n in range(1, order + 1):
            for i in range(len(tokens) - n + 1):
                grams[n][tuple(tokens[i : i + n])] += 1
    out: dict[int, Counter] = {}
    for n in range(1, order + 1):
        if n == order:
            adjusted = dict(grams[n])
        else:
            left = Counter(g[1:] for g in grams[n + 1])
            adjusted = {g: (c if g[0] == "<s>" else left[g]) for g, c in grams[n].items()}
        adjusted.pop(("<s>",), None)
        out[n] = Counter(min(c, 5) for c in adjusted.values())
    return out


def test_discounts_follow_chen_goodman_from_adjusted_counts() -> None:
    sentences = _zipf_corpus(600, 800, seed=3)
    _lm, discounts = estimate_kneser_ney(encode_sentences(sentences), 3)
    coc = _adjusted_count_of_counts(sentences, 3)
    for d in discounts:
        t1, t2, t3, t4 = (coc[d.order][k] for k in (1, 2, 3, 4))
        assert d.count_of_counts == (t1, t2, t3, t4)
        y = t1 / (t1 + 2 * t2)
        assert not d.fallback
        assert d.d1 == pytest.approx(1 - 2 * y * t2 / t1)
        assert d.d2 == pytest.approx(2 - 3 * y * t3 / t2)
        assert d.d3_plus == pytest.approx(3 - 4 * y * t4 / t3)


def test_small_corpus_falls_back_instead_of_failing() -> None:
    # KenLM's lmplz throws BadDiscountException here (kpu/kenlm#424).
    lm, discounts = estimate_kneser_ney(encode_sentences(["hello world"]), 3)
    assert all(d.fallback for d in discounts)
    assert all((d.d1, d.d2, d.d3_plus) == (0.5, 1.0, 1.5) for d in discounts)
    assert "count-of-counts" in discounts[0].reason
    _assert_every_context_sums_to_one(lm)


def test_fallback_discounts_are_clamped_into_range() -> None:
    _, discounts = estimate_kneser_ney(encode_sentences(SMALL), 2, fallback=(1.5, -1.0, 9.0))
    for d in discounts:
        assert 0 < d.d1 < 1 and 0 < d.d2 < 2 and 0 < d.d3_plus < 3


def test_order_is_capped_by_the_longest_sentence() -> None:
    lm, discounts = estimate_kneser_ney(encode_sentences(["a", "b"]), 5)
    assert lm.order == 3 and len(discounts) == 3  # "<s> a </s>" is the longest n-gram


def test_vectorised_scores_match_the_backoff_rule() -> None:
    encoded = encode_sentences(_zipf_corpus(80, 30, seed=11))
    lm, _ = estimate_kneser_ney(encoded, 3)
    probe = encode_sentences(_zipf_corpus(20, 35, seed=12))  # includes unseen words
    tokens = np.array([lm.word_index.get(w, lm.unk_id) for w in (probe.vocab[i] for i in probe.tokens)])
    fast = lm.score_tokens(tokens)
    slow, start = [], 0
    for i, t in enumerate(tokens.tolist()):
        if t == BOS_ID:
            slow.append(np.nan)
            start = i
        else:
            slow.append(lm.log10_prob(tokens[start:i].tolist(), t))
    np.testing.assert_allclose(fast, slow, equal_nan=True)


def test_restricted_words_become_unk() -> None:
    encoded = restrict_vocabulary(encode_sentences(["keep drop keep", "drop"]), {"keep"})
    assert encoded.vocab == ["<s>", "</s>", "<unk>", "keep"]
    assert encoded.tokens.tolist() == [0, 3, 2, 3, 1, 0, 2, 1]
    lm, _ = estimate_kneser_ney(encoded, 2)
    assert lm.log10_prob([lm.word_index["keep"]], lm.unk_id) > -1.0
