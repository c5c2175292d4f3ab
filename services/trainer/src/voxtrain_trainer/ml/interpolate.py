"""Mix general English into a domain LM: static linear interpolation of two backoff models.

Contract of :func:`interpolate_with_general`: the result is an ARPA backoff model over the union
of both vocabularies whose listed n-grams are the union of both models' n-grams, each with
probability ``lam * p_domain(w | h) + (1 - lam) * p_general(w | h)`` (each model scoring with its
own backoff; a model's probability of a word it lacks is 0). Backoff weights are then recomputed
(:func:`fit_backoffs`) so that every context's distribution over the whole vocabulary sums to 1
-- SRILM's ``-mix-lm`` static mixing does the same; n-grams neither model lists get the backed-off
mixture, not the exact one. ``general`` is e.g. the base model's LM pruned to its commonest words
and n-grams (:mod:`voxtrain_trainer.ml.general_lm`) so the mixed model decodes in real time.
:func:`tune_weight` picks ``lam`` from a grid by perplexity of held-out sentences under the exact
mixture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from voxtrain_trainer.ml.arpa import parse_arpa
from voxtrain_trainer.ml.backoff_lm import LOG10_ZERO
from voxtrain_trainer.ml.encoding import BOS, EOS

Ngram = tuple[str, ...]
LAMBDA_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)


@dataclass
class MixedModel:
    """An n-gram model as ``{ngram: log10 p}`` and ``{context: log10 bow}`` per order."""

    probs: list[dict[Ngram, float]]
    bows: list[dict[Ngram, float]]

    @property
    def order(self) -> int:
        return len(self.probs)

    def log10_prob(self, word: str, history: Ngram) -> float:
        """ARPA backoff probability of ``word`` after ``history`` (most recent word last)."""
        history = history[-(self.order - 1) :] if self.order > 1 else ()
        penalty = 0.0
        while True:
            n = len(history) + 1
            p = self.probs[n - 1].get((*history, word))
            if p is not None:
                return p + penalty
            if not history:
                return LOG10_ZERO
            penalty += self.bows[n - 2].get(history, 0.0)
            history = history[1:]


def read_model(path: Path) -> MixedModel:
    """Read an ARPA file into dictionaries."""
    sections = parse_arpa(path)
    probs = [{words: p for words, p, _ in sections[n]} for n in sorted(sections)]
    bows = [{words: b for words, _, b in sections[n] if b is not None} for n in sorted(sections)]
    return MixedModel(probs, bows)


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else LOG10_ZERO


def _p(log10p: float) -> float:
    return 10.0**log10p if log10p > LOG10_ZERO else 0.0


def fit_backoffs(model: MixedModel) -> None:
    """Set every backoff weight so that each context's distribution sums to 1 over the vocabulary.

    For a context ``h`` with listed continuations ``L``: ``bow(h) = (1 - sum_L p(w | h)) /
    (1 - sum_L p(w | h'))`` with ``h'`` = ``h`` without its oldest word. A context whose listed words
    already cover all the lower-order mass has its listed probabilities scaled to sum to 1 instead.
    """
    for n in range(1, model.order):
        listed: dict[Ngram, list[float]] = {}
        for ng, logp in model.probs[n].items():
            sums = listed.setdefault(ng[:-1], [0.0, 0.0])
            sums[0] += _p(logp)
            sums[1] += _p(model.log10_prob(ng[-1], ng[1:-1]))
        bows: dict[Ngram, float] = {}
        model.bows[n - 1] = bows
        for context, (have, low) in listed.items():
            if 1.0 - low > 1e-9:
                bows[context] = _log10(max(1.0 - have, 1e-12) / (1.0 - low))
                continue
            level = model.probs[n]  # every word is listed after this context: renormalise it
            for ng in [ng for ng in level if ng[:-1] == context]:
                level[ng] -= math.log10(have)


def interpolate_with_general(domain: MixedModel, general: MixedModel, lam: float) -> MixedModel:
    """The mixed model (see module contract)."""
    if not 0.0 < lam <= 1.0:
        raise ValueError("the domain weight must be in (0, 1]")
    order = max(domain.order, general.order)
    probs: list[dict[Ngram, float]] = []
    for n in range(1, order + 1):
        keys = set(domain.probs[n - 1] if n <= domain.order else ()) | set(
            general.probs[n - 1] if n <= general.order else ()
        )
        level: dict[Ngram, float] = {}
        for ng in keys:
            if ng == (BOS,):
                level[ng] = LOG10_ZERO
                continue
            word, history = ng[-1], ng[:-1]
            p = lam * _p(domain.log10_prob(word, history)) + (1.0 - lam) * _p(general.log10_prob(word, history))
            level[ng] = _log10(p)
        probs.append(level)
    out = MixedModel(probs, [{} for _ in probs])
    fit_backoffs(out)
    return out


def write_model(model: MixedModel, path: Path) -> list[int]:
    """Write the model as ARPA text (sorted); the n-gram counts per order."""
    counts = [len(level) for level in model.probs]
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write("\\data\\\n" + "".join(f"ngram {n}={c}\n" for n, c in enumerate(counts, start=1)))
        for n, level in enumerate(model.probs, start=1):
            out.write(f"\n\\{n}-grams:\n")
            bows = model.bows[n - 1]
            for ng in sorted(level):
                bow = bows.get(ng)
                text = " ".join(ng)
                out.write(f"{level[ng]:.6f}\t{text}\t{bow:.6f}\n" if bow is not None else f"{level[ng]:.6f}\t{text}\n")
        out.write("\n\\end\\\n")
    return counts


@dataclass(frozen=True)
class WeightChoice:
    """The chosen domain weight and the held-out perplexity at each grid point."""

    lam: float
    perplexity: dict[float, float]
    tokens: int


def tune_weight(
    folds: Sequence[tuple[MixedModel, Sequence[str]]], general: MixedModel, grid: Sequence[float] = LAMBDA_GRID
) -> WeightChoice:
    """Domain weight with the lowest perplexity of held-out sentences under the exact linear mixture.

    ``folds`` pairs each domain model with sentences it did not see (one pair, or the folds of a
    cross-validation, pooled). Words neither model knows are skipped (they cost every weight the same).
    """
    pairs: list[tuple[float, float]] = []
    for domain, sentences in folds:
        for sentence in sentences:
            history: tuple[str, ...] = (BOS,)
            for word in [*sentence.split(), EOS]:
                p_d, p_g = _p(domain.log10_prob(word, history)), _p(general.log10_prob(word, history))
                if p_d > 0.0 or p_g > 0.0:
                    pairs.append((p_d, p_g))
                history = (*history, word)
    scores: dict[float, float] = {}
    for lam in grid:
        total = sum(math.log10(max(lam * d + (1 - lam) * g, 1e-99)) for d, g in pairs)
        scores[lam] = 10 ** (-total / len(pairs)) if pairs else float("inf")
    best = min(grid, key=lambda lam: (scores[lam], -lam))
    return WeightChoice(best, scores, len(pairs))
