"""Integer-encode normalised sentences for n-gram counting and scoring.

Contract: ids 0, 1, 2 are always ``<s>``, ``</s>`` and ``<unk>``; every sentence becomes
``<s> w1 ... wn </s>`` in one flat ``int32`` array, so a 10M-word corpus costs ~44 MB, not a
Python list of strings.
"""

from __future__ import annotations

from array import array
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
BOS_ID, EOS_ID, UNK_ID = 0, 1, 2
SPECIALS = (BOS, EOS, UNK)


@dataclass(frozen=True)
class EncodedText:
    """Sentences as one flat id array; ``vocab[i]`` is the word with id ``i``."""

    vocab: list[str]
    tokens: np.ndarray
    n_sentences: int

    @property
    def n_words(self) -> int:
        """Words, not counting the sentence markers."""
        return int(self.tokens.size) - 2 * self.n_sentences

    def word_index(self) -> dict[str, int]:
        """Word -> id."""
        return {w: i for i, w in enumerate(self.vocab)}


def encode_sentences(sentences: Iterable[str]) -> EncodedText:
    """Encode non-empty normalised sentences, growing a vocabulary in first-seen order."""
    index: dict[str, int] = {w: i for i, w in enumerate(SPECIALS)}
    buffer = array("i")
    n_sentences = 0
    for sentence in sentences:
        words = sentence.split()
        if not words:
            continue
        buffer.append(BOS_ID)
        # setdefault evaluates len(index) before inserting, so a new word gets the next id.
        buffer.extend([index.setdefault(w, len(index)) for w in words])
        buffer.append(EOS_ID)
        n_sentences += 1
    tokens = np.frombuffer(buffer, dtype=np.int32).copy() if buffer else np.zeros(0, np.int32)
    return EncodedText(vocab=list(index), tokens=tokens, n_sentences=n_sentences)


def encode_with_vocab(sentences: Iterable[str], index: Mapping[str, int]) -> tuple[np.ndarray, int, int]:
    """Encode against a fixed vocabulary: unknown words become ``<unk>``.

    Returns ``(tokens, n_sentences, n_oov)``; ``index`` must map the specials to 0, 1, 2.
    """
    buffer = array("i")
    n_sentences = n_oov = 0
    for sentence in sentences:
        words = sentence.split()
        if not words:
            continue
        ids = [index.get(w, UNK_ID) for w in words]
        n_oov += sum(1 for w in words if w not in index)
        buffer.append(BOS_ID)
        buffer.extend(ids)
        buffer.append(EOS_ID)
        n_sentences += 1
    tokens = np.frombuffer(buffer, dtype=np.int32).copy() if buffer else np.zeros(0, np.int32)
    return tokens, n_sentences, n_oov


def restrict_vocabulary(encoded: EncodedText, keep: Container[str]) -> EncodedText:
    """Map every word not in ``keep`` to ``<unk>`` and drop it from the vocabulary.

    Word order (and so ids) of the kept words is preserved; the specials always stay.
    """
    new_vocab = [w for i, w in enumerate(encoded.vocab) if i < len(SPECIALS) or w in keep]
    new_index = {w: i for i, w in enumerate(new_vocab)}
    lookup = np.array([new_index.get(w, UNK_ID) for w in encoded.vocab], dtype=np.int32)
    return EncodedText(vocab=new_vocab, tokens=lookup[encoded.tokens], n_sentences=encoded.n_sentences)
