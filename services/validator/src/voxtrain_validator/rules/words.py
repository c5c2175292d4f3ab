"""Word and vocabulary counts for transcript text, with the vocabulary's memory capped.

A word is a run of letters and digits, with inner apostrophes kept ("don't", "o’clock"), in
case-folded text: exactly what ``_WORD.findall(text.casefold())`` finds. Whitespace never joins
two words, so most of the work is a whitespace ``split`` (C speed); only tokens with something
other than letters and digits in them go through the regular expression.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

# Letters and digits, with inner apostrophes kept ("don't", "o’clock").
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# ASCII characters that can never be part of a word (everything but letters, digits and "'").
_ASCII_SEPARATORS = {c: " " for c in range(128) if not chr(c).isalnum() and chr(c) != "'"}
# For counting only: each ASCII letter or digit becomes "a", "'" stays, anything else is a space.
_ASCII_MARKS = {c: "a" if chr(c).isalnum() else c if chr(c) == "'" else " " for c in range(128)}
MAX_VOCABULARY = 500_000


def words_of(text: str) -> list[str]:
    """The words of ``text``, case-folded, as ``_WORD.findall(text.casefold())`` lists them (in any order)."""
    folded = text.casefold()
    if folded.isascii():
        # ASCII punctuation becomes a space: it separates words just as whitespace does.
        folded = folded.translate(_ASCII_SEPARATORS)
        if "'" not in folded:
            return folded.split()
    tokens = folded.split()
    plain = list(filter(str.isalnum, tokens))
    if len(plain) == len(tokens):
        return plain
    return plain + _WORD.findall(" ".join(itertools.filterfalse(str.isalnum, tokens)))


def count_words(text: str) -> int:
    """``len(words_of(text))``; ASCII text without apostrophes is counted without making the words."""
    if text.isascii():
        marked = text.translate(_ASCII_MARKS)
        if "'" not in marked:
            # A word is a run of letters and digits: count where one starts.
            return marked.count(" a") + marked.startswith("a")
    return len(words_of(text))


class WordCounter:
    """Counts words and distinct (case-folded) words; stops growing the vocabulary at a cap."""

    def __init__(self, max_vocabulary: int = MAX_VOCABULARY) -> None:
        self._max = max_vocabulary
        self._vocabulary: set[str] = set()
        self.count = 0
        self.capped = False

    def add(self, text: str) -> int:
        """Count the words of ``text``; returns how many it had."""
        if self.capped:
            found = count_words(text)
            self.count += found
            return found
        words = words_of(text)
        self.count += len(words)
        if not self.capped:
            self._vocabulary.update(words)
            if len(self._vocabulary) >= self._max:
                self.capped = True
        return len(words)

    def add_all(self, texts: Sequence[str], joined: str) -> None:
        """Exactly ``for text in texts: self.add(text)``, given ``joined`` = the texts joined by "\\n".

        The words of the whole batch are found in one pass; only a batch that would reach the
        vocabulary cap is taken text by text, so the cap falls where it would have. Once the
        vocabulary is capped, words are only counted.
        """
        if self.capped:
            self.count += count_words(joined)
            return
        words = words_of(joined)
        # A small set of the batch's words first: looking each word up in the big vocabulary
        # is a cache miss, and a batch repeats most of its words.
        batch = set(words)
        if len(self._vocabulary) + len(batch) >= self._max:
            batch.difference_update(self._vocabulary)
            if len(self._vocabulary) + len(batch) >= self._max:
                for text in texts:
                    self.add(text)
                return
        self._vocabulary.update(batch)
        self.count += len(words)

    @property
    def vocabulary_size(self) -> int:
        return len(self._vocabulary)
