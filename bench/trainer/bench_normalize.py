"""Benchmark: the trainer's text normalisation (sentence split + normaliser), CPU and wall MB/s.

    uv run python bench/trainer/bench_normalize.py [--mb 20]

Three generated corpora of ``--mb`` MB each (one utterance a line, fixed seeds): ``prose`` (English with a
number in about one sentence of twenty), ``numbers`` (doses, prices, times, ordinals, ranges and
abbreviations in about a third of the sentences) and ``unicode`` (accents, curly quotes and compatibility
characters on most lines). On each, in this one process and in this order:

- ``lower+split``: ``line.lower().split()`` for every line, the floor of any per-line Python pass;
- ``one by one``: ``split_sentences`` + ``normalize_text`` sentence by sentence, the trainer's code before
  the block form (kept as the reference; the output of every other row is checked against it);
- ``blocks``: ``normalized_sentences``, what the trainer runs now;
- ``prepare``: the whole text stage of a run, ``prepare_data`` on the corpus as a .txt file (read the file,
  split, normalise, hold out, write the sentences to disk).

MB/s is the corpus size over the CPU time (``time.process_time``) and over the wall time; the machine's
load average is printed, as wall time depends on it. Results and history: NORMALIZE_RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from voxtrain_trainer.ml.normalize import normalize_text
from voxtrain_trainer.ml.prepare import PreparedData, prepare_data
from voxtrain_trainer.ml.sentences import normalized_sentences, split_sentences
from voxtrain_trainer.ml.types import TextFile, TrainingInputs

_WORDS = [
    "the", "patient", "was", "given", "a", "dose", "of", "medication", "and", "the", "doctor", "said", "that", "it",
    "would", "help", "with", "pain", "after", "surgery", "we", "will", "review", "blood", "pressure", "heart",
    "rate", "results", "tomorrow", "morning", "before", "lunch", "please", "take", "tablets", "twice", "daily",
    "water", "she", "reported", "feeling", "better", "than", "yesterday", "but", "still", "tired",
]  # fmt: skip
_NUMBERS = [
    "12 mg", "3.5", "$3.50", "10:30", "2nd", "50%", "1,000", "2-3", "COVID19", "007", "-5", "1st", "2024", "0.25",
]  # fmt: skip
_ABBREVIATIONS = ["Dr.", "e.g.", "Mr.", "vs.", "etc.", "No.", "J."]
_OTHERS = ["don't", "O'Brien", "&", "+", "@home", "(the 3rd dose)", "-", "..."]
_UNICODE = ["café", "it’s", "‘quoted’", "naïve", "ﬁne", "Ⅻ", "²", "Straße", "—", "…", "São", "½", "coöperate"]


def corpus(kind: str, megabytes: float, seed: int = 1) -> list[str]:
    """Lines of about ``megabytes`` MB of text of one ``kind`` (prose, numbers, unicode), the same each time."""
    rng = random.Random(seed)
    extra_rate, extras = {
        "prose": (0.05, _NUMBERS + _ABBREVIATIONS + _OTHERS),
        "numbers": (0.35, _NUMBERS * 3 + _ABBREVIATIONS + _OTHERS),
        "unicode": (0.6, _UNICODE * 3 + _NUMBERS + _ABBREVIATIONS),
    }[kind]
    lines: list[str] = []
    size = 0
    while size < megabytes * 1e6:
        sentences = []
        for _ in range(rng.randint(1, 4)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 18))]
            if rng.random() < extra_rate:
                words.insert(rng.randrange(len(words)), rng.choice(extras))
            words[0] = words[0].capitalize()
            sentences.append(" ".join(words) + rng.choice(".....?!,"))
        lines.append(" ".join(sentences))
        size += len(lines[-1].encode()) + 1
    return lines


def one_by_one(lines: list[str]) -> Iterator[str]:
    for line in lines:
        for sentence in split_sentences(line):
            if normalized := normalize_text(sentence):
                yield normalized


def measure(work: Callable[[], object]) -> tuple[float, float]:
    """CPU seconds and wall seconds of ``work()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.process_time() - cpu, time.perf_counter() - wall


def bench(kind: str, lines: list[str], directory: Path) -> None:
    """Print the four runs on one corpus (see module docstring)."""
    path = directory / f"{kind}.txt"
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    megabytes = path.stat().st_size / 1e6
    reference: list[str] = []
    blocks: list[str] = []
    prepared: list[PreparedData] = []
    runs: list[tuple[str, Callable[[], object]]] = [
        ("lower+split", lambda: [line.lower().split() for line in lines]),
        ("one by one", lambda: reference.extend(one_by_one(lines))),
        ("blocks", lambda: blocks.extend(normalized_sentences(lines))),
        ("prepare", lambda: prepared.append(prepare_data(TrainingInputs([TextFile(path, "txt")]), 0.1, directory))),
    ]
    reference_cpu = 0.0
    for name, work in runs:
        cpu, wall = measure(work)
        same = ""
        if name == "one by one":
            reference_cpu = cpu
        elif name == "blocks":
            same = "yes" if blocks == reference else "NO"
        elif name == "prepare":
            data = prepared[0]
            same = "yes" if data.training_sentences.count + data.test_sentence_count == len(reference) else "NO"
        ratio = f"{reference_cpu / cpu:.2f}x" if reference_cpu else ""
        print(
            f"{kind:8} {megabytes:6.1f} {name:12} {megabytes / cpu:9.1f} {megabytes / wall:10.1f} "
            f"{ratio:>14} {same:>5}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=20.0, help="size of each corpus in MB (default 20)")
    parser.add_argument("--kinds", default="prose,numbers,unicode")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  python {sys.version.split()[0]}")
    print(f"{'corpus':8} {'MB':>6} {'run':12} {'CPU MB/s':>9} {'wall MB/s':>10} {'vs one by one':>14} {'same':>5}")
    for kind in args.kinds.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-normalize-") as tmp:
            bench(kind, corpus(kind, args.mb), Path(tmp))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
