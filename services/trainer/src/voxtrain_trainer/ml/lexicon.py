"""The pronunciation lexicon of a custom model: base dictionary + G2P for new domain words.

Contract of :func:`build_lexicon`: every word of the requested vocabulary gets the base
dictionary's pronunciations when it has any, else the G2P's (runs use the model trained on the
base dictionary, :mod:`g2p_learn`; the default here is espeak-ng mapped to CMU phones); words
with neither are listed in ``unmapped`` and get no entry. :func:`write_dictionary` writes the
PocketSphinx format (``word PH ...``, alternates as ``word(2) PH ...``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from voxtrain_trainer.ml.g2p import CMU_PHONES, espeak_pronunciations

Pronunciations = dict[str, list[tuple[str, ...]]]
G2P = Callable[[Iterable[str]], Pronunciations]


def read_dictionary(path: Path) -> Pronunciations:
    """Read a PocketSphinx/CMU dictionary: word -> pronunciations in file order."""
    entries: Pronunciations = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) < 2 or fields[0].startswith(";;"):
                continue
            head = fields[0]
            word = head[: head.index("(")] if head.endswith(")") and "(" in head else head
            phones = tuple(p for p in fields[1:] if not p.startswith("#"))
            entries.setdefault(word, []).append(phones)
    return entries


@lru_cache(maxsize=2)
def _cached_dictionary(path: str) -> Pronunciations:
    return read_dictionary(Path(path))


def load_base_dictionary(path: Path) -> Mapping[str, list[tuple[str, ...]]]:
    """The base dictionary, read once per process (treat it as read-only)."""
    return _cached_dictionary(str(path))


@dataclass
class Lexicon:
    """Pronunciations for a vocabulary and where they came from."""

    entries: Pronunciations = field(default_factory=dict)
    from_base: list[str] = field(default_factory=list)
    from_g2p: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)


def build_lexicon(
    words: Iterable[str], base: Mapping[str, list[tuple[str, ...]]], g2p: G2P = espeak_pronunciations
) -> Lexicon:
    """Pronunciations for ``words`` (see module contract); G2P runs once on all new words."""
    lexicon = Lexicon()
    new_words: list[str] = []
    for word in sorted(set(words)):
        if word in base:
            lexicon.entries[word] = list(base[word])
            lexicon.from_base.append(word)
        else:
            new_words.append(word)
    generated = g2p(new_words) if new_words else {}
    for word in new_words:
        prons = [p for p in generated.get(word, []) if p and all(ph in CMU_PHONES for ph in p)]
        if prons:
            lexicon.entries[word] = prons
            lexicon.from_g2p.append(word)
        else:
            lexicon.unmapped.append(word)
    return lexicon


def write_dictionary(entries: Mapping[str, list[tuple[str, ...]]], path: Path) -> int:
    """Write ``entries`` in PocketSphinx dictionary format, sorted; return the line count."""
    lines = []
    for word in sorted(entries):
        for n, phones in enumerate(entries[word], start=1):
            head = word if n == 1 else f"{word}({n})"
            lines.append(f"{head} {' '.join(phones)}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)
