"""Benchmark: G2P on held-out CMUdict words — the Phonetisaurus model trained on the base dictionary vs espeak-ng.

    uv run python bench/trainer/bench_g2p.py [--heldout 2000] [--seed 13] [--order 8] [--reuse-cache]

The base dictionary (``cmudict-en-us.dict`` of the pocketsphinx model) is split with the trainer's own
:func:`heldout_split`: ``--heldout`` alphabetic words drawn with ``--seed`` are held out, every
pronunciation of them leaves the training data. A Phonetisaurus model is trained on the rest in a
temporary directory (timed, with the children's peak RSS) unless ``--reuse-cache`` takes the trainer's
cached model of the same split; the held-out words are then pronounced by it and by the espeak-ng
table (:mod:`voxtrain_trainer.ml.g2p`, the previous G2P) in the same run. Printed per method: phone
error rate (Levenshtein edits / reference phones, against each word's closest dictionary
pronunciation, rapidfuzz), word error rate (words with any edit) and seconds; then the ratios vs
espeak. For the variants (``word(2)``) it also prints, per probability ratio, how many words would
get a second pronunciation and the PER of the better of the two (the first pronunciation's PER does
not change). Results go to bench/results/trainer_g2p.json with the load average before and after;
summary: G2P_RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from rapidfuzz.distance import Levenshtein

from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.g2p import espeak_pronunciations
from voxtrain_trainer.ml.g2p_learn import (
    HELDOUT_WORDS,
    ORDER,
    SEED,
    Pron,
    TrainedG2P,
    error_rates,
    heldout_split,
    letters_of,
    nbest,
    train_phonetisaurus,
    trained_g2p,
)
from voxtrain_trainer.ml.lexicon import read_dictionary

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "trainer_g2p.json"
RATIOS = (0.2, 0.5)
T = TypeVar("T")


def _timed(label: str, run: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.1f} s")
    return result, seconds


def _closest(prons: Sequence[Pron], references: Sequence[Pron]) -> Pron:
    return min(prons, key=lambda p: min(Levenshtein.distance(p, r) for r in references))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", type=int, default=HELDOUT_WORDS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--order", type=int, default=ORDER)
    parser.add_argument("--reuse-cache", action="store_true", help="the trainer's cached model (its split and order)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    dictionary = base_model_files().dictionary
    base = read_dictionary(dictionary)
    train, held = heldout_split(base, args.heldout, args.seed)
    print(f"{dictionary.name}: {len(base)} words, {len(train)} train, {len(held)} held out (seed {args.seed})")
    with tempfile.TemporaryDirectory(prefix="bench-g2p-") as tmp:
        if args.reuse_cache:
            if (args.heldout, args.seed, args.order) != (HELDOUT_WORDS, SEED, ORDER):
                parser.error("--reuse-cache needs the default --heldout, --seed and --order (the trainer's)")
            model, train_seconds = _timed("cached model (trains it if absent)", lambda: trained_g2p(dictionary))
        else:
            _, train_seconds = _timed(
                "train phonetisaurus", lambda: train_phonetisaurus(train, Path(tmp) / "model.fst", args.order)
            )
            model = TrainedG2P(Path(tmp) / "model.fst", {}, letters_of(train))
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        scored, learned_seconds = _timed("phonetisaurus pronounce", lambda: nbest(model.model, held, 2))
        espeak, espeak_seconds = _timed("espeak-ng pronounce", lambda: espeak_pronunciations(held))
    first: dict[str, list[Pron]] = {w: [s[0][1]] for w, s in scored.items()}
    rates = {"phonetisaurus": error_rates(first, held), "espeak": error_rates(espeak, held)}
    for name, r in rates.items():
        print(f"{name:14s} PER {r.phone_error_rate:.2%}  WER {r.word_error_rate:.2%}  ({r.words} words)")
    per_ratio = rates["phonetisaurus"].phone_error_rate / rates["espeak"].phone_error_rate
    wer_ratio = rates["phonetisaurus"].word_error_rate / rates["espeak"].word_error_rate
    print(f"phonetisaurus / espeak: PER {per_ratio:.2f}x, WER {wer_ratio:.2f}x")
    variants = {}
    for ratio in RATIOS:
        chosen = {w: [s[0][1], *[p for c, p in s[1:] if math.exp(s[0][0] - c) >= ratio]] for w, s in scored.items()}
        with_two = sum(len(p) > 1 for p in chosen.values())
        # the better of the two pronunciations against the closest reference: what a decoder could pick
        best = {w: [_closest(p, held[w])] for w, p in chosen.items()}
        oracle = error_rates(best, held)
        variants[str(ratio)] = {"words_with_variant": with_two, "oracle_phone_error_rate": oracle.phone_error_rate}
        print(f"variants at ratio {ratio}: {with_two} words get two, best-of-two PER {oracle.phone_error_rate:.2%}")
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "heldout_words": len(held),
                "train_words": len(train),
                "seed": args.seed,
                "order": args.order,
                "train_seconds": round(train_seconds, 1),
                "train_children_peak_rss_mb": round(peak_mb),
                "pronounce_seconds": {"phonetisaurus": round(learned_seconds, 1), "espeak": round(espeak_seconds, 1)},
                **{
                    name: {"phone_error_rate": r.phone_error_rate, "word_error_rate": r.word_error_rate}
                    for name, r in rates.items()
                },
                "per_ratio_vs_espeak": per_ratio,
                "wer_ratio_vs_espeak": wer_ratio,
                "variants": variants,
                "load_before": load_before,
                "load_after": load_after,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
