"""The base model's general-English LM, pruned to mix into a domain LM.

Contract of :func:`prune_general`: from a :class:`TrieLM` keep the ``words`` most probable words
that ``allowed`` accepts (the words the base dictionary can pronounce) plus ``<s>``/``</s>``, then
the ``bigrams`` bigrams among them with the highest joint probability ``p(h) p(w | h)``, then the
``trigrams`` trigrams among them whose context bigram was kept, by ``p(a) p(b | a) p(c | a b)``
(``p(<s>)`` counts as ``p(</s>)``). Kept n-grams keep the base model's conditional probabilities;
unigrams are renormalised over the kept words and every backoff weight is recomputed
(:func:`fit_backoffs`) so that each context's distribution over the kept vocabulary sums to 1.
:func:`general_model` reads the shipped binary LM and prunes it, caching the result per process
and in ``cache_dir`` as the numpy arrays of its :class:`ArrayModel` (keyed by the LM and dictionary
files' size and mtime and the pruning sizes), so a run reads the 3.7M n-grams at most once per
machine and a worker process loads the pruned model in milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Container
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voxtrain_trainer.ml.backoff_lm import LOG10_ZERO
from voxtrain_trainer.ml.encoding import BOS, EOS
from voxtrain_trainer.ml.interpolate import ArrayLevel, ArrayModel, fit_backoffs
from voxtrain_trainer.ml.lexicon import load_base_dictionary
from voxtrain_trainer.ml.trie_lm import TrieLM, read_trie_lm

CACHE_VERSION = 2  # 2: numpy arrays (.npz), loaded without parsing


@dataclass(frozen=True)
class GeneralPruning:
    """How much of the general LM to keep, per order."""

    words: int
    bigrams: int
    trigrams: int

    def to_dict(self) -> dict:
        return asdict(self)


def _top(scores: npt.NDArray[np.float64], candidates: npt.NDArray[np.int64], k: int) -> npt.NDArray[np.int64]:
    """The ``k`` candidates with the highest score (all of them when fewer), in index order."""
    if k <= 0 or not len(candidates):
        return candidates[:0]
    if k < len(candidates):
        candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
    return np.sort(candidates)


def select_ngrams(lm: TrieLM, allowed: Container[str], pruning: GeneralPruning) -> list[npt.NDArray[np.int64]]:
    """Indices of the kept entries of each level of ``lm`` (see module contract)."""
    vocab = lm.vocab
    uni = lm.levels[0].prob
    special = {BOS, EOS}
    candidates = np.array([i for i, w in enumerate(vocab) if w not in special and w in allowed], dtype=np.int64)
    kept_words = _top(uni, candidates, pruning.words)
    ids = {w: i for i, w in enumerate(vocab)}
    keep_context = np.zeros(len(vocab), dtype=bool)
    keep_context[kept_words] = True
    keep_word = keep_context.copy()
    if EOS in ids:
        keep_word[ids[EOS]] = True
    context_weight = uni.copy()
    if BOS in ids:
        keep_context[ids[BOS]] = True
        context_weight[ids[BOS]] = uni[ids[EOS]] if EOS in ids else 0.0
    kept = [np.flatnonzero(keep_word | keep_context)]
    if lm.order < 2:
        return kept
    bigrams = lm.levels[1]
    b_words = bigrams.words.astype(np.int64)
    b_scores = context_weight[b_words[:, 0]] + bigrams.prob
    b_ok = np.flatnonzero(keep_context[b_words[:, 0]] & keep_word[b_words[:, 1]])
    kept.append(_top(b_scores, b_ok, pruning.bigrams))
    if lm.order < 3:
        return kept
    size = len(vocab)
    b_keys = b_words[kept[1], 0] * size + b_words[kept[1], 1]  # the trie lists bigrams by (w, h): sort by (h, w)
    order = np.argsort(b_keys)
    b_keys, b_rows = b_keys[order], kept[1][order]
    trigrams = lm.levels[2]
    t_words = trigrams.words.astype(np.int64)
    t_keys = t_words[:, 0] * size + t_words[:, 1]
    pos = np.minimum(np.searchsorted(b_keys, t_keys), len(b_keys) - 1) if len(b_keys) else np.zeros(0, np.int64)
    found = (b_keys[pos] == t_keys) if len(b_keys) else np.zeros(len(t_keys), dtype=bool)
    t_ok = np.flatnonzero(found & keep_word[t_words[:, 2]])
    t_scores = np.full(len(t_keys), LOG10_ZERO)
    t_scores[t_ok] = b_scores[b_rows[pos[t_ok]]] + trigrams.prob[t_ok]
    kept.append(_top(t_scores, t_ok, pruning.trigrams))
    return kept


def prune_general(lm: TrieLM, allowed: Container[str], pruning: GeneralPruning) -> ArrayModel:
    """The pruned, renormalised general model (see module contract)."""
    kept = select_ngrams(lm, allowed, pruning)
    uni_rows = kept[0]
    vocab = [lm.vocab[i] for i in uni_rows.tolist()]
    new_id = np.full(len(lm.vocab), -1, dtype=np.int64)
    new_id[uni_rows] = np.arange(len(uni_rows))
    uni = lm.levels[0].prob[uni_rows]
    is_bos = np.array([w == BOS for w in vocab], dtype=bool)
    log_total = float(np.log10(np.sum(10.0 ** uni[~is_bos])))
    entries = [(np.arange(len(vocab), dtype=np.int64)[:, None], np.where(is_bos, LOG10_ZERO, uni - log_total), None)]
    for n in range(2, min(lm.order, 3) + 1):
        level, rows = lm.levels[n - 1], kept[n - 1]
        entries.append((new_id[level.words[rows]], level.prob[rows], None))
    model = ArrayModel.build(vocab, entries)
    fit_backoffs(model)
    return model


def _cache_file(lm_path: Path, dict_path: Path, pruning: GeneralPruning, cache_dir: Path) -> Path:
    stamps = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in (lm_path, dict_path)]
    key = f"{CACHE_VERSION}:{stamps}:{sorted(pruning.to_dict().items())}"
    return cache_dir / f"general-lm-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def _write_cache(model: ArrayModel, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, npt.NDArray[Any]] = {"vocab": np.array(model.vocab, dtype=str)}
    for n, level in enumerate(model.levels, start=1):
        arrays.update({f"keys{n}": level.keys, f"prob{n}": level.prob, f"bow{n}": level.bow, f"has{n}": level.has_bow})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".general-lm-")
    with os.fdopen(fd, "wb") as out:
        np.savez(out, allow_pickle=False, **arrays)
    os.replace(tmp, path)


def _read_cache(path: Path, order: int) -> ArrayModel:
    with np.load(path, allow_pickle=False) as arrays:
        vocab = arrays["vocab"].tolist()
        size = len(vocab)
        levels: list[ArrayLevel] = []
        for n in range(1, order + 1):
            keys = arrays[f"keys{n}"]
            words = keys[:, None] if n == 1 else np.column_stack([levels[-1].words[keys // size], keys % size])
            levels.append(ArrayLevel(keys, words, arrays[f"prob{n}"], arrays[f"bow{n}"], arrays[f"has{n}"]))
    return ArrayModel(vocab, levels)


@lru_cache(maxsize=2)
def general_model(lm_path: Path, dict_path: Path, pruning: GeneralPruning, cache_dir: Path) -> ArrayModel:
    """The pruned general model of the binary LM at ``lm_path``, words of ``dict_path`` only (see module contract)."""
    cached = _cache_file(lm_path, dict_path, pruning, cache_dir)
    order = 3 if pruning.trigrams > 0 else 2 if pruning.bigrams > 0 else 1
    if cached.exists():
        return _read_cache(cached, order)
    lm = read_trie_lm(lm_path)
    lm.levels = lm.levels[:order]
    model = prune_general(lm, load_base_dictionary(dict_path), pruning)
    _write_cache(model, cached)
    return model
