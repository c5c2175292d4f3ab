"""Benchmark: decoder settings for text-only runs, measured on the development domains.

    uv run --frozen --no-sync python -m bench.trainer.bench_text_weights [--out FILE] [--steps current,today]
        [--defaults-only] [--search]

A text-only run has no audio to tune the language weight (lw) and word insertion penalty (wip) on,
so it ships fixed ones (PocketSphinx's defaults, lw 6.5 / wip 0.65). This measures WER per
development domain (bench/trainer/dev_domains.py: never the reported aviation and medical sets) for
the text-only model of each step (bench_acoustic.TEXT_STEPS) on every lw x wip of a grid, and prints
each point's WER pooled over the domains' words next to the defaults' WER. ``--defaults-only``
measures the defaults alone (to compare steps); ``--search`` measures PocketSphinx search settings
(beams, Gaussians per frame, lookahead, passes) at the default weights instead of the grid. Each model
decodes as it ships (its decoder.json, with its step's search); ``--search`` puts every candidate on top
of PocketSphinx's default search instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from time import process_time

from bench.trainer.bench_acoustic import TEXT_STEPS
from bench.trainer.dev_domains import DEV_DOMAINS
from tests.trainer.recordings import spoken
from voxtrain_trainer.ml import TextFile, TrainingInputs, TrainingSettings, run_training
from voxtrain_trainer.ml.audio import load_pcm
from voxtrain_trainer.ml.decoder import DecoderConfig, SpeechDecoder
from voxtrain_trainer.ml.model_files import decoder_config
from voxtrain_trainer.ml.wer import word_error_rate

LW_GRID = (6.5, 8.0, 9.0, 10.0, 11.0, 12.0, 14.0)
WIP_GRID = (0.2, 0.65, 2.0, 5.0)
DEFAULTS = (6.5, 0.65)
# PocketSphinx options on top of the model's (its defaults: beam 1e-48, wbeam 7e-29, topn 4, pl_window 5,
# maxhmmpf 30000, maxwpf -1, fwdflat and bestpath on)
SEARCH = {
    "default": {},
    "no phone lookahead (pl_window 0)": {"pl_window": 0},
    "8 Gaussians per frame (topn 8)": {"topn": 8},
    "wider beams": {"beam": 1e-60, "wbeam": 1e-40, "pbeam": 1e-60, "lpbeam": 1e-50, "lponlybeam": 1e-40},
    "no HMM cap (maxhmmpf -1)": {"maxhmmpf": -1},
    "no bestpath": {"bestpath": False},
    "no fwdflat": {"fwdflat": False},
    "all widening": {"pl_window": 0, "topn": 8, "beam": 1e-60, "wbeam": 1e-40, "pbeam": 1e-60, "maxhmmpf": -1},
    "lookahead off, topn 8": {"pl_window": 0, "topn": 8},
    "lookahead off, no HMM cap": {"pl_window": 0, "maxhmmpf": -1},
    "wider beams, no HMM cap": {"beam": 1e-60, "wbeam": 1e-40, "pbeam": 1e-60, "maxhmmpf": -1},
    "topn 8, wider beams, no HMM cap": {"topn": 8, "beam": 1e-60, "wbeam": 1e-40, "pbeam": 1e-60, "maxhmmpf": -1},
    "lookahead off, wider beams, no HMM cap": {
        "pl_window": 0,
        "beam": 1e-60,
        "wbeam": 1e-40,
        "pbeam": 1e-60,
        "maxhmmpf": -1,
    },
    "all widening, beams 1e-54": {
        "pl_window": 0,
        "topn": 8,
        "beam": 1e-54,
        "wbeam": 1e-35,
        "pbeam": 1e-54,
        "maxhmmpf": -1,
    },
}

Utterances = list[tuple[bytes, str]]


def score(refs: list[str], hyps: list[str], cpu: float) -> dict:
    result = word_error_rate(refs, hyps)
    errors = result.substitutions + result.deletions + result.insertions
    sdi = {"substitutions": result.substitutions, "deletions": result.deletions, "insertions": result.insertions}
    return {"errors": errors, "words": result.reference_words, **sdi, "cpu_seconds": round(cpu, 2)}


def grid_errors(config: DecoderConfig, utterances: Utterances, lw_grid: tuple, wip_grid: tuple) -> dict[str, dict]:
    """Errors and reference words at every grid point (through the product's decoder)."""
    out = {}
    for lw in lw_grid:
        for wip in wip_grid:
            decoder = SpeechDecoder(config.with_weights(lw, wip))
            began = process_time()
            hyps = [decoder.decode(pcm).text for pcm, _ in utterances]
            out[f"lw {lw}, wip {wip}"] = score([r for _, r in utterances], hyps, process_time() - began)
    return out


def search_errors(config: DecoderConfig, utterances: Utterances) -> dict[str, dict]:
    """Errors and reference words under each of SEARCH's PocketSphinx options (default weights), each on top of
    PocketSphinx's default search (not the model's own)."""
    out = {}
    for name, options in SEARCH.items():
        decoder = SpeechDecoder(dataclasses.replace(config, search=options))
        began = process_time()
        hyps = [decoder.decode(pcm).text for pcm, _ in utterances]
        out[name] = score([r for _, r in utterances], hyps, process_time() - began)
    return out


STEPS = {"base": ("the base en-US model (no training)", {}), **TEXT_STEPS}


def bench_domain(name: str, root: Path, step: str, mode: str) -> dict[str, dict]:
    text, dev = DEV_DOMAINS[name]
    directory = root / step / name
    directory.mkdir(parents=True)
    config = DecoderConfig.base()
    if step != "base":
        notes = directory / "text.txt"
        notes.write_text(text, encoding="utf-8")
        result = run_training(
            TrainingInputs(transcripts=[TextFile(notes)]), directory / "run", TrainingSettings(**TEXT_STEPS[step][1])
        )
        mix = result.metrics["lm"]["general_english"] or {}
        print(f"{step} / {name}: domain weight {mix.get('domain_weight')} ({mix.get('tuned_on')})", flush=True)
        config = decoder_config(result.model_dir)  # what the model ships with (decoder.json: weights, search)
    utterances = [(load_pcm(p), s) for p, s in spoken(dev, directory / "dev", "d", 1)]
    if mode == "search":
        return search_errors(config, utterances)
    grid = ((DEFAULTS[0],), (DEFAULTS[1],)) if mode == "defaults" else (LW_GRID, WIP_GRID)
    return grid_errors(config, utterances, *grid)


def print_step(step: str, domains: dict[str, dict[str, dict]]) -> None:
    first = next(iter(domains.values()))
    baseline = "default" if "default" in first else f"lw {DEFAULTS[0]}, wip {DEFAULTS[1]}"
    print(f"\n## {step}: {STEPS[step][0]}")
    print("| setting | " + " | ".join(domains) + " | pooled WER | vs default | CPU s |")
    print("|---|" + "---|" * (len(domains) + 3))
    total = {k: sum(d[k]["errors"] for d in domains.values()) for k in first}
    words = sum(d[baseline]["words"] for d in domains.values())
    for key, errors in total.items():
        cells = " | ".join(f"{d[key]['errors'] / d[key]['words']:.3f}" for d in domains.values())
        cpu = sum(d[key]["cpu_seconds"] for d in domains.values())
        print(f"| {key} | {cells} | {errors / words:.3f} | {errors / total[baseline] - 1:+.1%} | {cpu:.1f} |")
    best = min(total, key=lambda k: (total[k], k != baseline))
    print(f"lowest: {best}: WER {total[best] / words:.3f} vs {total[baseline] / words:.3f} ({baseline})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None, help="write the JSON results here")
    parser.add_argument("--domains", default=",".join(DEV_DOMAINS))
    parser.add_argument("--steps", default="current", help=f"models ({', '.join(STEPS)})")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--defaults-only", action="store_true", help="only lw 6.5 / wip 0.65, not the grid")
    modes.add_argument("--search", action="store_true", help="PocketSphinx search settings, not the weights")
    args = parser.parse_args()
    mode = "search" if args.search else "defaults" if args.defaults_only else "grid"
    root = Path(tempfile.mkdtemp(prefix="bench-text-weights-"))
    results: dict[str, dict[str, dict]] = {}
    try:
        for step in args.steps.split(","):
            results[step] = {name: bench_domain(name, root, step, mode) for name in args.domains.split(",")}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for step, domains in results.items():
        print_step(step, domains)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
