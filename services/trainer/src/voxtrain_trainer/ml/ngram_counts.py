"""Count every n-gram of an encoded corpus, order by order, with numpy.

Representation (a trie flattened into sorted arrays): level 1 is dense over the vocabulary
(entry ``i`` is word ``i``). An entry of level ``n >= 2`` has the key
``prefix * V + word`` where ``prefix`` is the index of its first ``n-1`` words in level ``n-1``;
keys are sorted and unique, so sorting by key is lexicographic order of the words, contexts
are contiguous runs, and any n-gram is found with one ``searchsorted`` per order. Keys fit an
int64 for any order: an index is below the corpus size and ``V`` below 2**31.

N-grams never cross sentences; each sentence is ``<s> ... </s>``, so ``<s>`` only ever starts
an n-gram.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxtrain_trainer.ml.encoding import BOS_ID, EOS_ID


@dataclass(frozen=True)
class CountLevel:
    """The distinct n-grams of one order with their raw counts.

    ``suffix[i]`` is the level ``n-1`` index of entry ``i`` without its first word (empty for
    level 1).
    """

    order: int
    keys: np.ndarray
    counts: np.ndarray
    suffix: np.ndarray
    vocab_size: int

    @property
    def prefix(self) -> np.ndarray:
        """Level ``n-1`` index of each entry's first ``n-1`` words (all zero for level 1)."""
        if self.order == 1:
            return np.zeros(self.keys.size, dtype=np.int64)
        return self.keys // self.vocab_size

    @property
    def word(self) -> np.ndarray:
        """Id of each entry's last word."""
        return self.keys % self.vocab_size

    def __len__(self) -> int:
        return int(self.keys.size)


def _room_to_sentence_end(tokens: np.ndarray) -> np.ndarray:
    """For each position, how many tokens from it to its sentence's ``</s>`` inclusive."""
    ends = np.flatnonzero(tokens == EOS_ID)
    sentence = np.cumsum(tokens == BOS_ID) - 1
    return ends[sentence] - np.arange(tokens.size) + 1


def count_ngrams(tokens: np.ndarray, vocab_size: int, max_order: int) -> list[CountLevel]:
    """Count all n-grams of orders ``1..max_order`` in ``tokens`` (see module docstring).

    ``tokens`` must be sentences ``<s> ... </s>`` back to back. Orders with no n-gram at all
    (every sentence shorter than the order) are left out, so the result may be shorter than
    ``max_order``.
    """
    if max_order < 1:
        raise ValueError("order must be at least 1")
    tokens = np.asarray(tokens, dtype=np.int32)
    unigram_counts = np.bincount(tokens, minlength=vocab_size).astype(np.int64)
    levels = [CountLevel(1, np.arange(vocab_size, dtype=np.int64), unigram_counts, np.zeros(0, np.int64), vocab_size)]
    if max_order == 1 or tokens.size == 0:
        return levels
    room = _room_to_sentence_end(tokens)
    # index, in the previous level, of the n-gram that starts at each position (-1: none)
    start_index = tokens.astype(np.int64)
    for order in range(2, max_order + 1):
        positions = np.flatnonzero(room >= order)
        if positions.size == 0:
            break
        keys = start_index[positions] * vocab_size + tokens[positions + order - 1]
        unique, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
        suffix = start_index[positions[first] + 1]
        next_index = np.full(tokens.size, -1, dtype=np.int64)
        next_index[positions] = inverse.reshape(-1)
        del keys, inverse
        levels.append(CountLevel(order, unique, counts.astype(np.int64), suffix, vocab_size))
        start_index = next_index
    return levels
