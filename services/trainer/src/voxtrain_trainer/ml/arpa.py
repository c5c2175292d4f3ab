"""Write and read ARPA-format backoff language models.

Contract of :func:`write_arpa`: a ``\\data\\`` header whose ``ngram N=`` counts equal the
entries written, then one section per order in key order, ``log10p<TAB>words[<TAB>log10bow]``
(a backoff weight only for entries that are the context of a longer entry), then ``\\end\\``.
``<s>`` has log10 probability -99. :func:`read_arpa` reads any ARPA file back into a
:class:`BackoffLM` (``<s>``, ``</s>``, ``<unk>`` first, when present).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from voxtrain_trainer.ml.backoff_lm import BackoffLM, LevelTable
from voxtrain_trainer.ml.encoding import SPECIALS

_CHUNK = 200_000
_COUNT = re.compile(r"ngram\s+(\d+)\s*=\s*(\d+)")
_SECTION = re.compile(r"\\(\d+)-grams:")


def write_arpa(lm: BackoffLM, path: Path) -> list[int]:
    """Write ``lm`` to ``path`` as ARPA text; return the n-gram counts written per order."""
    counts = lm.ngram_counts()
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write("\\data\\\n")
        for n, count in enumerate(counts, start=1):
            out.write(f"ngram {n}={count}\n")
        for n, texts in enumerate(lm.iter_level_words(), start=1):
            level = lm.levels[n - 1]
            out.write(f"\n\\{n}-grams:\n")
            for start in range(0, len(texts), _CHUNK):
                stop = start + _CHUNK
                probs = level.log10_prob[start:stop].tolist()
                bows = level.log10_bow[start:stop].tolist()
                has = level.has_bow[start:stop].tolist()
                lines = [
                    f"{p:.6f}\t{t}\t{b:.6f}\n" if h else f"{p:.6f}\t{t}\n"
                    for p, t, b, h in zip(probs, texts[start:stop], bows, has, strict=True)
                ]
                out.write("".join(lines))
        out.write("\n\\end\\\n")
    return counts


def parse_arpa(path: Path) -> dict[int, list[tuple[tuple[str, ...], float, float | None]]]:
    """Every entry of an ARPA file per order: ``(words, log10 p, log10 bow or None)``."""
    return _parse(path)[1]


def _parse(path: Path) -> tuple[dict[int, int], dict[int, list[tuple[tuple[str, ...], float, float | None]]]]:
    declared: dict[int, int] = {}
    sections: dict[int, list[tuple[tuple[str, ...], float, float | None]]] = {}
    current: int | None = None
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            line = raw.strip()
            if not line:
                continue
            if current is None and (m := _COUNT.match(line)):
                declared[int(m.group(1))] = int(m.group(2))
                continue
            if m := _SECTION.fullmatch(line):
                current = int(m.group(1))
                sections[current] = []
                continue
            if line == "\\end\\":
                break
            if current is None:
                continue
            fields = line.split()
            prob = float(fields[0])
            words = tuple(fields[1 : 1 + current])
            bow = float(fields[1 + current]) if len(fields) > 1 + current else None
            sections[current].append((words, prob, bow))
    return declared, sections


def read_arpa(path: Path) -> BackoffLM:
    """Read an ARPA file; raise ``ValueError`` when it is malformed or its counts disagree."""
    declared, sections = _parse(path)
    if not declared or sorted(sections) != list(range(1, len(declared) + 1)):
        raise ValueError(f"{path.name}: not an ARPA file (missing header or n-gram sections)")
    for n, count in declared.items():
        if len(sections[n]) != count:
            raise ValueError(f"{path.name}: header says {count} {n}-grams, file has {len(sections[n])}")
    unigram_words = [e[0][0] for e in sections[1]]
    vocab = [w for w in SPECIALS if w in unigram_words] + [w for w in unigram_words if w not in SPECIALS]
    index = {w: i for i, w in enumerate(vocab)}
    size = len(vocab)
    levels: list[LevelTable] = []
    positions: dict[tuple[str, ...], int] = {}
    for n in range(1, len(declared) + 1):
        entries = sections[n]
        if n == 1:
            keys = np.array([index[e[0][0]] for e in entries], dtype=np.int64)
        else:
            keys = np.array([positions[e[0][:-1]] * size + index[e[0][-1]] for e in entries], dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        if np.any(np.diff(keys) == 0):
            raise ValueError(f"{path.name}: duplicate {n}-gram")
        probs = np.array([entries[i][1] for i in order], dtype=np.float64)
        bows = np.array([entries[i][2] or 0.0 for i in order], dtype=np.float64)
        has = np.array([entries[i][2] is not None for i in order], dtype=bool)
        if n == 1 and not np.array_equal(keys, np.arange(size)):
            raise ValueError(f"{path.name}: duplicate unigram")
        positions = {entries[i][0]: rank for rank, i in enumerate(order)}
        levels.append(LevelTable(keys, probs, bows, has))
    return BackoffLM(vocab=vocab, levels=levels)
