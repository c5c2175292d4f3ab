"""Benchmark: the CPU one small training costs in a worker process, this code vs a baseline revision.

    uv run --frozen --no-sync python bench/trainer/bench_small_training.py [--baseline REV] [--runs N]

The workload is the fleet benchmark's (bench/fleet): a 40-line transcript and a 4-line test text, no audio,
trained with the default settings (so with the general-English mix and its 5-fold weight tuning). Each
training runs in a fresh Python process, as a trainer worker does: it first runs the service's entry script
the way ``multiprocessing``'s spawn does (as ``__mp_main__``), imports the worker and the pipeline, then calls
``run_training``. The baseline is the trainer and shared code of ``--baseline`` (default: the last main
before the general mix moved to numpy arrays) extracted with ``git archive`` and put first on the child's
``PYTHONPATH``; both versions run alternately ``--runs`` times (medians reported) after one untimed run each
that fills their general-LM caches. CPU is the child's user + system time (with its own children). The
models must agree: same n-gram counts and mix weight, held-out perplexities within 1e-6.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.fleet.bench_fleet import corpus  # noqa: E402  (the fleet's workload, one model of it)

BASELINE = "e3250fa"  # main before the numpy-array general mix and the lazy entry script
RESULTS = ROOT / "bench" / "results" / "small_training.json"

CHILD = r"""
import json, os, runpy, sys, tempfile, time
from pathlib import Path
began = time.process_time()
runpy.run_path(sys.argv[1], run_name="__mp_main__")  # what a spawned worker runs first
import voxtrain_trainer.worker
from voxtrain_shared.vocab import DatasetType
from voxtrain_trainer.inputs import LocalDataset, build_inputs
from voxtrain_trainer.ml.pipeline import run_training
imported = time.process_time()
data = Path(sys.argv[2])
inputs, _ = build_inputs([
    LocalDataset("a", DatasetType.TRANSCRIPT, "notes.txt", data / "notes.txt"),
    LocalDataset("b", DatasetType.TEST, "test.txt", data / "test.txt"),
])
with tempfile.TemporaryDirectory() as work:
    result = run_training(inputs, Path(work) / "model")
done = time.process_time()
m = result.metrics
print(json.dumps({
    "code": str(Path(voxtrain_trainer.worker.__file__).parent),
    "imports_cpu": imported - began,
    "run_training_cpu": done - imported,
    "durations": m["durations"],
    "domain_weight": m["lm"]["general_english"]["domain_weight"],
    "heldout_perplexity": m["lm"]["general_english"]["heldout_perplexity"],
    "ngram_counts": m["lm"]["ngram_counts"],
    "test_perplexity": m["evaluation"]["perplexity"]["custom"]["perplexity"],
}))
"""


def extract(rev: str, into: Path) -> Path:
    """The trainer and shared sources of ``rev``, under ``into``."""
    archive = into / "src.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "services/trainer/src", "shared/src"], stdout=out, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def run_once(tree: Path | None, entry: Path, data: Path) -> dict:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree / "services/trainer/src"), str(tree / "shared/src")])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(entry), str(data)], env=env, capture_output=True, text=True, check=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def same_model(a: dict, b: dict) -> bool:
    close = abs(a["test_perplexity"] - b["test_perplexity"]) <= 1e-6 * b["test_perplexity"]
    heldout = a["heldout_perplexity"].keys() == b["heldout_perplexity"].keys() and all(
        abs(a["heldout_perplexity"][k] - b["heldout_perplexity"][k]) <= 0.011 for k in b["heldout_perplexity"]
    )  # rounded to 2 decimals in the metrics
    return close and heldout and a["domain_weight"] == b["domain_weight"] and a["ngram_counts"] == b["ngram_counts"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with (default %(default)s)")
    parser.add_argument("--runs", type=int, default=5, help="timed trainings per version (default %(default)s)")
    parser.add_argument("--seed", type=int, default=3, help="which of the fleet's models to train")
    args = parser.parse_args()
    entry = Path(sys.prefix) / "bin" / "voxtrain-trainer"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        rng = random.Random(args.seed)
        (data / "notes.txt").write_text(corpus(rng.randrange(10_000), 40), encoding="utf-8")
        (data / "test.txt").write_text(corpus(10_000 + rng.randrange(10_000), 4), encoding="utf-8")
        versions = {"baseline": extract(args.baseline, Path(tmp)), "current": None}
        results: dict[str, list[dict]] = {name: [] for name in versions}
        for name, tree in versions.items():  # untimed: fills the version's general-LM cache
            first = run_once(tree, entry, data)
            print(f"{name}: code from {first['code']}", flush=True)
        for i in range(args.runs):
            for name, tree in versions.items():
                results[name].append(run_once(tree, entry, data))
                r = results[name][-1]
                print(
                    f"  run {i + 1} {name:8}: {r['process_cpu']:.2f} CPU-s (imports {r['imports_cpu']:.2f}, "
                    f"run_training {r['run_training_cpu']:.2f}; estimate_lm {r['durations']['estimate_lm']:.2f} s "
                    f"wall)",
                    flush=True,
                )
    labels = {"process_cpu": "worker process total", "imports_cpu": "imports", "run_training_cpu": "run_training"}
    medians = {name: {key: statistics.median(r[key] for r in runs) for key in labels} for name, runs in results.items()}
    agree = all(same_model(c, results["baseline"][0]) for c in results["current"])
    load = os.getloadavg()
    print(f"\nsmall training ({args.runs} runs each, medians; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})")
    for key, label in labels.items():
        b, c = medians["baseline"][key], medians["current"][key]
        print(f"  {label:22} baseline {b:6.2f} CPU-s   current {c:6.2f} CPU-s   current/baseline {c / b:.2f}")
    print(f"  same model (weight, n-gram counts, perplexities): {agree}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"baseline": args.baseline, "load_average": load, "medians": medians, "same_model": agree, "runs": results},
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    if not agree:
        sys.exit("the current code trains a different model than the baseline")


if __name__ == "__main__":
    main()
