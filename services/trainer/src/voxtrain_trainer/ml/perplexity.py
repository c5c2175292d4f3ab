"""Perplexity and out-of-vocabulary rate of a text under the custom and the base LM.

Conventions (SRILM's, applied identically to both models): every sentence is scored as
``<s> w1 ... wn </s>``; ``</s>`` is predicted and counted; words outside the model's vocabulary
are counted as OOV and left out of the perplexity (they still serve as history, as ``<unk>``).
``perplexity = 10 ** (-sum(log10 p) / scored)`` where ``scored = words - oov + sentences``.
Perplexities of models with different vocabularies are only comparable together with their
OOV rates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pocketsphinx

from voxtrain_trainer.ml.backoff_lm import BackoffLM
from voxtrain_trainer.ml.encoding import BOS, EOS, encode_with_vocab

_LOG10_LOGMATH = math.log10(1.0001)  # NGramModel.readfile scores in base-1.0001 logs


@dataclass(frozen=True)
class PerplexityResult:
    """Perplexity, OOV rate and what they were computed on."""

    perplexity: float | None
    oov_rate: float
    words: int
    oov_words: int
    sentences: int
    scored_tokens: int
    log10_prob: float

    def to_dict(self) -> dict:
        """JSON-ready view."""
        return asdict(self)


def _result(total: float, words: int, oov: int, sentences: int) -> PerplexityResult:
    scored = words - oov + sentences
    ppl = 10 ** (-total / scored) if scored else None
    return PerplexityResult(ppl, oov / words if words else 0.0, words, oov, sentences, scored, total)


def custom_perplexity(lm: BackoffLM, sentences: Sequence[str]) -> PerplexityResult:
    """Score normalised ``sentences`` with our own backoff model (vectorised)."""
    index = lm.word_index
    tokens, n_sentences, n_oov = encode_with_vocab(sentences, index)
    if n_sentences == 0:
        return _result(0.0, 0, 0, 0)
    scores = lm.score_tokens(tokens)
    words = (w for s in sentences if s.split() for w in (BOS, *s.split(), EOS))
    known = np.fromiter((w in index for w in words), dtype=bool, count=tokens.size)
    total = float(scores[~np.isnan(scores) & known].sum())
    n_words = int(tokens.size) - 2 * n_sentences
    return _result(total, n_words, n_oov, n_sentences)


class BaseLMScorer:
    """The shipped binary LM, scored through PocketSphinx's own n-gram code."""

    def __init__(self, path: Path) -> None:
        self._lm = pocketsphinx.NGramModel.readfile(str(path))
        self._order = int(self._lm.size())
        self._zero = self._lm.prob(["<unk-probe-word>"])  # what an unknown word scores

    def knows(self, word: str) -> bool:
        """Whether ``word`` is in the model's vocabulary."""
        return self._lm.prob([word]) != self._zero

    def perplexity(self, sentences: Sequence[str]) -> PerplexityResult:
        """Score normalised ``sentences`` (see module conventions)."""
        total = 0.0
        n_words = n_oov = n_sentences = 0
        known_cache: dict[str, bool] = {}
        for sentence in sentences:
            words = sentence.split()
            if not words:
                continue
            n_sentences += 1
            history = [BOS]
            for word in [*words, EOS]:
                if word != EOS:
                    n_words += 1
                known = known_cache.setdefault(word, self.knows(word))
                if not known:
                    n_oov += 1
                else:
                    context = history[-(self._order - 1) :][::-1]
                    total += self._lm.prob([word, *context]) * _LOG10_LOGMATH
                history.append(word)
        return _result(total, n_words, n_oov, n_sentences)
