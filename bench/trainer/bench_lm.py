"""Benchmark: out-of-core language-model estimation vs KenLM's lmplz, time and peak memory.

    uv run python bench/trainer/bench_lm.py [--quick | --large] [--order 3] [--memory-mb 2048]

Synthetic Zipfian corpora (1M and 10M words; --quick: 1M only; --large adds 100M) are written to a
temporary directory as normalised text, one sentence per line. Both estimators read the same file
and write an ARPA file, each in a fresh child process so its peak RSS (ru_maxrss) is its own:
voxtrain's :func:`estimate_arpa` (modified Kneser-Ney, no pruning, the memory budget given) and
lmplz with the same budget as its ``-S``. lmplz is KenLM's prebuilt binary in
``../shared/baselines/kenlm/lmplz`` beside the repository (or on PATH); when it is absent that is
said and only our numbers are printed. It is a baseline only: the product never calls it.
Results go to bench/results/trainer_lm.json (per size: ``words``, ``voxtrain.seconds.total``,
``voxtrain.peak_rss_mb``, ``lmplz.seconds``, ``lmplz.peak_rss_mb`` and more: ``voxtrain.peak_spill_mb``
(its scratch directory, polled every 0.5 s), ``progress_updates`` and ``progress_longest_wait_s``,
the load average before and after each run; a voxtrain run that stops with a ``TrainingError``,
e.g. ``lm_spill_limit_exceeded`` under ``--spill-limit-mb``, is recorded with its ``error`` and
``seconds.total`` null, and the other sizes still run). Summary and history: LM_RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from voxtrain_trainer.ml.lm_external import DEFAULT_MEMORY_MB, DEFAULT_SPILL_LIMIT_MB

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "trainer_lm.json"
LMPLZ = Path("shared") / "baselines" / "kenlm" / "lmplz"


def make_corpus(path: Path, words: int, vocab: int = 250_000, seed: int = 1) -> None:
    """Write ``words`` words of Zipf(1.05)-distributed text, sentence lengths 1..30 (mean ~12)."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(3, 11, size=vocab)
    names = np.array(["".join(rng.choice(letters, size=n)) for n in lengths], dtype=object)
    weights = 1.0 / np.arange(1, vocab + 1) ** 1.05
    cdf = np.cumsum(weights / weights.sum())
    chunk = 10_000_000  # generated in pieces so 100M words need no 100M-word array
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, words, chunk):
            n = min(chunk, words - start)
            ids = np.minimum(np.searchsorted(cdf, rng.random(n)), vocab - 1)
            bounds = np.cumsum(np.clip(rng.poisson(12, size=n // 4 + 1), 1, 30))
            out.writelines(" ".join(names[s].tolist()) + "\n" for s in np.split(ids, bounds[bounds < n]))


def find_lmplz() -> Path | None:
    """lmplz beside the repository (``../shared/...``; for a git worktree, beside its main checkout) or on PATH."""
    candidates = [ROOT.parent / LMPLZ]
    common = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--git-common-dir"], capture_output=True, text=True)
    if common.returncode == 0:
        candidates.append((ROOT / common.stdout.strip()).resolve().parent.parent / LMPLZ)
    on_path = shutil.which("lmplz")
    candidates += [Path(on_path)] if on_path else []
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def _disk_used(directory: Path) -> int:
    used = 0
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                used += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue  # removed meanwhile
    return used


def worker(corpus: Path, order: int, out_dir: Path, memory_mb: int, spill_limit_mb: int) -> dict:
    """Run our estimator on ``corpus`` in this (fresh) process; timings, peak RSS and peak spill disk."""
    from voxtrain_trainer.ml.errors import TrainingError
    from voxtrain_trainer.ml.lm_external import estimate_arpa

    marks: list[tuple[float, float]] = []
    work_dir = out_dir / "voxtrain-work"
    work_dir.mkdir(exist_ok=True)
    peak_spill = [0]
    done = threading.Event()

    def watch_spill() -> None:  # the estimator's scratch directory (spill files, ARPA sections), every 0.5 s
        while not done.wait(0.5):
            peak_spill[0] = max(peak_spill[0], _disk_used(work_dir))

    watcher = threading.Thread(target=watch_spill, daemon=True)
    watcher.start()
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        result = estimate_arpa(
            corpus,
            out_dir / "ours.arpa",
            order,
            memory_mb=memory_mb,
            spill_limit_mb=spill_limit_mb,
            work_dir=work_dir,
            progress=lambda f: marks.append((f, time.perf_counter() - t0)),
        )
        outcome: dict = {
            "words": result.words,
            "vocabulary": result.vocab_size,
            "ngrams": result.ngram_counts,
            "fallback": any(d.fallback for d in result.discounts),
            "seconds": {"total": round(time.perf_counter() - t0, 2), **result.seconds},
        }
    except TrainingError as exc:  # e.g. lm_spill_limit_exceeded: recorded, the other sizes still run
        outcome = {"error": {"code": exc.code, "message": exc.message}, "seconds": {"total": None}}
        outcome["failed_after_s"] = round(time.perf_counter() - t0, 1)
        outcome["progress_reached"] = round(marks[-1][0], 3) if marks else 0.0
    done.set()
    watcher.join()
    return {
        **outcome,
        "memory_budget_mb": memory_mb,
        "spill_limit_mb": spill_limit_mb,
        "progress_updates": len(marks),
        "progress_longest_wait_s": round(max(b[1] - a[1] for a, b in itertools.pairwise(marks)), 1)
        if len(marks) > 1
        else None,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_spill_mb": round(peak_spill[0] / 2**20, 1),
        "load_average": [round(load, 1), round(os.getloadavg()[0], 1)],
    }


def lmplz_worker(exe: str, corpus: Path, order: int, out_dir: Path, memory_mb: int) -> dict:
    """Run lmplz from this (fresh) process with ``-S memory_mb``; its time and peak RSS."""
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with corpus.open("rb") as stdin, (out_dir / "kenlm.arpa").open("wb") as stdout:
        cmd = [exe, "-o", str(order), "--discount_fallback", "-S", f"{memory_mb}M", "-T", str(out_dir)]
        subprocess.run(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL, check=True)
    return {
        "seconds": round(time.perf_counter() - t0, 2),
        "peak_rss_mb": round(_peak_rss_mb(resource.RUSAGE_CHILDREN), 1),
        "memory_budget_mb": memory_mb,
        "load_average": [round(load, 1), round(os.getloadavg()[0], 1)],
    }


def _child(corpus: Path, args: argparse.Namespace, out_dir: Path, lmplz: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(corpus), "--order", str(args.order), "--out", str(out_dir)]
    cmd += ["--memory-mb", str(args.memory_mb), "--spill-limit-mb", str(args.spill_limit_mb)]
    cmd += ["--lmplz", str(lmplz)] if lmplz else []
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_lm: the {'lmplz' if lmplz else 'voxtrain'} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1M words only")
    parser.add_argument("--large", action="store_true", help="add 100M words")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, alternating; the fastest is kept")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, help="budget of both estimators")
    parser.add_argument("--spill-limit-mb", type=int, default=DEFAULT_SPILL_LIMIT_MB, help="voxtrain's spill disk")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lmplz", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.lmplz:
            print(json.dumps(lmplz_worker(args.lmplz, args.worker, args.order, args.out, args.memory_mb)))
        else:
            print(json.dumps(worker(args.worker, args.order, args.out, args.memory_mb, args.spill_limit_mb)))
        return

    sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000] + ([100_000_000] if args.large else [])
    lmplz = find_lmplz()
    cpus = len(os.sched_getaffinity(0))
    print(f"order {args.order}; memory budget {args.memory_mb} MB for each estimator (lmplz -S); {cpus} CPUs")
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} at the start: the CPUs are shared, so times (and their ratios) vary with it")
    if lmplz:
        print(f"KenLM lmplz: {lmplz}")
    else:
        print(f"KenLM lmplz: ABSENT (looked for ../{LMPLZ} beside the repository and on PATH): no comparison")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_lm_") as tmp:
        tmp_dir = Path(tmp)
        for size in sizes:
            corpus = tmp_dir / f"corpus_{size}.txt"
            t = time.perf_counter()
            make_corpus(corpus, size)
            megabytes = corpus.stat().st_size / 1e6
            print(f"\n{size:,} words: corpus generated in {time.perf_counter() - t:.1f}s ({megabytes:,.0f} MB)")
            runs = [
                (_child(corpus, args, tmp_dir), _child(corpus, args, tmp_dir, lmplz) if lmplz else None)
                for _ in range(max(args.repeat, 1))
            ]
            finished = [r[0] for r in runs if r[0]["seconds"]["total"] is not None]
            ours = min(finished, key=lambda r: r["seconds"]["total"]) if finished else runs[0][0]
            ours["peak_rss_mb"] = max(r[0]["peak_rss_mb"] for r in runs)
            seconds = ours["seconds"]["total"]
            within = ours["peak_rss_mb"] <= args.memory_mb
            ours["within_budget"] = within
            verdict = "within" if within else "OVER"
            memory = f"peak RSS {ours['peak_rss_mb']:,.0f} MB ({verdict} the {args.memory_mb} MB budget)"
            if seconds is None:
                print(f"  voxtrain: FAILED after {ours['failed_after_s']}s: {ours['error']['code']}; {memory}")
            else:
                print(
                    f"  voxtrain: {seconds:.1f}s ({ours['words'] / seconds:,.0f} words/s), {memory};"
                    f" vocab {ours['vocabulary']:,}; n-grams {ours['ngrams']}"
                )
                phases = ", ".join(f"{k} {v:.1f}s" for k, v in ours["seconds"].items() if k != "total")
                print(f"            phases: {phases}")
            print(
                f"            peak spill disk {ours['peak_spill_mb']:,.0f} MB; {ours['progress_updates']} progress"
                f" updates (longest wait {ours['progress_longest_wait_s']}s); load average"
                f" {ours['load_average'][0]} -> {ours['load_average'][1]}"
            )
            entry: dict = {"words": size, "corpus_mb": round(megabytes, 1), "voxtrain": ours}
            if lmplz:
                ken = min((r[1] for r in runs if r[1]), key=lambda r: r["seconds"])
                ken["peak_rss_mb"] = max(r[1]["peak_rss_mb"] for r in runs if r[1])
                entry["lmplz"] = ken
                entry["speed_vs_lmplz"] = round(ken["seconds"] / max(seconds, 0.01), 2) if seconds else None
                entry["memory_vs_lmplz"] = round(ours["peak_rss_mb"] / max(ken["peak_rss_mb"], 0.1), 2)
                speed = f"{entry['speed_vs_lmplz']:.2f}x" if seconds else "no ratio (voxtrain failed) vs"
                print(
                    f"  lmplz:    {ken['seconds']:.1f}s, peak RSS {ken['peak_rss_mb']:,.0f} MB ->"
                    f" voxtrain at {speed} lmplz's speed (goal >= 0.5),"
                    f" {entry['memory_vs_lmplz']:.2f}x its peak memory; load average"
                    f" {ken['load_average'][0]} -> {ken['load_average'][1]}"
                )
            else:
                print("  lmplz:    absent, no comparison in this run")
            results.append(entry)
            corpus.unlink()
            for leftover in ("ours.arpa", "kenlm.arpa"):
                (tmp_dir / leftover).unlink(missing_ok=True)
    note = f"{cpus} CPUs shared with whatever else runs on the machine"
    summary = {
        "repeat": args.repeat,
        "load_average_at_start": round(load, 1),
        "order": args.order,
        "memory_budget_mb": args.memory_mb,
        "lmplz": str(lmplz),
        "cpus": note,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**summary, "runs": results}, indent=2) + "\n")
    print(f"\nwritten {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
