"""Benchmark: language-model estimation throughput and peak memory (and KenLM's lmplz if present).

    uv run python bench/trainer/bench_lm.py [--quick] [--order 3]

Synthetic but Zipfian corpora (1M and 10M words; --quick: 1M only) are written to a temporary
directory as one sentence per line. Each measurement runs in a fresh child process, so the peak
RSS it reports (ru_maxrss) is that of the estimation alone: read text -> normalised sentences ->
integer encoding -> modified Kneser-Ney -> ARPA file. When KenLM's ``lmplz`` is on PATH it runs
on the same files in the same run and the ratio is printed; otherwise that is said. Results are
also written to bench/results/trainer_lm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "trainer_lm.json"


def make_corpus(path: Path, words: int, vocab: int = 250_000, seed: int = 1) -> None:
    """Write ~``words`` words of Zipf(1.05)-distributed text, sentence lengths 1..30."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(3, 11, size=vocab)
    names = ["".join(rng.choice(letters, size=n)) for n in lengths]
    weights = 1.0 / np.arange(1, vocab + 1) ** 1.05
    cdf = np.cumsum(weights / weights.sum())
    ids = np.minimum(np.searchsorted(cdf, rng.random(words)), vocab - 1)
    sentence_lengths = np.clip(rng.poisson(12, size=words // 4), 1, 30)
    bounds = np.cumsum(sentence_lengths)
    bounds = bounds[bounds < words]
    with path.open("w", encoding="utf-8") as out:
        for sentence in np.split(ids, bounds):
            out.write(" ".join(names[i] for i in sentence) + "\n")


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def worker(corpus: Path, order: int, out_dir: Path) -> dict:
    """Run our estimator on ``corpus`` in this (fresh) process; timings and peak RSS."""
    from voxtrain_trainer.ml.arpa import write_arpa
    from voxtrain_trainer.ml.encoding import encode_sentences
    from voxtrain_trainer.ml.kneser_ney import estimate_kneser_ney
    from voxtrain_trainer.ml.sentences import normalized_sentences
    from voxtrain_trainer.ml.transcripts import read_utterances

    t0 = time.perf_counter()
    sentences = list(normalized_sentences(read_utterances(corpus, "txt")))
    t1 = time.perf_counter()
    encoded = encode_sentences(sentences)
    del sentences
    t2 = time.perf_counter()
    lm, discounts = estimate_kneser_ney(encoded, order)
    t3 = time.perf_counter()
    counts = write_arpa(lm, out_dir / "ours.arpa")
    t4 = time.perf_counter()
    return {
        "words": encoded.n_words,
        "vocabulary": len(encoded.vocab),
        "ngrams": counts,
        "fallback": any(d.fallback for d in discounts),
        "seconds": {
            "normalise": round(t1 - t0, 2),
            "encode": round(t2 - t1, 2),
            "estimate": round(t3 - t2, 2),
            "write_arpa": round(t4 - t3, 2),
            "total": round(t4 - t0, 2),
        },
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def run_ours(corpus: Path, order: int, out_dir: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(corpus), "--order", str(order), "--out", str(out_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def lmplz_worker(exe: str, corpus: Path, order: int, out_dir: Path) -> dict:
    """Run lmplz from this (fresh) process; its time and peak RSS, measured like ours."""
    t0 = time.perf_counter()
    with corpus.open("rb") as stdin, (out_dir / "kenlm.arpa").open("wb") as stdout:
        cmd = [exe, "-o", str(order), "--discount_fallback", "-S", "50%", "-T", str(out_dir)]
        subprocess.run(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL, check=True)
    return {
        "seconds": round(time.perf_counter() - t0, 2),
        "peak_rss_mb": round(_peak_rss_mb(resource.RUSAGE_CHILDREN), 1),
    }


def run_lmplz(exe: str, corpus: Path, order: int, out_dir: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(corpus), "--order", str(order), "--out", str(out_dir)]
    done = subprocess.run([*cmd, "--lmplz", exe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1M words only")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lmplz", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.lmplz:
            print(json.dumps(lmplz_worker(args.lmplz, args.worker, args.order, args.out)))
        else:
            print(json.dumps(worker(args.worker, args.order, args.out)))
        return

    sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    lmplz = shutil.which("lmplz")
    kenlm = lmplz or "unavailable (not on PATH, no Debian package)"
    print(f"order {args.order}; CPUs {os.cpu_count()}; KenLM lmplz: {kenlm}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_lm_") as tmp:
        tmp_dir = Path(tmp)
        for size in sizes:
            corpus = tmp_dir / f"corpus_{size}.txt"
            t = time.perf_counter()
            make_corpus(corpus, size)
            megabytes = corpus.stat().st_size / 1e6
            print(f"\n{size:,} words: corpus generated in {time.perf_counter() - t:.1f}s ({megabytes:.0f} MB)")
            ours = run_ours(corpus, args.order, tmp_dir)
            rate = ours["words"] / ours["seconds"]["total"]
            s = ours["seconds"]
            print(
                f"  voxtrain: {s['total']:.1f}s total = normalise {s['normalise']}s + encode {s['encode']}s"
                f" + estimate {s['estimate']}s + write ARPA {s['write_arpa']}s -> {rate:,.0f} words/s;"
                f" estimation alone {ours['words'] / s['estimate']:,.0f} words/s"
            )
            print(f"            peak RSS {ours['peak_rss_mb']:,.0f} MB; vocab {ours['vocabulary']:,}", end="")
            print(f"; n-grams {ours['ngrams']}")
            entry = {"words": size, "voxtrain": ours, "words_per_second": round(rate)}
            if lmplz:
                ken = run_lmplz(lmplz, corpus, args.order, tmp_dir)
                entry["lmplz"] = ken
                print(
                    f"  lmplz:    {ken['seconds']:.1f}s, peak RSS {ken['peak_rss_mb']:,.0f} MB;"
                    f" time ratio voxtrain/lmplz {s['total'] / max(ken['seconds'], 0.01):.2f},"
                    f" memory ratio {ours['peak_rss_mb'] / max(ken['peak_rss_mb'], 0.1):.2f}"
                )
            else:
                print("  lmplz:    unavailable, no comparison in this run")
            results.append(entry)
            corpus.unlink()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"order": args.order, "lmplz": lmplz, "runs": results}, indent=2) + "\n")
    print(f"\nwritten {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
