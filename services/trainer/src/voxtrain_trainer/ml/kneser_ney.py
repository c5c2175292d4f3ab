"""Interpolated modified Kneser-Ney estimation (Chen & Goodman 1998), as an ARPA backoff model.

For order ``n`` the counts used are the raw counts at the highest order and, below it,
continuation counts ``N1+(. w)`` (the number of distinct words seen before the n-gram), except
for n-grams starting with ``<s>``, which nothing can precede and which keep their raw counts.
Three discounts per order come from that order's count-of-counts ``t1..t4``::

    Y = t1 / (t1 + 2 t2);  D1 = 1 - 2Y t2/t1;  D2 = 2 - 3Y t3/t2;  D3+ = 3 - 4Y t4/t3

    p(w | h) = (c(h w) - D(c(h w))) / c(h .)  +  gamma(h) p(w | h')
    gamma(h) = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / c(h .)

Unigrams interpolate with the uniform distribution over every word but ``<s>``, so ``<unk>``
gets probability mass. Because the model is interpolated, the ARPA backoff weight of ``h`` is
exactly ``gamma(h)`` and every conditional distribution sums to one.

Small corpora: when a count-of-counts is zero or a discount falls outside ``(0, k)`` (KenLM's
BadDiscountException, kpu/kenlm#424) that order uses the fallback discounts (default
0.5/1.0/1.5, clamped into ``(0, k)``), and the returned :class:`Discounts` say so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from voxtrain_trainer.ml.backoff_lm import LOG10_ZERO, BackoffLM, LevelTable
from voxtrain_trainer.ml.encoding import BOS_ID, EncodedText
from voxtrain_trainer.ml.ngram_counts import CountLevel, count_ngrams

DEFAULT_FALLBACK = (0.5, 1.0, 1.5)
_MARGIN = 1e-3  # keep discounts strictly inside (0, k): no zero or negative probabilities


@dataclass(frozen=True)
class Discounts:
    """The discounts of one order and how they were obtained."""

    order: int
    d1: float
    d2: float
    d3_plus: float
    count_of_counts: tuple[int, int, int, int]
    fallback: bool
    reason: str | None = None

    def as_array(self) -> np.ndarray:
        """``[0, D1, D2, D3+]`` to index by ``min(count, 3)``."""
        return np.array([0.0, self.d1, self.d2, self.d3_plus])

    def to_dict(self) -> dict:
        """JSON-ready view."""
        return asdict(self)


def _clamp(values: tuple[float, float, float]) -> tuple[float, float, float]:
    return tuple(min(max(d, _MARGIN), k - _MARGIN) for k, d in enumerate(values, start=1))  # type: ignore[return-value]  # 3 in, 3 out


def estimate_discounts(
    order: int, adjusted_counts: np.ndarray, fallback: tuple[float, float, float] = DEFAULT_FALLBACK
) -> Discounts:
    """Chen & Goodman discounts from the (adjusted) counts of one order, or the fallback."""
    positive = adjusted_counts[adjusted_counts > 0].astype(np.int64)
    t = np.bincount(np.minimum(positive, 5), minlength=6)[1:5]
    return discounts_from_count_of_counts(order, tuple(int(x) for x in t), fallback)


def discounts_from_count_of_counts(
    order: int, count_of_counts: Sequence[int], fallback: tuple[float, float, float] = DEFAULT_FALLBACK
) -> Discounts:
    """Chen & Goodman discounts from one order's count-of-counts ``(t1, t2, t3, t4)``, or the fallback."""
    t1, t2, t3, t4 = count_of_counts
    coc = (t1, t2, t3, t4)
    zero = [f"t{k}" for k, v in enumerate(coc, start=1) if v == 0]
    if zero:
        verb = "is" if len(zero) == 1 else "are"
        reason = f"count-of-counts {', '.join(zero)} {verb} zero: too little text to estimate discounts"
        return Discounts(order, *_clamp(fallback), coc, fallback=True, reason=reason)
    y = t1 / (t1 + 2 * t2)
    estimated = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    bad = [k for k, d in enumerate(estimated, start=1) if not (0.0 < d < k)]
    if bad:
        values = ", ".join(f"D{k}={estimated[k - 1]:.3f}" for k in bad)
        reason = f"estimated discount out of range ({values})"
        return Discounts(order, *_clamp(fallback), coc, fallback=True, reason=reason)
    return Discounts(order, *estimated, coc, fallback=False)


def _adjusted_counts(levels: list[CountLevel]) -> list[np.ndarray]:
    """Raw counts at the top order, continuation counts below (raw for n-grams after ``<s>``)."""
    adjusted: list[np.ndarray] = [np.empty(0)] * len(levels)
    adjusted[-1] = levels[-1].counts.astype(np.float64)
    starts_with_bos = [levels[0].keys == BOS_ID]
    for n in range(2, len(levels) + 1):
        starts_with_bos.append(starts_with_bos[-1][levels[n - 1].prefix])
    for n in range(len(levels) - 1, 0, -1):
        continuation = np.bincount(levels[n].suffix, minlength=len(levels[n - 1])).astype(np.float64)
        bos = starts_with_bos[n - 1]
        continuation[bos] = levels[n - 1].counts[bos]
        adjusted[n - 1] = continuation
    adjusted[0] = adjusted[0].copy()
    adjusted[0][BOS_ID] = 0.0  # <s> is never predicted
    return adjusted


def _safe_log10(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        out = np.log10(p)
    out[~np.isfinite(out)] = LOG10_ZERO
    return out


def estimate_from_counts(
    levels: list[CountLevel],
    vocab: list[str],
    fallback: tuple[float, float, float] = DEFAULT_FALLBACK,
    fixed_discounts: tuple[float, float, float] | None = None,
) -> tuple[BackoffLM, list[Discounts]]:
    """Estimate the model from :func:`count_ngrams` output.

    ``fixed_discounts`` forces the same (clamped) discounts at every order; it is for tests
    and experiments, and those orders are not reported as fallbacks.
    """
    vocab_size = len(vocab)
    adjusted = _adjusted_counts(levels)
    discounts: list[Discounts] = []
    probs: list[np.ndarray] = []
    gammas: list[np.ndarray] = []  # gamma of the contexts of order n (entries of level n-1)
    for n, level in enumerate(levels, start=1):
        a = adjusted[n - 1]
        if fixed_discounts is not None:
            t = np.bincount(np.minimum(a[a > 0].astype(np.int64), 5), minlength=6)[1:5]
            t1, t2, t3, t4 = (int(x) for x in t)
            d = Discounts(n, *_clamp(fixed_discounts), (t1, t2, t3, t4), fallback=False, reason="fixed")
        else:
            d = estimate_discounts(n, a, fallback)
        discounts.append(d)
        per_entry = d.as_array()[np.minimum(a, 3).astype(np.int64)]
        prefix = level.prefix
        n_contexts = 1 if n == 1 else len(levels[n - 2])
        total = np.bincount(prefix, weights=a, minlength=n_contexts)
        mass = np.bincount(prefix, weights=per_entry * (a > 0), minlength=n_contexts)
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(total > 0, mass / total, 0.0)
            own = np.where(a > 0, (a - per_entry) / total[prefix], 0.0)
        lower = np.full(vocab_size, 1.0 / (vocab_size - 1)) if n == 1 else probs[-1][level.suffix]
        p = own + gamma[prefix] * lower
        if n == 1:
            p[BOS_ID] = 0.0
        probs.append(p)
        gammas.append(gamma)
    tables = []
    for n, level in enumerate(levels, start=1):
        if n < len(levels):
            gamma = gammas[n]
            has_bow = np.bincount(levels[n].prefix, minlength=len(level)) > 0
            bow = np.where(has_bow, _safe_log10(np.where(has_bow, gamma, 1.0)), 0.0)
        else:
            has_bow = np.zeros(len(level), dtype=bool)
            bow = np.zeros(len(level))
        tables.append(LevelTable(level.keys, _safe_log10(probs[n - 1]), bow, has_bow))
    metadata = {"smoothing": "interpolated modified Kneser-Ney"}
    return BackoffLM(vocab=list(vocab), levels=tables, metadata=metadata), discounts


def estimate_kneser_ney(
    encoded: EncodedText,
    order: int = 3,
    fallback: tuple[float, float, float] = DEFAULT_FALLBACK,
    fixed_discounts: tuple[float, float, float] | None = None,
) -> tuple[BackoffLM, list[Discounts]]:
    """Count and estimate an order-``order`` model of ``encoded`` (see module docstring).

    The returned model may have a lower order when no sentence is long enough for ``order``.
    """
    if encoded.n_sentences == 0:
        raise ValueError("cannot estimate a language model from no sentences")
    if order < 1 or not math.isfinite(order):
        raise ValueError("order must be a positive integer")
    levels = count_ngrams(encoded.tokens, len(encoded.vocab), order)
    return estimate_from_counts(levels, encoded.vocab, fallback, fixed_discounts)
