"""The general-English mix on numpy arrays gives the model the dictionary implementation gave.

The reference below is the former implementation (one n-gram at a time over dictionaries, main before
the arrays): the mixed model of a domain LM and the shipped general LM must have the same n-grams, the
same probabilities and backoff weights (to 1e-9 in log10), the same ARPA file up to the last written
digit, and the same tuned weight and held-out perplexities.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from voxtrain_trainer.ml.arpa import parse_arpa, read_arpa, write_arpa
from voxtrain_trainer.ml.backoff_lm import LOG10_ZERO
from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.encoding import BOS, EOS, encode_sentences
from voxtrain_trainer.ml.general_lm import GeneralPruning, general_model
from voxtrain_trainer.ml.interpolate import (
    ArrayModel,
    MixedModel,
    interpolate_with_general,
    read_model,
    to_backoff_lm,
    tune_weight,
    write_model,
)
from voxtrain_trainer.ml.kneser_ney import estimate_kneser_ney

from .medical_domain import TRAINING_TEXT

PRUNING = GeneralPruning(words=2000, bigrams=20_000, trigrams=10_000)


# ------------------------------------------------------------------ the dictionary reference (former code)


def _p(x: float) -> float:
    return 10.0**x if x > LOG10_ZERO else 0.0


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else LOG10_ZERO


def _reference_fit(model: MixedModel) -> None:
    for n in range(1, model.order):
        listed: dict[tuple[str, ...], list[float]] = {}
        for ng, logp in model.probs[n].items():
            sums = listed.setdefault(ng[:-1], [0.0, 0.0])
            sums[0] += _p(logp)
            sums[1] += _p(model.log10_prob(ng[-1], ng[1:-1]))
        bows: dict[tuple[str, ...], float] = {}
        model.bows[n - 1] = bows
        for context, (have, low) in listed.items():
            if 1.0 - low > 1e-9:
                bows[context] = _log10(max(1.0 - have, 1e-12) / (1.0 - low))
                continue
            level = model.probs[n]
            for ng in [ng for ng in level if ng[:-1] == context]:
                level[ng] -= math.log10(have)


def _reference_mix(domain: MixedModel, general: MixedModel, lam: float) -> MixedModel:
    probs = []
    for n in range(1, max(domain.order, general.order) + 1):
        keys = set(domain.probs[n - 1] if n <= domain.order else ()) | set(
            general.probs[n - 1] if n <= general.order else ()
        )
        level = {}
        for ng in keys:
            p = lam * _p(domain.log10_prob(ng[-1], ng[:-1])) + (1.0 - lam) * _p(general.log10_prob(ng[-1], ng[:-1]))
            level[ng] = LOG10_ZERO if ng == (BOS,) else _log10(p)
        probs.append(level)
    out = MixedModel(probs, [{} for _ in probs])
    _reference_fit(out)
    return out


def _reference_perplexities(folds: list[tuple[MixedModel, list[str]]], general: MixedModel) -> dict[float, float]:
    pairs = []
    for domain, sentences in folds:
        for sentence in sentences:
            history: tuple[str, ...] = (BOS,)
            for word in [*sentence.split(), EOS]:
                d, g = _p(domain.log10_prob(word, history)), _p(general.log10_prob(word, history))
                if d > 0.0 or g > 0.0:
                    pairs.append((d, g))
                history = (*history, word)
    grid = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
    scores = {
        lam: 10 ** (-sum(math.log10(max(lam * d + (1 - lam) * g, 1e-99)) for d, g in pairs) / len(pairs))
        for lam in grid
    }
    return scores


# ------------------------------------------------------------------------------------------------- tests


def _sentences() -> list[str]:
    return [line.lower().rstrip(".").replace("-", " ") for line in TRAINING_TEXT.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def general(tmp_path_factory: pytest.TempPathFactory) -> ArrayModel:
    files = base_model_files()
    return general_model(files.lm, files.dictionary, PRUNING, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def general_dicts(general: ArrayModel) -> MixedModel:
    return MixedModel([dict(level) for level in general.probs], [dict(level) for level in general.bows])


def _domain(sentences: list[str], path: Path) -> MixedModel:
    lm, _ = estimate_kneser_ney(encode_sentences(sentences), 3, (0.5, 1.0, 1.5))
    write_arpa(lm, path)
    return read_model(path)


def test_the_mixed_model_equals_the_dictionary_implementation(
    general: ArrayModel, general_dicts: MixedModel, tmp_path: Path
) -> None:
    domain = _domain(_sentences(), tmp_path / "domain.arpa")
    for lam in (0.3, 0.8):
        mixed = interpolate_with_general(domain, general, lam)
        expected = _reference_mix(domain, general_dicts, lam)
        for n in range(3):
            got, want = dict(mixed.probs[n]), expected.probs[n]
            assert got.keys() == want.keys()
            assert max(abs(got[ng] - want[ng]) for ng in want) < 1e-9
            got_bows, want_bows = dict(mixed.bows[n]), expected.bows[n]
            assert got_bows.keys() == want_bows.keys()
            assert max((abs(got_bows[ng] - want_bows[ng]) for ng in want_bows), default=0.0) < 1e-9
        assert len(mixed.bows[0]) > 1000 and len(mixed.probs[2]) > 10_000  # the general model's n-grams are in


def test_the_written_arpa_file_equals_the_dictionary_implementations(
    general: ArrayModel, general_dicts: MixedModel, tmp_path: Path
) -> None:
    domain = _domain(_sentences(), tmp_path / "domain.arpa")
    counts = write_model(interpolate_with_general(domain, general, 0.5), tmp_path / "new.arpa")
    write_model(_reference_mix(domain, general_dicts, 0.5), tmp_path / "reference.arpa")
    new, reference = parse_arpa(tmp_path / "new.arpa"), parse_arpa(tmp_path / "reference.arpa")
    assert counts == [len(reference[n]) for n in (1, 2, 3)]
    for n in (1, 2, 3):
        assert [words for words, _, _ in new[n]] == [words for words, _, _ in reference[n]]  # same, same order
        for (_, p, b), (_, p_ref, b_ref) in zip(new[n], reference[n], strict=True):
            assert abs(p - p_ref) <= 1.01e-6 and (b is None) == (b_ref is None)  # at most the last digit
            assert b is None or b_ref is None or abs(b - b_ref) <= 1.01e-6
    text, reference_text = (tmp_path / "new.arpa").read_text(), (tmp_path / "reference.arpa").read_text()
    differing = sum(a != b for a, b in zip(text.splitlines(), reference_text.splitlines(), strict=True))
    assert differing <= len(text.splitlines()) // 1000  # rounding ties of the 6th digit only


def test_the_mixed_model_in_memory_is_the_model_read_back_from_its_arpa_file(
    general: ArrayModel, tmp_path: Path
) -> None:
    mixed = interpolate_with_general(_domain(_sentences(), tmp_path / "domain.arpa"), general, 0.6)
    write_model(mixed, tmp_path / "mixed.arpa")
    read, direct = read_arpa(tmp_path / "mixed.arpa"), to_backoff_lm(mixed)
    assert direct.vocab == read.vocab and direct.order == read.order == 3
    for a, b in zip(direct.levels, read.levels, strict=True):
        assert np.array_equal(a.keys, b.keys) and np.array_equal(a.has_bow, b.has_bow)
        assert np.array_equal(a.log10_prob, b.log10_prob) and np.array_equal(a.log10_bow, b.log10_bow)


def test_the_tuned_weight_and_held_out_perplexities_are_the_same(
    general: ArrayModel, general_dicts: MixedModel, tmp_path: Path
) -> None:
    sentences = _sentences()
    folds = []
    for fold in range(5):
        held = [s for i, s in enumerate(sentences) if i % 5 == fold]
        rest = [s for i, s in enumerate(sentences) if i % 5 != fold]
        folds.append((_domain(rest, tmp_path / f"fold{fold}.arpa"), held))
    choice = tune_weight(folds, general)
    reference = _reference_perplexities(folds, general_dicts)
    assert choice.lam == min(reference, key=lambda lam: (reference[lam], -lam))
    assert choice.perplexity == pytest.approx(reference, rel=1e-9)
    assert choice.tokens > 100


def test_the_general_model_loads_from_its_array_cache_unchanged(general: ArrayModel, tmp_path: Path) -> None:
    files = base_model_files()
    first = general_model(files.lm, files.dictionary, PRUNING, tmp_path)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npz"]
    general_model.cache_clear()
    again = general_model(files.lm, files.dictionary, PRUNING, tmp_path)
    assert again is not first and again.vocab == first.vocab
    for a, b in zip(again.levels, first.levels, strict=True):
        assert (a.keys == b.keys).all() and (a.words == b.words).all() and (a.prob == b.prob).all()
        assert (a.bow == b.bow).all() and (a.has_bow == b.has_bow).all()
    assert again.log10_prob("the", ("one", "of")) == first.log10_prob("the", ("one", "of")) > -3


def test_a_worker_process_does_not_import_the_web_service() -> None:
    """A spawned worker re-runs the entry script, which imports ``voxtrain_trainer.main``."""
    probe = "import sys, voxtrain_trainer.main; print(sorted({'fastapi', 'aiokafka', 'asyncpg'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_model_listing_an_ngram_without_its_context_is_refused() -> None:
    model = MixedModel([{("a",): -0.3, ("b",): -0.3}, {("c", "a"): -0.1}], [{}, {}])  # "c" is not a unigram
    with pytest.raises(ValueError, match="context is not listed"):
        ArrayModel.from_mixed(model, ["a", "b", "c"])
