"""Reading PocketSphinx's trie binary LM: the same numbers PocketSphinx scores with."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pocketsphinx
import pytest

from voxtrain_trainer.ml.arpa import parse_arpa, write_arpa
from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.encoding import encode_sentences
from voxtrain_trainer.ml.general_lm import GeneralPruning, general_model, prune_general
from voxtrain_trainer.ml.interpolate import MixedModel
from voxtrain_trainer.ml.kneser_ney import estimate_kneser_ney
from voxtrain_trainer.ml.lexicon import load_base_dictionary
from voxtrain_trainer.ml.trie_lm import LOGMATH_TO_LOG10, TrieLM, read_trie_lm

from .medical_domain import TRAINING_TEXT

QUANTIZATION = 1e-4  # PocketSphinx scores are integers in base-1.0001 logs: 1 unit = 4.3e-5 log10


@pytest.fixture(scope="module")
def shipped() -> TrieLM:
    return read_trie_lm(base_model_files().lm)


@pytest.fixture(scope="module")
def sphinx() -> pocketsphinx.NGramModel:
    return pocketsphinx.NGramModel.readfile(str(base_model_files().lm))


def _sphinx_log10(model: pocketsphinx.NGramModel, words: list[str]) -> float:
    """PocketSphinx's own score of ``words[-1]`` after ``words[:-1]`` (its API wants newest first)."""
    return float(model.prob(words[::-1])) * LOGMATH_TO_LOG10


def test_the_shipped_model_has_its_documented_size(shipped: TrieLM) -> None:
    counts = shipped.counts()
    assert shipped.order == 3 and counts[0] == 72_547 == len(shipped.vocab)
    # the header says 2 051 547 bigrams; 6 records are counted but never linked (why sphinx_lm_convert aborts)
    assert 2_051_500 < counts[1] <= 2_051_547 and counts[2] == 1_669_625
    assert {"<s>", "</s>", "the", "aircraft"} <= set(shipped.vocab)


def test_listed_ngrams_score_as_pocketsphinx_scores_them(shipped: TrieLM, sphinx: pocketsphinx.NGramModel) -> None:
    rng = random.Random(13)
    for level in shipped.levels:
        rows = rng.sample(range(len(level.prob)), 400)
        for row in rows:
            words = [shipped.vocab[i] for i in level.words[row]]
            assert level.prob[row] == pytest.approx(_sphinx_log10(sphinx, words), abs=QUANTIZATION), words


class _Scorer:
    """ARPA backoff scoring over a :class:`TrieLM`'s arrays (sorted integer keys per order)."""

    def __init__(self, lm: TrieLM) -> None:
        self.lm = lm
        self.size = len(lm.vocab)
        self.keys, self.rows = [], []
        for level in lm.levels:
            key = np.zeros(len(level.prob), dtype=np.int64)
            for column in range(level.words.shape[1]):
                key = key * self.size + level.words[:, column]
            order = np.argsort(key)
            self.keys.append(key[order])
            self.rows.append(order)

    def find(self, ids: tuple[int, ...]) -> int | None:
        key = 0
        for i in ids:
            key = key * self.size + i
        keys = self.keys[len(ids) - 1]
        at = int(np.searchsorted(keys, key))
        return int(self.rows[len(ids) - 1][at]) if at < len(keys) and keys[at] == key else None

    def log10(self, ids: tuple[int, ...]) -> float:
        row = self.find(ids)
        if row is not None:
            return float(self.lm.levels[len(ids) - 1].prob[row])
        context = self.find(ids[:-1])
        bows = self.lm.levels[len(ids) - 2].bow
        assert bows is not None
        return (float(bows[context]) if context is not None else 0.0) + self.log10(ids[1:])


def test_unlisted_ngrams_back_off_as_pocketsphinx_does(shipped: TrieLM, sphinx: pocketsphinx.NGramModel) -> None:
    scorer = _Scorer(shipped)
    rng = random.Random(7)
    common = np.argsort(-shipped.levels[0].prob)[:3000].tolist()
    backed_off = 0
    for _ in range(300):
        ids = tuple(rng.choice(common) for _ in range(3))
        words = [shipped.vocab[i] for i in ids]
        backed_off += scorer.find(ids) is None
        assert scorer.log10(ids) == pytest.approx(_sphinx_log10(sphinx, words), abs=3 * QUANTIZATION), words
    assert backed_off > 100


@pytest.fixture(scope="module")
def small_arpa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lm, _ = estimate_kneser_ney(encode_sentences(TRAINING_TEXT.splitlines()), 3, (0.5, 1.0, 1.5))
    path = tmp_path_factory.mktemp("small") / "small.arpa"
    write_arpa(lm, path)
    return path


def _arpa_entries(path: Path) -> dict[tuple[str, ...], tuple[float, float | None]]:
    return {words: (p, b) for level in parse_arpa(path).values() for words, p, b in level}


def _read_entries(lm: TrieLM) -> dict[tuple[str, ...], tuple[float, float | None]]:
    out: dict[tuple[str, ...], tuple[float, float | None]] = {}
    for level in lm.levels:
        for row, ids in enumerate(level.words.tolist()):
            bow = None if level.bow is None else float(level.bow[row])
            out[tuple(lm.vocab[i] for i in ids)] = (float(level.prob[row]), bow)
    return out


@pytest.mark.skipif(shutil.which("sphinx_lm_convert") is None, reason="sphinxbase-utils is not installed")
def test_a_model_written_by_sphinx_lm_convert_reads_back_as_its_arpa_file(small_arpa: Path) -> None:
    binary = small_arpa.with_suffix(".lm.bin")
    subprocess.run(["sphinx_lm_convert", "-i", str(small_arpa), "-o", str(binary)], check=True, capture_output=True)
    expected, got = _arpa_entries(small_arpa), _read_entries(read_trie_lm(binary))
    assert len(expected) > 400
    assert set(got) == set(expected)
    for words, (p, bow) in expected.items():
        if p > -98:
            assert got[words][0] == pytest.approx(p, abs=QUANTIZATION), words
        if len(words) < 3:
            assert got[words][1] == pytest.approx(bow or 0.0, abs=QUANTIZATION), words


def test_a_file_that_is_not_a_trie_lm_is_refused(small_arpa: Path) -> None:
    with pytest.raises(ValueError, match="not a PocketSphinx trie binary LM"):
        read_trie_lm(small_arpa)


def _total(model: MixedModel, history: tuple[str, ...]) -> float:
    return sum(10 ** model.log10_prob(ng[0], history) for ng in model.probs[0] if ng[0] != "<s>")


def test_the_pruned_general_model_keeps_the_commonest_ngrams_and_sums_to_one(shipped: TrieLM) -> None:
    dictionary = load_base_dictionary(base_model_files().dictionary)
    model = prune_general(shipped, dictionary, GeneralPruning(words=2000, bigrams=20_000, trigrams=10_000))
    assert [len(level) for level in model.probs] == [2002, 20_000, 10_000]
    assert {("the",), ("of", "the"), ("one", "of", "the")} <= {ng for level in model.probs for ng in level}
    assert all(w in dictionary for (w,) in model.probs[0] if w not in ("<s>", "</s>"))
    rng = random.Random(3)
    contexts = rng.sample([ng[:-1] for ng in model.probs[2]], 5) + rng.sample([ng[:-1] for ng in model.probs[1]], 5)
    for history in [(), ("<s>",), *contexts]:
        assert _total(model, history) == pytest.approx(1.0, abs=1e-9), history
    assert model.log10_prob("the", ("one", "of")) > model.log10_prob("a", ("one", "of"))


def test_the_general_model_is_cached_on_disk(tmp_path: Path) -> None:
    files = base_model_files()
    pruning = GeneralPruning(words=500, bigrams=3000, trigrams=1000)
    first = general_model(files.lm, files.dictionary, pruning, tmp_path)
    cached = list(tmp_path.glob("general-lm-*"))
    assert len(cached) == 1
    general_model.cache_clear()
    again = general_model(files.lm, files.dictionary, pruning, tmp_path)
    assert again.probs == first.probs and again is not first
    for n in (0, 1):
        assert {k: v for k, v in again.bows[n].items() if v} == {k: v for k, v in first.bows[n].items() if v}
