"""Mix general English into a domain LM: static linear interpolation of backoff models.

Contract of :func:`interpolate_with_general`: the result is an ARPA backoff model over the union
of the domain vocabulary and the ``general`` words, whose listed n-grams are the domain model's
and whose probabilities are ``lam * p_domain(w | h) + (1 - lam) * p_general(w)`` (``p_domain`` of a
word the domain model lacks is 0; ``general`` is a unigram distribution, e.g. the base model's
most frequent words, pruned so the mixed model stays small enough to decode in real time).
Backoff weights are recomputed so that every context's distribution over the whole vocabulary
sums to 1 (SRILM's ``-mix-lm`` static mixing does the same). The model works on any ARPA file,
whichever estimator wrote it, and streams it: memory holds the n-grams, not the text.
:func:`tune_weight` picks ``lam`` from a grid by perplexity of held-out sentences under the exact
mixture.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from voxtrain_trainer.ml.arpa import parse_arpa
from voxtrain_trainer.ml.backoff_lm import LOG10_ZERO
from voxtrain_trainer.ml.encoding import BOS, EOS, UNK

Ngram = tuple[str, ...]
LAMBDA_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)


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


def _mix(p_domain_log10: float | None, general: float, lam: float) -> float:
    p = lam * (10.0**p_domain_log10 if p_domain_log10 is not None and p_domain_log10 > LOG10_ZERO else 0.0)
    return p + (1.0 - lam) * general


def interpolate_with_general(domain: MixedModel, general: Mapping[str, float], lam: float) -> MixedModel:
    """The mixed model (see module contract); ``general`` maps word -> probability (sums to 1)."""
    if not 0.0 < lam <= 1.0:
        raise ValueError("the domain weight must be in (0, 1]")
    unigrams = domain.probs[0]
    words = {ng[0] for ng in unigrams} | set(general)
    mixed_uni: dict[Ngram, float] = {}
    for word in words:
        key = (word,)
        if word == BOS:
            mixed_uni[key] = LOG10_ZERO
        else:
            mixed_uni[key] = _log10(_mix(unigrams.get(key), general.get(word, 0.0), lam))
    out = MixedModel([mixed_uni], [{}])
    for n in range(2, domain.order + 1):
        out.probs.append({ng: _log10(_mix(p, general.get(ng[-1], 0.0), lam)) for ng, p in domain.probs[n - 1].items()})
        out.bows.append({})
    # backoff weights: for each context h, (1 - sum of listed p(w|h)) / (1 - sum of p(w|h minus first word))
    for n in range(1, domain.order):
        listed: dict[Ngram, tuple[float, float]] = {}
        for ng, logp in out.probs[n].items():
            context = ng[:-1]
            lower = out.log10_prob(ng[-1], context[1:])
            have, low = listed.get(context, (0.0, 0.0))
            listed[context] = (have + 10.0**logp, low + 10.0**lower)
        bows = out.bows[n - 1]
        for context in set(domain.bows[n - 1]) | set(listed):
            have, low = listed.get(context, (0.0, 0.0))
            if context in out.probs[n - 1]:
                bows[context] = _log10(max(1.0 - have, 1e-12) / max(1.0 - low, 1e-12))
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


def general_unigrams(log10_probs: Mapping[str, float], size: int) -> dict[str, float]:
    """The ``size`` most probable words of a general model (plus ``</s>``), renormalised to sum to 1."""
    ranked = sorted((w for w in log10_probs if w not in (BOS, EOS, UNK)), key=lambda w: -log10_probs[w])
    kept = ranked[:size]
    if EOS in log10_probs:
        kept.append(EOS)
    total = sum(10.0 ** log10_probs[w] for w in kept)
    return {w: 10.0 ** log10_probs[w] / total for w in kept}


@dataclass(frozen=True)
class WeightChoice:
    """The chosen domain weight and the held-out perplexity at each grid point."""

    lam: float
    perplexity: dict[float, float]
    tokens: int


def tune_weight(
    domain: MixedModel, general: Mapping[str, float], sentences: Sequence[str], grid: Sequence[float] = LAMBDA_GRID
) -> WeightChoice:
    """Domain weight with the lowest perplexity of ``sentences`` under the exact linear mixture."""
    vocab = {ng[0] for ng in domain.probs[0]}
    pairs: list[tuple[float, float]] = []
    for sentence in sentences:
        history: tuple[str, ...] = (BOS,)
        for word in [*sentence.split(), EOS]:
            in_domain = word in vocab
            if in_domain or word in general:
                p_d = 10.0 ** domain.log10_prob(word, history) if in_domain else 0.0
                pairs.append((p_d, general.get(word, 0.0)))
            history = (*history, word if in_domain else UNK)
    scores: dict[float, float] = {}
    for lam in grid:
        total = sum(math.log10(max(lam * d + (1 - lam) * g, 1e-99)) for d, g in pairs)
        scores[lam] = 10 ** (-total / len(pairs)) if pairs else float("inf")
    best = min(grid, key=lambda lam: (scores[lam], -lam))
    return WeightChoice(best, scores, len(pairs))
