"""Out-of-core Kneser-Ney (DuckDB): same model as the in-memory estimator, known values, pruning,
vocabulary cap, progress, and estimation under an address-space limit the in-memory one cannot meet."""

from __future__ import annotations

import ast
import itertools
import os
import random
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pocketsphinx
import pytest

from tests.support import PUBLIC_KEY
from voxtrain_shared import settings
from voxtrain_trainer.ml.arpa import read_arpa
from voxtrain_trainer.ml.backoff_lm import BackoffLM
from voxtrain_trainer.ml.encoding import encode_sentences, restrict_vocabulary
from voxtrain_trainer.ml.errors import TrainingError
from voxtrain_trainer.ml.kneser_ney import estimate_kneser_ney
from voxtrain_trainer.ml.lm_binary import convert_to_binary
from voxtrain_trainer.ml.lm_external import auto_limits, encoded_sentences, estimate_arpa
from voxtrain_trainer.ml.perplexity import custom_perplexity
from voxtrain_trainer.ml.types import CONVERT_BYTES_PER_NGRAM, WORKER_RESERVE_MB, TrainingSettings

SMALL = ["a b", "a b", "b a"]


def _zipf_corpus(n_sentences: int, vocab: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    weights = [1 / (r + 1) for r in range(vocab)]
    return [" ".join(rng.choices(words, weights, k=rng.randint(1, 12))) for _ in range(n_sentences)]


def _write(path: Path, sentences: list[str]) -> Path:
    path.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
    return path


def _entries(lm: BackoffLM) -> dict[str, tuple[float, float | None]]:
    out: dict[str, tuple[float, float | None]] = {}
    for n, level in enumerate(lm.levels, start=1):
        for text, p, bow, has in zip(
            lm.words_of_level(n), level.log10_prob, level.log10_bow, level.has_bow, strict=True
        ):
            out[text] = (float(p), float(bow) if has else None)
    return out


def _assert_same_model(ours: BackoffLM, reference: BackoffLM, tolerance: float = 1e-6) -> None:
    a, b = _entries(ours), _entries(reference)
    assert a.keys() == b.keys()
    for key, (p, bow) in b.items():
        assert a[key][0] == pytest.approx(p, abs=tolerance), key
        assert (a[key][1] is None) == (bow is None), key
        if bow is not None:
            assert a[key][1] == pytest.approx(bow, abs=tolerance), key


def _assert_sums_to_one(lm: BackoffLM, limit: int = 20) -> None:
    predictable = [w for w in range(lm.vocab_size) if w != lm.bos_id]
    contexts = [[]] + [
        [lm.word_index[w] for w in t.split()] for n in range(1, lm.order) for t in lm.words_of_level(n)[:limit]
    ]
    for context in contexts:
        total = sum(10 ** lm.log10_prob(context, w) for w in predictable)
        assert total == pytest.approx(1.0, abs=1e-4), (context, total)  # ARPA keeps 6 decimals


@pytest.mark.parametrize(
    ("order", "n_sentences", "vocab"), [(1, 300, 50), (2, 400, 200), (3, 600, 800), (4, 500, 300), (6, 400, 2000)]
)
def test_same_model_as_the_in_memory_estimator(tmp_path: Path, order: int, n_sentences: int, vocab: int) -> None:
    sentences = _zipf_corpus(n_sentences, vocab, seed=order)
    corpus = _write(tmp_path / "c.txt", sentences)
    result = estimate_arpa(corpus, tmp_path / "lm.arpa", order, work_dir=tmp_path, keep_model=True)
    reference, discounts = estimate_kneser_ney(encode_sentences(sentences), order)
    assert [(d.d1, d.d2, d.d3_plus, d.count_of_counts, d.fallback) for d in result.discounts] == [
        (d.d1, d.d2, d.d3_plus, d.count_of_counts, d.fallback) for d in discounts
    ]
    assert result.ngram_counts == reference.ngram_counts()
    assert result.words == sum(len(s.split()) for s in sentences) and result.sentences == n_sentences
    _assert_same_model(read_arpa(result.arpa_path), reference)
    assert result.model is not None
    _assert_same_model(result.model, reference, tolerance=1e-9)  # not rounded to the ARPA's 6 decimals


def test_a_vocabulary_past_46341_words_keeps_its_model(tmp_path: Path) -> None:
    # n-gram keys are prefix index * vocabulary size + word: past 46,341 words that product leaves INTEGER
    # (a 25 MB transcript failed "Overflow in multiplication of INT32" before the index was widened)
    words = [f"w{i}" for i in range(47_000)]
    sentences = [" ".join(words[i : i + 10]) for i in range(0, len(words), 10)] + ["w46990 w46991 w46992"] * 3
    result = estimate_arpa(_write(tmp_path / "c.txt", sentences), tmp_path / "lm.arpa", 3, keep_model=True)
    assert result.model is not None and result.model.vocab_size >= 47_000
    assert result.model.ngram_counts() == result.ngram_counts


@pytest.mark.parametrize(("order", "thresholds"), [(1, None), (2, None), (3, None), (4, (0, 1, 1, 2))])
def test_the_scoring_model_scores_like_the_whole_model(tmp_path: Path, order: int, thresholds: tuple | None) -> None:
    # the model kept for scoring holds only what scoring the test sentences reads, so it scores them exactly
    # as the whole model does (same floats), in memory that grows with the sentences, not with the model
    corpus = _write(tmp_path / "c.txt", _zipf_corpus(3000, 400, seed=11))
    test = [*_zipf_corpus(300, 450, seed=12), "w1", "never seen words", "<unk> w2", ""]
    whole = estimate_arpa(corpus, tmp_path / "a.arpa", order, keep_model=True, prune_thresholds=thresholds)
    part = estimate_arpa(corpus, tmp_path / "b.arpa", order, scoring_sentences=test, prune_thresholds=thresholds)
    assert whole.model is not None and part.model is not None
    expected, got = custom_perplexity(whole.model, test), custom_perplexity(part.model, test)
    assert got == expected and expected.oov_words > 0 and expected.perplexity is not None
    assert part.ngram_counts == whole.ngram_counts and part.model.vocab_size == whole.model.vocab_size
    if order > 1:
        assert sum(part.model.ngram_counts()[1:]) < sum(whole.ngram_counts[1:]) / 3


def test_a_cap_on_ngrams_prunes_higher_orders_first_until_the_model_fits(tmp_path: Path) -> None:
    corpus = _write(tmp_path / "c.txt", _zipf_corpus(3000, 400, seed=13))
    whole = estimate_arpa(corpus, tmp_path / "a.arpa", 3)
    total = sum(whole.ngram_counts)
    for cap in (total, total - 1, total // 2, total // 4):
        capped = estimate_arpa(corpus, tmp_path / "b.arpa", 3, max_ngrams=cap)
        assert sum(capped.ngram_counts) <= cap
        assert capped.pruning.thresholds[0] == 0 and capped.pruning.thresholds[2] >= capped.pruning.thresholds[1]
        assert (capped.pruning.thresholds == (0, 0, 0)) == (cap == total)
        lm = read_arpa(capped.arpa_path)
        assert lm.ngram_counts() == capped.ngram_counts
        _assert_sums_to_one(lm, limit=10)
    # the least pruning that fits: one step less does not fit
    half = estimate_arpa(corpus, tmp_path / "c.arpa", 3, max_ngrams=total // 4)
    looser = list(half.pruning.thresholds)
    looser[1 if looser[1] == looser[2] else 2] -= 1
    assert sum(estimate_arpa(corpus, tmp_path / "d.arpa", 3, prune_thresholds=looser).ngram_counts) > total // 4
    with pytest.raises(ValueError, match="max_ngrams"):
        estimate_arpa(corpus, tmp_path / "e.arpa", 3, max_ngrams=0)


def test_a_text_larger_than_the_engine_limit_is_read_in_buffers(tmp_path: Path) -> None:
    # DuckDB's default CSV buffer is one block of the whole file (up to 1 GiB): a 900 MB training text failed
    # "could not allocate block of size 857.9 MiB" under an 817 MiB engine limit; here 72 MB under 64 MB
    corpus = tmp_path / "c.txt"
    with corpus.open("w") as out:
        for _ in range(120):
            out.write(("a b c d e f g h\n" + "b c a d\n" * 3) * 15000)
    assert corpus.stat().st_size > 64 * 2**20  # over the engine's 64 MB (61 MiB)
    result = estimate_arpa(corpus, tmp_path / "lm.arpa", 2, memory_mb=128, work_dir=tmp_path, threads=1)
    assert result.words == 120 * 15000 * 20 and result.ngram_counts == [11, 13]


def test_token_lists_stream_in_like_a_file(tmp_path: Path) -> None:
    sentences = _zipf_corpus(200, 60, seed=5)
    from_file = estimate_arpa(_write(tmp_path / "c.txt", sentences), tmp_path / "a.arpa", 3)
    streamed = estimate_arpa((s.split() for s in sentences), tmp_path / "b.arpa", 3, work_dir=tmp_path)
    assert from_file.arpa_path.read_text() != ""
    _assert_same_model(read_arpa(streamed.arpa_path), read_arpa(from_file.arpa_path))
    assert {p.name for p in tmp_path.iterdir()} == {"c.txt", "a.arpa", "b.arpa"}  # scratch removed


def test_encoded_text_streams_back_as_its_sentences(tmp_path: Path) -> None:
    sentences = ["keep drop keep", "drop", "keep"]
    encoded = restrict_vocabulary(encode_sentences(sentences), {"keep"})
    assert list(encoded_sentences(encoded)) == [["keep", "<unk>", "keep"], ["<unk>"], ["keep"]]
    result = estimate_arpa(encoded_sentences(encoded), tmp_path / "lm.arpa", 2, work_dir=tmp_path)
    reference, _ = estimate_kneser_ney(encoded, 2)
    _assert_same_model(read_arpa(result.arpa_path), reference)


def test_hand_computed_values(tmp_path: Path) -> None:
    # Every count-of-counts has a zero, so the fallback discounts 0.5/1.0/1.5 apply (see
    # test_trainer_kneser_ney for the derivation): p(b) = 7/24, p(<unk>) = 1/8, p(b|a) = 19/48,
    # p(b|<s> a) = 67/96, p(</s>|<s> a) = 19/96, p(a|<s>) = 23/48.
    result = estimate_arpa(_write(tmp_path / "c.txt", SMALL), tmp_path / "lm.arpa", 3)
    lm = read_arpa(result.arpa_path)
    s, a, b, e, unk = (lm.word_index[w] for w in ("<s>", "a", "b", "</s>", "<unk>"))
    assert all(d.fallback for d in result.discounts)
    assert 10 ** lm.log10_prob([], b) == pytest.approx(7 / 24, rel=1e-5)
    assert 10 ** lm.log10_prob([], unk) == pytest.approx(1 / 8, rel=1e-5)
    assert 10 ** lm.log10_prob([a], b) == pytest.approx(19 / 48, rel=1e-5)
    assert 10 ** lm.log10_prob([s, a], b) == pytest.approx(67 / 96, rel=1e-5)
    assert 10 ** lm.log10_prob([s, a], e) == pytest.approx(19 / 96, rel=1e-5)
    assert 10 ** lm.log10_prob([s], a) == pytest.approx(23 / 48, rel=1e-5)


def test_tiny_corpus_falls_back_and_pocketsphinx_loads_it(tmp_path: Path) -> None:
    # KenLM's lmplz throws BadDiscountException on this (kpu/kenlm#424) unless --discount_fallback.
    result = estimate_arpa(_write(tmp_path / "c.txt", ["hello world"]), tmp_path / "lm.arpa", 5)
    assert result.order == 4  # "<s> hello world </s>" is the longest n-gram
    assert all(d.fallback and "count-of-counts" in (d.reason or "") for d in result.discounts)
    _assert_sums_to_one(read_arpa(result.arpa_path))
    model = pocketsphinx.NGramModel.readfile(str(result.arpa_path))
    assert model.size() == 4 and convert_to_binary(result.arpa_path, tmp_path / "lm.bin").stat().st_size > 0


def test_empty_corpus_and_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no sentences"):
        estimate_arpa(_write(tmp_path / "c.txt", ["", "  "]), tmp_path / "lm.arpa", 3)
    with pytest.raises(ValueError, match="prune_thresholds"):
        estimate_arpa(tmp_path / "c.txt", tmp_path / "lm.arpa", 3, prune_thresholds=(0, 1))


def test_a_spill_over_the_disk_limit_fails_with_its_code_and_leaves_nothing(tmp_path: Path) -> None:
    # 1.5M uniformly drawn words: ~1.5M distinct trigrams, more than the engine's 64 MB hold, so it must
    # spill, and 1 MB of spill disk is not enough
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 50_000, size=1_500_000)
    with (tmp_path / "c.txt").open("w") as out:
        for sentence in np.split(ids, np.arange(15, ids.size, 15)):
            out.write(" ".join(f"w{i}" for i in sentence.tolist()) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(TrainingError) as refused:
        estimate_arpa(tmp_path / "c.txt", tmp_path / "lm.arpa", 3, memory_mb=64, spill_limit_mb=1, work_dir=work)
    assert refused.value.code == "lm_spill_limit_exceeded" and refused.value.stage == "estimate_lm"
    assert "1 MB of disk" in refused.value.message and "VOXTRAIN_LM_SPILL_LIMIT_MB" in refused.value.message
    assert list(work.iterdir()) == [] and not (tmp_path / "lm.arpa").exists()
    # the same corpus with room to spill estimates
    result = estimate_arpa(
        tmp_path / "c.txt", tmp_path / "lm.arpa", 3, memory_mb=64, spill_limit_mb=2048, work_dir=work
    )
    assert result.ngram_counts[2] > 1_000_000 and list(work.iterdir()) == []


def test_pruning_keeps_histories_and_renormalises(tmp_path: Path) -> None:
    sentences = _zipf_corpus(1500, 400, seed=9)
    corpus = _write(tmp_path / "c.txt", sentences)
    full = estimate_arpa(corpus, tmp_path / "full.arpa", 3)
    pruned = estimate_arpa(corpus, tmp_path / "pruned.arpa", 3, prune_thresholds=(0, 1, 1), keep_model=True)
    report = pruned.pruning
    assert report.pruned and report.ngrams_before == tuple(full.ngram_counts)
    assert report.ngrams_after == tuple(pruned.ngram_counts)
    assert report.ngrams_after[0] == report.ngrams_before[0]
    assert all(a < b for a, b in zip(report.ngrams_after[1:], report.ngrams_before[1:], strict=True))
    # the discounts come from the unpruned counts, as with lmplz --prune
    assert [d.d1 for d in pruned.discounts] == [d.d1 for d in full.discounts]
    lm, kept = read_arpa(pruned.arpa_path), set(_entries(read_arpa(pruned.arpa_path)))
    trigram_counts = Counter(
        tuple(t[i : i + 3]) for s in sentences for t in [["<s>", *s.split(), "</s>"]] for i in range(len(t) - 2)
    )
    for gram in (g for g in kept if len(g.split()) == 3):
        assert trigram_counts[tuple(gram.split())] > 1, gram
    for gram in (g for g in kept if len(g.split()) >= 2):
        words = gram.split()
        assert " ".join(words[:-1]) in kept and " ".join(words[1:]) in kept, gram
    _assert_sums_to_one(lm, limit=40)
    assert pruned.model is not None
    _assert_same_model(pruned.model, lm)
    assert pocketsphinx.NGramModel.readfile(str(pruned.arpa_path)).size() == 3


def test_vocabulary_cap_keeps_the_most_frequent_words(tmp_path: Path) -> None:
    sentences = _zipf_corpus(800, 300, seed=4)
    counts = Counter(w for s in sentences for w in s.split())
    result = estimate_arpa(_write(tmp_path / "c.txt", sentences), tmp_path / "lm.arpa", 3, max_vocabulary=50)
    kept = set(sorted(counts, key=lambda w: (-counts[w], w))[:50])
    assert set(result.vocabulary[3:]) == kept and result.vocabulary[:3] == ["<s>", "</s>", "<unk>"]
    report = result.pruning
    assert (report.vocabulary_before, report.vocabulary_after) == (len(counts) + 3, 53)
    assert report.tokens_mapped_to_unk == sum(c for w, c in counts.items() if w not in kept)
    # the same as the in-memory estimator on the text with the dropped words replaced by <unk>
    capped = [" ".join(w if w in kept else "<unk>" for w in s.split()) for s in sentences]
    reference, _ = estimate_kneser_ney(encode_sentences(capped), 3)
    _assert_same_model(read_arpa(result.arpa_path), reference)


def test_auto_limits_grow_with_the_corpus(tmp_path: Path) -> None:
    assert auto_limits(1_000_000, 3) == (None, (0, 0, 0))
    vocab, thresholds = auto_limits(1_000_000_000, 3)
    assert vocab is not None and thresholds[0] == 0 and thresholds[2] >= thresholds[1] >= 1
    # a small corpus is left whole; an explicit setting wins over the automatic one
    corpus = _write(tmp_path / "c.txt", _zipf_corpus(300, 80, seed=6))
    automatic = estimate_arpa(corpus, tmp_path / "a.arpa", 3, automatic_limits=True)
    assert not automatic.pruning.pruned and automatic.pruning.thresholds == (0, 0, 0)
    explicit = estimate_arpa(corpus, tmp_path / "b.arpa", 3, automatic_limits=True, max_vocabulary=10)
    assert explicit.pruning.vocabulary_after == 13 and explicit.pruning.max_vocabulary == 10


def test_progress_is_monotone_and_reaches_one(tmp_path: Path) -> None:
    seen: list[float] = []
    estimate_arpa(
        _write(tmp_path / "c.txt", _zipf_corpus(2000, 500, seed=2)),
        tmp_path / "lm.arpa",
        3,
        progress=seen.append,
        prune_thresholds=(0, 1, 1),
    )
    assert seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) > 10
    assert all(b > a for a, b in itertools.pairwise(seen))


def test_an_error_in_progress_stops_the_estimation(tmp_path: Path) -> None:
    class Cancelled(Exception):
        pass

    def cancel(fraction: float) -> None:
        if fraction > 0.3:
            raise Cancelled

    with pytest.raises(Cancelled):
        estimate_arpa(
            _write(tmp_path / "c.txt", _zipf_corpus(500, 100, seed=1)),
            tmp_path / "lm.arpa",
            3,
            progress=cancel,
            work_dir=tmp_path,
        )
    assert not (tmp_path / "lm.arpa").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c.txt"]


_CHILD = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from voxtrain_trainer.ml.encoding import encode_sentences
    from voxtrain_trainer.ml.kneser_ney import estimate_kneser_ney
    from voxtrain_trainer.ml.lm_external import estimate_arpa
    # the same headroom over the same start-up for both estimators: the address space taken at start
    # (interpreter, numpy, DuckDB's library) differs between machines, the headroom does not
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    limit = int(status["VmSize"].split()[0]) * 1024 + int(sys.argv[3]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
    if sys.argv[4] == "external":
        # a small budget and one thread: DuckDB reserves address space per thread, and the cap counts it all
        result = estimate_arpa(corpus, out, 3, memory_mb=256, work_dir=out.parent, threads=1)
        print(result.ngram_counts)
    else:
        with corpus.open() as lines:
            estimate_kneser_ney(encode_sentences(lines), 3)
    """
)


def test_estimates_under_an_address_space_limit_the_in_memory_estimator_exceeds(tmp_path: Path) -> None:
    # 8M Zipfian words: the in-memory estimator needs ~1,050 MB of address space above start-up for
    # them, the external one ~370-420 MB (measured); the limit is 650 MB above start-up. glibc's
    # per-thread arenas are capped so that reserved-but-unused address space does not eat the budget.
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(200_000)])
    weights = 1.0 / np.arange(1, vocab.size + 1) ** 1.05
    ids = rng.choice(vocab.size, size=8_000_000, p=weights / weights.sum())
    bounds = np.cumsum(rng.integers(1, 24, size=800_000))
    with (tmp_path / "c.txt").open("w") as out:
        for sentence in np.split(ids, bounds[bounds < ids.size]):
            out.write(" ".join(vocab[sentence].tolist()) + "\n")
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}

    def child(mode: str) -> subprocess.CompletedProcess[str]:
        args = [sys.executable, "-c", _CHILD, str(tmp_path / "c.txt"), str(tmp_path / "lm.arpa"), "650", mode]
        return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)

    in_memory = child("in_memory")
    assert in_memory.returncode != 0 and "MemoryError" in in_memory.stderr, in_memory.stderr[-2000:]
    external = child("external")
    assert external.returncode == 0, external.stderr[-2000:]
    counts = ast.literal_eval(external.stdout.strip().splitlines()[-1])
    with (tmp_path / "lm.arpa").open() as arpa:
        header = [next(arpa) for _ in range(4)]
    assert header == ["\\data\\\n"] + [f"ngram {n}={c}\n" for n, c in enumerate(counts, start=1)]
    assert counts[2] > 2_000_000 and (tmp_path / "lm.arpa").read_bytes().endswith(b"\n\\end\\\n")


_TRAINER_ENV = {
    "VOXTRAIN_POSTGRES__DSN": "postgresql://u:p@h/db",
    "VOXTRAIN_AUTH__PUBLIC_KEY": PUBLIC_KEY,
    "VOXTRAIN_MINIO__ACCESS_KEY": "a",
    "VOXTRAIN_MINIO__SECRET_KEY": "b",
}


def test_estimation_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _TRAINER_ENV.items():
        monkeypatch.setenv(key, value)
    defaults = settings.load(settings.TrainerSettings)
    assert (defaults.lm_memory_mb, defaults.lm_max_vocabulary, defaults.lm_prune_thresholds) == (None, None, None)
    assert (defaults.worker_memory_mb, defaults.lm_max_ngrams, defaults.lm_spill_limit_mb) == (2048, None, 32768)
    monkeypatch.setenv("VOXTRAIN_LM_MEMORY_MB", "1024")
    monkeypatch.setenv("VOXTRAIN_LM_SPILL_LIMIT_MB", "4096")
    monkeypatch.setenv("VOXTRAIN_LM_MAX_VOCABULARY", "100000")
    monkeypatch.setenv("VOXTRAIN_LM_PRUNE_THRESHOLDS", "[0, 1, 2]")
    configured = settings.load(settings.TrainerSettings)
    assert (configured.lm_memory_mb, configured.lm_max_vocabulary, configured.lm_spill_limit_mb) == (1024, 100000, 4096)
    assert configured.lm_prune_thresholds == (0, 1, 2)
    monkeypatch.setenv("VOXTRAIN_LM_PRUNE_THRESHOLDS", "[0, 1]")
    with pytest.raises(SystemExit, match="one count per order"):
        settings.load(settings.TrainerSettings)
    with pytest.raises(ValueError, match="lm_prune_thresholds"):
        TrainingSettings(order=3, lm_prune_thresholds=(0, -1, 1))
    monkeypatch.setenv("VOXTRAIN_LM_PRUNE_THRESHOLDS", "[0, 1, 2]")
    monkeypatch.setenv("VOXTRAIN_WORKER_MEMORY_MB", "1000")
    with pytest.raises(SystemExit, match="cannot exceed worker_memory_mb"):
        settings.load(settings.TrainerSettings)


def test_the_worker_budget_gives_the_estimator_its_share_and_caps_the_model() -> None:
    default = TrainingSettings()
    assert (default.worker_memory_mb, default.estimator_memory_mb) == (2048, 2048 - WORKER_RESERVE_MB)
    # the binary conversion's n-grams fit in what the rest of the worker leaves of the budget
    assert default.max_model_ngrams * CONVERT_BYTES_PER_NGRAM <= (2048 - WORKER_RESERVE_MB) * 2**20
    assert default.max_model_ngrams > 20_000_000
    bigger = TrainingSettings(worker_memory_mb=4096)
    assert bigger.estimator_memory_mb == 4096 - WORKER_RESERVE_MB and bigger.max_model_ngrams > default.max_model_ngrams
    explicit = TrainingSettings(worker_memory_mb=4096, lm_memory_mb=1024, lm_max_ngrams=1000)
    assert (explicit.estimator_memory_mb, explicit.max_model_ngrams) == (1024, 1000)
    assert explicit.to_dict()["estimator_memory_mb"] == 1024
    with pytest.raises(ValueError, match="worker_memory_mb"):
        TrainingSettings(worker_memory_mb=2048, lm_memory_mb=3000)
    with pytest.raises(ValueError, match="lm_max_ngrams"):
        TrainingSettings(lm_max_ngrams=0)
