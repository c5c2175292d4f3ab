"""Benchmark: reading and pruning the base model's trie binary LM, and loading the pruned model from the cache.

    uv run --frozen --no-sync python -m bench.trainer.bench_general_lm [--words N --bigrams N --trigrams N]

Baseline in the same run: PocketSphinx's own ``NGramModel.readfile`` of the same file. Each step runs
in a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
from collections.abc import Callable
from multiprocessing import Queue
from pathlib import Path
from time import perf_counter

from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.general_lm import GeneralPruning, general_model
from voxtrain_trainer.ml.trie_lm import read_trie_lm


def _pocketsphinx_read() -> None:
    import pocketsphinx

    pocketsphinx.NGramModel.readfile(str(base_model_files().lm))


def _our_read() -> None:
    read_trie_lm(base_model_files().lm)


def _general(pruning: GeneralPruning, cache: Path) -> None:
    files = base_model_files()
    general_model(files.lm, files.dictionary, pruning, cache)


def _measure(target: Callable[..., None], args: tuple[object, ...], out: Queue) -> None:
    began = perf_counter()
    target(*args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    out.put({"seconds": round(perf_counter() - began, 2), "peak_rss_mb": peak})


def measure(target: Callable[..., None], *args: object) -> dict:
    """Run ``target(*args)`` in a child process: its wall time and peak RSS."""
    out: Queue = multiprocessing.Queue()
    process = multiprocessing.get_context("fork").Process(target=_measure, args=(target, args, out))
    process.start()
    result = out.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--words", type=int, default=10_000)
    parser.add_argument("--bigrams", type=int, default=200_000)
    parser.add_argument("--trigrams", type=int, default=100_000)
    args = parser.parse_args()
    pruning = GeneralPruning(args.words, args.bigrams, args.trigrams)
    with tempfile.TemporaryDirectory() as cache:
        results = {
            "pocketsphinx NGramModel.readfile (baseline)": measure(_pocketsphinx_read),
            "read_trie_lm (all 3.7M n-grams)": measure(_our_read),
            "general_model, cold (read + prune + write cache)": measure(_general, pruning, Path(cache)),
            "general_model, from the disk cache": measure(_general, pruning, Path(cache)),
        }
    print(json.dumps({"pruning": pruning.to_dict(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
