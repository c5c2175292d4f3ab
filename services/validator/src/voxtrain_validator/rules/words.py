"""Word and vocabulary counts for transcript text, with the vocabulary's memory capped."""

from __future__ import annotations

import re

# Letters and digits, with inner apostrophes kept ("don't", "o’clock").
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
MAX_VOCABULARY = 500_000


class WordCounter:
    """Counts words and distinct (case-folded) words; stops growing the vocabulary at a cap."""

    def __init__(self, max_vocabulary: int = MAX_VOCABULARY) -> None:
        self._max = max_vocabulary
        self._vocabulary: set[str] = set()
        self.count = 0
        self.capped = False

    def add(self, text: str) -> int:
        """Count the words of ``text``; returns how many it had."""
        words = _WORD.findall(text.casefold())
        self.count += len(words)
        if not self.capped:
            self._vocabulary.update(words)
            if len(self._vocabulary) >= self._max:
                self.capped = True
        return len(words)

    @property
    def vocabulary_size(self) -> int:
        return len(self._vocabulary)
