"""A G2P better fitted to the acoustic model's dictionary: espeak-ng phonemes re-mapped by CMUdict.

espeak-ng's phonemes are mapped to CMU phones by a fixed table (:mod:`g2p`), but the two
phone sets draw vowel boundaries differently (espeak's unstressed ``ɪ`` is often CMUdict's ``AH``,
its ``ɑ`` before some consonants CMUdict's ``AO``...). Contract of :func:`learn_g2p`: it speaks
a training sample of base-dictionary words with espeak-ng, aligns the table's phones with the
dictionary's (jiwer), and for every (espeak phoneme, stress) that maps to one CMU phone learns the
dictionary phone it most often stands for before the next phoneme (from ``min_count`` observations on). It measures the
phone error rate (edits / reference phones, against the closest dictionary pronunciation) of the
plain table and of the learned map on held-out dictionary words that training never saw, and
keeps the learned map only if it is lower. Samples are chosen by a hash of the word, so runs are
repeatable.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jiwer

from voxtrain_trainer.ml.g2p import _FLAP, _MARKS, _ipa_for, _map_phoneme, espeak_pronunciations
from voxtrain_trainer.ml.lexicon import load_base_dictionary

Key = tuple[str, int, str]  # espeak phoneme without marks, stress (0 none, 1 primary, 2 secondary), next phoneme
Pron = tuple[str, ...]


@dataclass
class LearnedG2P:
    """Overrides of the espeak -> CMU table and the held-out phone error rates that justify them."""

    overrides: dict[Key, str] = field(default_factory=dict)
    report: dict = field(default_factory=dict)


def _symbols(ipa: str) -> list[Key]:
    raw = [r for r in ipa.replace(" ", "_").split("_") if r.translate(_MARKS)]
    symbols = [r.translate(_MARKS) for r in raw]
    return [
        (symbol, 1 if "ˈ" in r else 2 if "ˌ" in r else 0, symbols[i + 1] if i + 1 < len(symbols) else "#")
        for i, (symbol, r) in enumerate(zip(symbols, raw, strict=True))
    ]


def _expand(ipa: str, overrides: Mapping[Key, str], flap: str) -> list[tuple[str, Key | None]] | None:
    """CMU phones of ``ipa``, each with the key it came from (``None`` when one symbol gave several)."""
    phones: list[tuple[str, Key | None]] = []
    for key in _symbols(ipa):
        if key in overrides:
            phones.append((overrides[key], key))
            continue
        mapped = _map_phoneme(key[0].replace(_FLAP, flap))
        if mapped is None:
            return None
        phones.extend((p, key if len(mapped) == 1 and _FLAP not in key[0] else None) for p in mapped)
    return phones


def pronunciations(ipa: str, overrides: Mapping[Key, str]) -> list[Pron] | None:
    """One pronunciation, or two when the word has a flap (read as T, then D); ``None`` if unmappable."""
    out: list[Pron] = []
    for flap in ("t", "d") if _FLAP in ipa else ("t",):
        phones = _expand(ipa, overrides, flap)
        if phones is None:
            return None
        pron = tuple(p for p, _ in phones)
        if pron and pron not in out:
            out.append(pron)
    return out or None


def _closest(references: Sequence[Pron], hyp: Pron) -> jiwer.WordOutput:
    outs = [jiwer.process_words(" ".join(r), " ".join(hyp)) for r in references]
    return min(outs, key=lambda o: o.substitutions + o.deletions + o.insertions)


def phone_error_rate(ipa: Mapping[str, str], base: Mapping[str, Sequence[Pron]], overrides: Mapping[Key, str]) -> float:
    """Edits / reference phones of the first pronunciation of each word against its closest reference."""
    edits = total = 0
    for word, text in ipa.items():
        prons = pronunciations(text, overrides)
        refs = [r for r in base[word] if r]
        if not refs:
            continue
        if not prons:
            n = len(refs[0])
            edits, total = edits + n, total + n
            continue
        best = _closest(refs, prons[0])
        edits += best.substitutions + best.deletions + best.insertions
        total += best.substitutions + best.deletions + best.hits
    return edits / total if total else 0.0


def _sample(base: Mapping[str, Sequence[Pron]], lo: int, hi: int, limit: int) -> list[str]:
    words = [w for w in base if w.isalpha() and lo <= zlib.crc32(w.encode("utf-8")) % 1000 < hi]
    return sorted(words)[:limit]


def learn_g2p(
    base: Mapping[str, Sequence[Pron]],
    voice: str = "en-us",
    train_words: int = 3000,
    heldout_words: int = 500,
    min_count: int = 8,
) -> LearnedG2P:
    """Learn overrides from the base dictionary; keep them if they lower held-out PER (see contract)."""
    train = _sample(base, 0, 300, train_words)
    heldout = _sample(base, 990, 1000, heldout_words)
    ipa = _ipa_for(train + heldout, voice)
    counts: dict[Key, Counter[str]] = {}
    for word in train:
        if word not in ipa:
            continue
        phones = _expand(ipa[word], {}, "t")
        if not phones:
            continue
        best = _closest(base[word], tuple(p for p, _ in phones))
        ref = best.references[0]
        for chunk in best.alignments[0]:
            if chunk.type not in ("equal", "substitute"):
                continue
            for i in range(chunk.ref_end_idx - chunk.ref_start_idx):
                key = phones[chunk.hyp_start_idx + i][1]
                if key is not None:
                    counts.setdefault(key, Counter())[ref[chunk.ref_start_idx + i]] += 1
    overrides: dict[Key, str] = {}
    for key, seen in counts.items():
        phone, n = seen.most_common(1)[0]
        current = _map_phoneme(key[0])
        if n >= min_count and current != [phone]:
            overrides[key] = phone
    held = {w: ipa[w] for w in heldout if w in ipa}
    before = phone_error_rate(held, base, {})
    after = phone_error_rate(held, base, overrides)
    kept = after < before
    return LearnedG2P(
        overrides if kept else {},
        {
            "heldout_words": len(held),
            "train_words": len(train),
            "phone_error_rate_table": round(before, 4),
            "phone_error_rate_learned": round(after, 4),
            "learned_overrides": len(overrides),
            "used": "learned" if kept else "table",
            "phone_error_rate": round(min(before, after), 4),
        },
    )


@lru_cache(maxsize=2)
def _learned_for(dictionary: str, voice: str) -> LearnedG2P:
    return learn_g2p(load_base_dictionary(Path(dictionary)), voice)


def learned_g2p(dictionary: Path, voice: str) -> LearnedG2P:
    """:func:`learn_g2p` on the dictionary at ``dictionary``, once per process."""
    return _learned_for(str(dictionary), voice)


def learned_pronunciations(words: Iterable[str], voice: str, overrides: Mapping[Key, str]) -> dict[str, list[Pron]]:
    """Like :func:`g2p.espeak_pronunciations`, with the learned overrides applied."""
    return espeak_pronunciations(words, voice, lambda ipa: pronunciations(ipa, overrides))
