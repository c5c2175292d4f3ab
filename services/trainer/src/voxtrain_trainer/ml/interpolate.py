"""Mix general English into a domain LM: static linear interpolation of two backoff models.

Contract of :func:`interpolate_with_general`: the result is an ARPA backoff model over the union
of both vocabularies whose listed n-grams are the union of both models' n-grams, each with
probability ``lam * p_domain(w | h) + (1 - lam) * p_general(w | h)`` (each model scoring with its
own backoff; a model's probability of a word it lacks is 0). Backoff weights are then recomputed
(:func:`fit_backoffs`) so that every context's distribution over the whole vocabulary sums to 1
-- SRILM's ``-mix-lm`` static mixing does the same; n-grams neither model lists get the backed-off
mixture, not the exact one. ``general`` is e.g. the base model's LM pruned to its commonest words
and n-grams (:mod:`voxtrain_trainer.ml.general_lm`) so the mixed model decodes in real time.
:func:`tune_weight` picks ``lam`` from a grid by perplexity of held-out sentences under the exact
mixture.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from voxtrain_trainer.ml.arpa import parse_arpa
from voxtrain_trainer.ml.backoff_lm import LOG10_ZERO, BackoffLM, LevelTable
from voxtrain_trainer.ml.encoding import BOS, EOS, SPECIALS

Ngram = tuple[str, ...]
LAMBDA_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)


@dataclass
class MixedModel:
    """An n-gram model as ``{ngram: log10 p}`` and ``{context: log10 bow}`` per order."""

    probs: list[dict[Ngram, float]]
    bows: list[dict[Ngram, float]]

    @property
    def order(self) -> int:
        return len(self.probs)

    def log10_prob(self, word: str, history: Ngram) -> float:
        """ARPA backoff probability of ``word`` after ``history`` (most recent word last)."""
        history = history[-(self.order - 1) :] if self.order > 1 else ()
        penalty = 0.0
        while True:
            n = len(history) + 1
            p = self.probs[n - 1].get((*history, word))
            if p is not None:
                return p + penalty
            if not history:
                return LOG10_ZERO
            penalty += self.bows[n - 2].get(history, 0.0)
            history = history[1:]


def read_model(path: Path) -> MixedModel:
    """Read an ARPA file into dictionaries."""
    sections = parse_arpa(path)
    probs = [{words: p for words, p, _ in sections[n]} for n in sorted(sections)]
    bows = [{words: b for words, _, b in sections[n] if b is not None} for n in sorted(sections)]
    return MixedModel(probs, bows)


def _p(log10p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Linear probabilities of log10 values (0 for ``LOG10_ZERO`` and below)."""
    return np.where(log10p > LOG10_ZERO, np.power(10.0, log10p), 0.0)


def _log10(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """log10 of probabilities (``LOG10_ZERO`` for 0)."""
    return np.where(x > 0, np.log10(np.maximum(x, 1e-300)), LOG10_ZERO)


def _lookup(keys: npt.NDArray[np.int64], wanted: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Row of each wanted key in the sorted ``keys`` (-1 when absent or when the wanted key is negative)."""
    if not keys.size:
        return np.full(len(wanted), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return np.where((keys[pos] == wanted) & (wanted >= 0), pos, -1).astype(np.int64)


@dataclass
class ArrayLevel:
    """One order of an :class:`ArrayModel`: entries sorted by ``keys`` (see there)."""

    keys: npt.NDArray[np.int64]
    words: npt.NDArray[np.int64]  # (entries, n) word ids, oldest first
    prob: npt.NDArray[np.float64]
    bow: npt.NDArray[np.float64]  # 0 where the entry has none
    has_bow: npt.NDArray[np.bool_]


def _find(levels: Sequence[ArrayLevel], size: int, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Row of each n-gram (a row of word ids, ``n`` = columns) in level ``n`` of ``levels``; -1 when not listed."""
    rows = _lookup(levels[0].keys, ids[:, 0])
    for k in range(1, ids.shape[1]):
        wanted = np.where((rows >= 0) & (ids[:, k] >= 0), rows * size + ids[:, k], -1)
        rows = _lookup(levels[k].keys, wanted)
    return rows


class _View(Mapping[Ngram, float]):
    """A read-only ``{ngram: value}`` view of one level of an :class:`ArrayModel` (entries where ``mask``)."""

    def __init__(
        self, model: ArrayModel, n: int, values: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_] | None
    ) -> None:
        self._model, self._n, self._values, self._mask = model, n, values, mask

    def _row(self, ngram: object) -> int:
        if not isinstance(ngram, tuple) or len(ngram) != self._n:
            return -1
        ids = np.array([[self._model.index.get(w, -1) for w in ngram]], dtype=np.int64)
        row = int(_find(self._model.levels, self._model.vocab_size, ids)[0])
        return row if row >= 0 and (self._mask is None or self._mask[row]) else -1

    def __getitem__(self, ngram: Ngram) -> float:
        row = self._row(ngram)
        if row < 0:
            raise KeyError(ngram)
        return float(self._values[row])

    def __contains__(self, ngram: object) -> bool:
        return self._row(ngram) >= 0

    def __iter__(self) -> Iterator[Ngram]:
        vocab = self._model.vocab
        words = self._model.levels[self._n - 1].words
        rows = range(len(words)) if self._mask is None else np.flatnonzero(self._mask).tolist()
        return (tuple(vocab[i] for i in words[row]) for row in rows)

    def __len__(self) -> int:
        return len(self._values) if self._mask is None else int(np.count_nonzero(self._mask))


class ArrayModel:
    """The same model as :class:`MixedModel`, held in sorted numpy arrays: what a large model (the general LM,
    a mixture with it) is mixed, fitted and written as, thousands of n-grams at a time.

    Level 1 has key = word id; level ``n >= 2`` has key = (row of its first ``n - 1`` words in level
    ``n - 1``) * ``vocab_size`` + last word id, so every listed n-gram's context must be listed (as in
    ARPA). Backoff weights belong to the entries they are the context of (``has_bow``).
    """

    def __init__(self, vocab: list[str], levels: list[ArrayLevel]) -> None:
        self.vocab = vocab
        self.levels = levels
        self.index = {w: i for i, w in enumerate(vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def order(self) -> int:
        return len(self.levels)

    @property
    def probs(self) -> list[_View]:
        """``{ngram: log10 p}`` per order (views, as :attr:`MixedModel.probs`)."""
        return [_View(self, n, level.prob, None) for n, level in enumerate(self.levels, start=1)]

    @property
    def bows(self) -> list[_View]:
        """``{context: log10 bow}`` per order (views, as :attr:`MixedModel.bows`)."""
        return [_View(self, n, level.bow, level.has_bow) for n, level in enumerate(self.levels, start=1)]

    @classmethod
    def build(
        cls,
        vocab: list[str],
        entries: Sequence[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64] | None]],
    ) -> ArrayModel:
        """The model of ``(word ids (n-grams x n), log10 probs, log10 bows or None)`` per order, in any row order.

        Raises ``ValueError`` for an n-gram listed twice or whose context is not listed."""
        levels: list[ArrayLevel] = []
        for n, (ids, prob, bow) in enumerate(entries, start=1):
            ids = ids.reshape(len(ids), n).astype(np.int64)
            if n == 1:
                keys = ids[:, 0].copy()
            else:
                prefix = _find(levels, len(vocab), ids[:, :-1])
                if np.any(prefix < 0):
                    raise ValueError(f"a listed {n}-gram's context is not listed")
                keys = prefix * len(vocab) + ids[:, -1]
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
            if np.any(np.diff(keys) == 0):
                raise ValueError(f"a {n}-gram is listed twice")
            bows = np.full(len(keys), math.nan) if bow is None else np.asarray(bow, dtype=np.float64)[order]
            has = ~np.isnan(bows)
            prob = np.asarray(prob, dtype=np.float64)[order]
            levels.append(ArrayLevel(keys, ids[order], prob, np.where(has, bows, 0.0), has))
        return cls(vocab, levels)

    @classmethod
    def from_mixed(cls, model: MixedModel, vocab: list[str] | None = None) -> ArrayModel:
        """The array form of ``model`` over ``vocab`` (default: the model's own words, in its unigram order)."""
        vocab = vocab if vocab is not None else [ng[0] for ng in model.probs[0]]
        index = {w: i for i, w in enumerate(vocab)}
        entries = []
        for n, level in enumerate(model.probs, start=1):
            bows = model.bows[n - 1] if n - 1 < len(model.bows) else {}
            ids = np.array([[index[w] for w in ng] for ng in level], dtype=np.int64).reshape(len(level), n)
            prob = np.fromiter(level.values(), dtype=np.float64, count=len(level))
            bow = np.array([bows.get(ng, math.nan) for ng in level], dtype=np.float64)
            entries.append((ids, prob, bow))
        return cls.build(vocab, entries)

    def over(self, vocab: list[str]) -> ArrayModel:
        """The same model with word ids of ``vocab`` (which holds every word of this model)."""
        index = {w: i for i, w in enumerate(vocab)}
        ids = np.array([index[w] for w in self.vocab], dtype=np.int64)
        return ArrayModel.build(
            vocab, [(ids[lv.words], lv.prob, np.where(lv.has_bow, lv.bow, math.nan)) for lv in self.levels]
        )

    def with_vocab(self, vocab: list[str]) -> ArrayModel:
        """The same model keyed over ``vocab``, which starts with this model's vocabulary."""
        if vocab[: self.vocab_size] != self.vocab:
            raise ValueError("the new vocabulary must start with the model's own")
        old, new = self.vocab_size, len(vocab)
        rekeyed = [lv.keys if n == 0 else (lv.keys // old) * new + lv.keys % old for n, lv in enumerate(self.levels)]
        levels = [
            ArrayLevel(k, lv.words, lv.prob, lv.bow, lv.has_bow) for k, lv in zip(rekeyed, self.levels, strict=True)
        ]
        return ArrayModel(vocab, levels)

    def log10_probs(self, words: npt.NDArray[np.int64], histories: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """:meth:`MixedModel.log10_prob` of many words (ids) after histories of one length (ids, most recent last;
        -1 for a word the model lacks), vectorised."""
        keep = min(histories.shape[1], self.order - 1)
        histories = histories[:, histories.shape[1] - keep :]
        out = np.full(len(words), LOG10_ZERO)
        penalty = np.zeros(len(words))
        pending = np.flatnonzero(_lookup(self.levels[0].keys, words) >= 0)  # an unknown word: LOG10_ZERO
        for start in range(keep + 1):
            history = histories[pending, start:]
            rows = _find(self.levels, self.vocab_size, np.column_stack([history, words[pending]]))
            hit = rows >= 0
            out[pending[hit]] = self.levels[keep - start].prob[rows[hit]] + penalty[pending[hit]]
            pending, history = pending[~hit], history[~hit]
            if not pending.size or start == keep:
                break
            context = _find(self.levels, self.vocab_size, history)
            listed = context >= 0
            penalty[pending[listed]] += self.levels[keep - start - 1].bow[context[listed]]
        return out

    def log10_probs_of(self, queries: Sequence[tuple[str, Ngram]]) -> npt.NDArray[np.float64]:
        """:meth:`MixedModel.log10_prob` of each ``(word, history)``, vectorised per history length."""
        out = np.full(len(queries), LOG10_ZERO)
        groups: dict[int, list[int]] = {}
        for i, (_, history) in enumerate(queries):
            groups.setdefault(min(len(history), self.order - 1), []).append(i)
        for keep, rows in groups.items():
            words = np.array([self.index.get(queries[i][0], -1) for i in rows], dtype=np.int64)
            histories = np.array(
                [[self.index.get(w, -1) for w in queries[i][1][len(queries[i][1]) - keep :]] for i in rows],
                dtype=np.int64,
            ).reshape(len(rows), keep)
            out[rows] = self.log10_probs(words, histories)
        return out

    def log10_prob(self, word: str, history: Ngram) -> float:
        """ARPA backoff probability of ``word`` after ``history`` (most recent word last)."""
        return float(self.log10_probs_of([(word, history)])[0])


def fit_backoffs(model: MixedModel | ArrayModel) -> None:
    """Set every backoff weight so that each context's distribution sums to 1 over the vocabulary.

    For a context ``h`` with listed continuations ``L``: ``bow(h) = (1 - sum_L p(w | h)) /
    (1 - sum_L p(w | h'))`` with ``h'`` = ``h`` without its oldest word. A context whose listed words
    already cover all the lower-order mass has its listed probabilities scaled to sum to 1 instead.
    """
    if isinstance(model, MixedModel):
        arrays = ArrayModel.from_mixed(model)
        fit_backoffs(arrays)
        model.probs = [dict(level) for level in arrays.probs]
        model.bows = [dict(level) for level in arrays.bows]
        return
    size = model.vocab_size
    for n in range(1, model.order):
        contexts, listed = model.levels[n - 1], model.levels[n]
        owner = listed.keys // size
        have_each = _p(listed.prob)
        low_each = _p(model.log10_probs(listed.words[:, -1], listed.words[:, 1:-1]))
        have = np.bincount(owner, weights=have_each, minlength=len(contexts.keys))
        low = np.bincount(owner, weights=low_each, minlength=len(contexts.keys))
        has_listed = np.bincount(owner, minlength=len(contexts.keys)) > 0
        fitted = has_listed & (1.0 - low > 1e-9)
        bow = np.zeros(len(contexts.keys))
        bow[fitted] = _log10(np.maximum(1.0 - have[fitted], 1e-12) / (1.0 - low[fitted]))
        contexts.bow, contexts.has_bow = bow, fitted
        full = (has_listed & ~fitted)[owner]  # every word is listed after these contexts: renormalise them
        listed.prob[full] -= np.log10(have[owner[full]])


def _as_arrays(model: MixedModel | ArrayModel) -> ArrayModel:
    return model if isinstance(model, ArrayModel) else ArrayModel.from_mixed(model)


def interpolate_with_general(
    domain: MixedModel | ArrayModel, general: MixedModel | ArrayModel, lam: float
) -> ArrayModel:
    """The mixed model (see module contract)."""
    if not 0.0 < lam <= 1.0:
        raise ValueError("the domain weight must be in (0, 1]")
    general = _as_arrays(general)
    domain_words = domain.vocab if isinstance(domain, ArrayModel) else [ng[0] for ng in domain.probs[0]]
    vocab = general.vocab + [w for w in domain_words if w not in general.index]
    general = general.with_vocab(vocab)
    domain = ArrayModel.from_mixed(domain, vocab) if isinstance(domain, MixedModel) else domain.over(vocab)
    size, bos = len(vocab), general.index.get(BOS, -1)
    levels: list[ArrayLevel] = []
    for n in range(1, max(domain.order, general.order) + 1):
        ids = np.concatenate([m.levels[n - 1].words for m in (domain, general) if n <= m.order])
        prefix = ids[:, 0] if n == 1 else _find(levels, size, ids[:, :-1])
        if np.any(prefix < 0):
            raise ValueError(f"a listed {n}-gram's context is not listed")
        keys = prefix if n == 1 else prefix * size + ids[:, -1]
        keys, first = np.unique(keys, return_index=True)
        ids = ids[first]
        words, history = ids[:, -1], ids[:, :-1]
        mixed = lam * _p(domain.log10_probs(words, history)) + (1.0 - lam) * _p(general.log10_probs(words, history))
        prob = _log10(mixed)
        if n == 1:
            prob[words == bos] = LOG10_ZERO
        levels.append(ArrayLevel(keys, ids, prob, np.zeros(len(keys)), np.zeros(len(keys), dtype=bool)))
    out = ArrayModel(vocab, levels)
    fit_backoffs(out)
    return out


def _texts(model: ArrayModel) -> Iterator[list[str]]:
    """The space-joined words of every entry, one list per level, in key order."""
    texts = list(model.vocab[i] for i in model.levels[0].keys.tolist())
    yield texts
    vocab = model.vocab
    for n in range(1, model.order):
        level = model.levels[n]
        prefixes = (level.keys // model.vocab_size).tolist()
        texts = [f"{texts[p]} {vocab[w]}" for p, w in zip(prefixes, level.words[:, -1].tolist(), strict=True)]
        yield texts


def _written(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``values`` as read back from ARPA text with 6 decimals (the text's own rounding, not numpy's)."""
    return np.array([float(f"{x:.6f}") for x in values.tolist()], dtype=np.float64)


def to_backoff_lm(model: ArrayModel) -> BackoffLM:
    """The :class:`BackoffLM` that ``read_arpa`` reads from the file :func:`write_model` writes of ``model``
    (same vocabulary order, keys and 6-decimal values), without writing and parsing the text."""
    unigram_words = sorted(model.vocab[i] for i in model.levels[0].keys.tolist())
    vocab = [w for w in SPECIALS if w in model.index] + [w for w in unigram_words if w not in SPECIALS]
    size = len(vocab)
    new_id = np.full(model.vocab_size, -1, dtype=np.int64)
    new_id[[model.index[w] for w in vocab]] = np.arange(size)
    levels: list[LevelTable] = []
    new_row = np.zeros(0, dtype=np.int64)  # row of each entry of the previous level in the new model
    for n, level in enumerate(model.levels, start=1):
        last = new_id[level.words[:, -1]]
        keys = last if n == 1 else new_row[level.keys // model.vocab_size] * size + last
        order = np.argsort(keys, kind="stable")
        new_row = np.empty(len(keys), dtype=np.int64)
        new_row[order] = np.arange(len(keys))
        has = level.has_bow[order]
        bow = np.zeros(len(keys))
        bow[has] = _written(level.bow[order][has])
        levels.append(LevelTable(keys[order], _written(level.prob[order]), bow, has))
    return BackoffLM(vocab=vocab, levels=levels)


def write_model(model: MixedModel | ArrayModel, path: Path) -> list[int]:
    """Write the model as ARPA text (sorted); the n-gram counts per order."""
    if isinstance(model, MixedModel):
        model = ArrayModel.from_mixed(model)
    counts = [len(level.keys) for level in model.levels]
    rank = np.empty(model.vocab_size, dtype=np.int64)
    rank[sorted(range(model.vocab_size), key=model.vocab.__getitem__)] = np.arange(model.vocab_size)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write("\\data\\\n" + "".join(f"ngram {n}={c}\n" for n, c in enumerate(counts, start=1)))
        for n, (level, texts) in enumerate(zip(model.levels, _texts(model), strict=True), start=1):
            out.write(f"\n\\{n}-grams:\n")
            ranks = rank[level.words]
            rows = np.lexsort(tuple(ranks[:, k] for k in reversed(range(n)))).tolist()
            probs, bows, has = level.prob.tolist(), level.bow.tolist(), level.has_bow.tolist()
            out.write(
                "".join(
                    f"{probs[i]:.6f}\t{texts[i]}\t{bows[i]:.6f}\n" if has[i] else f"{probs[i]:.6f}\t{texts[i]}\n"
                    for i in rows
                )
            )
        out.write("\n\\end\\\n")
    return counts


@dataclass(frozen=True)
class WeightChoice:
    """The chosen domain weight and the held-out perplexity at each grid point."""

    lam: float
    perplexity: dict[float, float]
    tokens: int


def tune_weight(
    folds: Sequence[tuple[MixedModel, Sequence[str]]],
    general: MixedModel | ArrayModel,
    grid: Sequence[float] = LAMBDA_GRID,
) -> WeightChoice:
    """Domain weight with the lowest perplexity of held-out sentences under the exact linear mixture.

    ``folds`` pairs each domain model with sentences it did not see (one pair, or the folds of a
    cross-validation, pooled). Words neither model knows are skipped (they cost every weight the same).
    """
    domain_p: list[float] = []
    queries: list[tuple[str, Ngram]] = []
    for domain, sentences in folds:
        for sentence in sentences:
            history: Ngram = (BOS,)
            for word in [*sentence.split(), EOS]:
                domain_p.append(domain.log10_prob(word, history))
                queries.append((word, history))
                history = (*history, word)
    general_p = (
        general.log10_probs_of(queries)
        if isinstance(general, ArrayModel)
        else np.array([general.log10_prob(w, h) for w, h in queries], dtype=np.float64)
    )
    d, g = _p(np.array(domain_p, dtype=np.float64)), _p(general_p)
    known = (d > 0.0) | (g > 0.0)
    d, g = d[known], g[known]
    scores: dict[float, float] = {}
    for lam in grid:
        total = float(np.sum(np.log10(np.maximum(lam * d + (1 - lam) * g, 1e-99))))
        scores[lam] = 10 ** (-total / len(d)) if len(d) else float("inf")
    best = min(grid, key=lambda lam: (scores[lam], -lam))
    return WeightChoice(best, scores, len(d))
