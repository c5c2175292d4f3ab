"""A backoff n-gram language model held in sorted numpy arrays (ARPA semantics).

Layout is the one of :mod:`ngram_counts`: level 1 is dense over the vocabulary, an entry of
level ``n >= 2`` has key ``prefix * V + word``. Probabilities follow the ARPA backoff rule:
``p(w | h) = p*(h w)`` if ``h w`` is listed, else ``bow(h) * p(w | h minus its first word)``,
with ``bow(h) = 1`` when ``h`` is not listed. All values are log10.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from voxtrain_trainer.ml.encoding import BOS, EOS, UNK

LOG10_ZERO = -99.0


@dataclass(frozen=True)
class LevelTable:
    """One order of the model: sorted keys, log10 probabilities and backoff weights."""

    keys: np.ndarray
    log10_prob: np.ndarray
    log10_bow: np.ndarray
    has_bow: np.ndarray

    def __len__(self) -> int:
        return int(self.keys.size)


@dataclass(frozen=True)
class BackoffLM:
    """An ARPA-style backoff model over ``vocab`` (which holds ``<s>`` and ``</s>``)."""

    vocab: list[str]
    levels: list[LevelTable]
    metadata: dict = field(default_factory=dict)

    @property
    def order(self) -> int:
        """The highest order."""
        return len(self.levels)

    @property
    def vocab_size(self) -> int:
        """Number of words, specials included."""
        return len(self.vocab)

    @cached_property
    def word_index(self) -> dict[str, int]:
        """Word -> id."""
        return {w: i for i, w in enumerate(self.vocab)}

    @property
    def bos_id(self) -> int:
        """Id of ``<s>``."""
        return self.word_index[BOS]

    @property
    def eos_id(self) -> int:
        """Id of ``</s>``."""
        return self.word_index[EOS]

    @property
    def unk_id(self) -> int:
        """Id of ``<unk>``, or -1 when the model has none."""
        return self.word_index.get(UNK, -1)

    def ngram_counts(self) -> list[int]:
        """Number of entries per order, unigrams first."""
        return [len(level) for level in self.levels]

    def index_of(self, word_ids: Sequence[int]) -> int:
        """Index of the n-gram ``word_ids`` in its level, or -1 when it is not listed."""
        if not word_ids or len(word_ids) > self.order:
            return -1
        index = int(word_ids[0])
        for n, word in enumerate(word_ids[1:], start=2):
            keys = self.levels[n - 1].keys
            key = index * self.vocab_size + int(word)
            pos = int(np.searchsorted(keys, key))
            if pos >= keys.size or keys[pos] != key:
                return -1
            index = pos
        return index

    def log10_prob(self, history: Sequence[int], word: int) -> float:
        """log10 p(word | history) by the ARPA backoff rule; only the last order-1 words count."""
        history = list(history)[-(self.order - 1) :] if self.order > 1 else []
        backoff = 0.0
        while True:
            index = self.index_of([*history, word])
            if index >= 0:
                return backoff + float(self.levels[len(history)].log10_prob[index])
            if history:
                context = self.index_of(history)
                if context >= 0:
                    backoff += float(self.levels[len(history) - 1].log10_bow[context])
                history = history[1:]
            else:
                return LOG10_ZERO

    def score_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """log10 p of every token given its in-sentence history, vectorised.

        ``tokens`` are sentences ``<s> ... </s>`` back to back, encoded with this model's ids.
        Positions of ``<s>`` get NaN (they are not predicted).
        """
        tokens = np.asarray(tokens, dtype=np.int64)
        size = tokens.size
        positions = np.arange(size)
        is_bos = tokens == self.bos_id
        history_len = positions - np.maximum.accumulate(np.where(is_bos, positions, 0))
        # ending[m][i]: index in level m of the m-gram ending at i (-1 when not listed)
        ending: list[np.ndarray] = [np.empty(0), tokens.copy()]
        for m in range(2, self.order + 1):
            prev = np.full(size, -1, dtype=np.int64)
            prev[1:] = ending[m - 1][:-1]
            candidates = np.flatnonzero((prev >= 0) & (history_len >= m - 1))
            keys = self.levels[m - 1].keys
            wanted = prev[candidates] * self.vocab_size + tokens[candidates]
            pos = np.searchsorted(keys, wanted)
            pos_clipped = np.minimum(pos, max(keys.size - 1, 0))
            found = (pos < keys.size) & (keys[pos_clipped] == wanted) if keys.size else np.zeros(0, bool)
            current = np.full(size, -1, dtype=np.int64)
            current[candidates[found]] = pos[found]
            ending.append(current)
        best_order = np.ones(size, dtype=np.int64)
        logp = self.levels[0].log10_prob[tokens].astype(np.float64)
        for m in range(2, self.order + 1):
            hit = ending[m] >= 0
            best_order[hit] = m
            logp[hit] = self.levels[m - 1].log10_prob[ending[m][hit]]
        for k in range(1, self.order):
            # history of length k ending just before i, when it exists and was backed off from
            history = np.full(size, -1, dtype=np.int64)
            history[1:] = ending[k][:-1]
            use = (history >= 0) & (history_len >= k) & (best_order <= k)
            logp[use] += self.levels[k - 1].log10_bow[history[use]]
        logp[is_bos] = np.nan
        return logp

    def iter_level_words(self) -> Iterator[list[str]]:
        """The space-joined words of every entry, one list per level (unigrams first), in key order."""
        texts = list(self.vocab)
        yield texts
        vocab = self.vocab
        for m in range(2, self.order + 1):
            keys = self.levels[m - 1].keys
            prefixes = (keys // self.vocab_size).tolist()
            words = (keys % self.vocab_size).tolist()
            texts = [f"{texts[p]} {vocab[w]}" for p, w in zip(prefixes, words, strict=True)]
            yield texts

    def words_of_level(self, n: int) -> list[str]:
        """The space-joined words of every entry of level ``n`` (1-based), in key order."""
        for m, texts in enumerate(self.iter_level_words(), start=1):
            if m == n:
                return texts
        raise ValueError(f"no level {n}")
