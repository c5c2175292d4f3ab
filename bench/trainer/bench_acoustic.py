"""Benchmark: base vs text-only vs text + audio (adapted acoustic model) WER on two held-out domains.

    uv run --frozen --no-sync python -m bench.trainer.bench_acoustic [--out DIR] [--domains aviation,medical]

For each domain (bench/trainer/acoustic_domains.py) espeak-ng speaks the adaptation and the test
sentences with a rotation of voices and speeds (test and adaptation recordings are disjoint: other
sentences, other files). The aviation adaptation audio is four long recordings with a VTT
transcript each, paired by base name and cut by cue times like a customer upload. Per domain, one
text-only run per step of TEXT_STEPS (the text-only model as issue 13 was filed -- espeak-ng G2P and
the domain LM alone --, the learned G2P alone, the general-English mix alone, both with PocketSphinx's
default search, and with the shipped wide search) and one text +
audio run; the table prints the base model, those runs, and the text + audio run's text-only and
adapted models, all on the same test audio, with each step's relative WER change.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter, process_time

from bench.trainer.acoustic_domains import DOMAINS
from bench.trainer.dev_domains import DEV_AUDIO_DOMAINS
from tests.trainer.recordings import long_recordings, spoken
from voxtrain_trainer.ml import AudioPair, TextFile, TrainingInputs, TrainingResult, TrainingSettings, run_training
from voxtrain_trainer.ml.audio import load_pcm, pcm_duration
from voxtrain_trainer.ml.decoder import SpeechDecoder
from voxtrain_trainer.ml.model_files import decoder_config
from voxtrain_trainer.ml.pairing import NamedFile, pair_recordings


def row(name: str, r: dict) -> str:
    parts = [f"{r['wer']:.3f}", *(str(r[k]) for k in ("substitutions", "deletions", "insertions", "reference_words"))]
    return f"| {name} | {' | '.join(parts)} |"


def decode_rtf(result: TrainingResult, pairs: list[AudioPair]) -> dict:
    """Decode seconds (wall and CPU) per audio second of a text-only run's model (its decoder.json) on ``pairs``."""
    config = decoder_config(result.model_dir)
    began = perf_counter()
    decoder = SpeechDecoder(config)
    load = perf_counter() - began
    audio = decoding = cpu = 0.0
    for pair in pairs:
        pcm = load_pcm(pair.audio)
        began, began_cpu = perf_counter(), process_time()
        decoder.decode(pcm)
        decoding += perf_counter() - began
        cpu += process_time() - began_cpu
        audio += pcm_duration(pcm)
    return {
        "rtf_wall": round(decoding / audio, 3),
        "rtf_cpu": round(cpu / audio, 3),  # what one free core would take: independent of the machine's load
        "audio_seconds": round(audio, 1),
        "load_seconds": round(load, 2),
    }


# The text-only model one step at a time: "today" is the text-only model as issue 13 was filed (espeak-ng G2P,
# domain LM alone); then each of the two text steps alone, then both (what runs ship now).
TEXT_STEPS = {
    # the steps before "current" decode with PocketSphinx's default search, as every model did before "wide"
    "today": (
        "as at issue filing: espeak-ng G2P, domain LM alone",
        {"g2p_method": "espeak", "general_words": 0, "decoder_search": "standard"},
    ),
    "g2p": ("learned G2P, domain LM alone", {"general_words": 0, "decoder_search": "standard"}),
    "mix": ("espeak-ng G2P, domain LM + general English", {"g2p_method": "espeak", "decoder_search": "standard"}),
    "standard": ("learned G2P + general English, PocketSphinx's default search", {"decoder_search": "standard"}),
    "current": ("learned G2P + general English, wide search (shipped)", {}),
    # a candidate: the commonest 30,000 pronounceable words of the base LM instead of 10,000
    "vocab30k": ("learned G2P + general English, 30,000 words", {"general_words": 30_000}),
    "vocab20k": ("learned G2P + general English, 20,000 words", {"general_words": 20_000}),
    # a candidate: twice the base-LM bigrams and trigrams mixed in
    "ngrams2x": (
        "learned G2P + general English, 400,000 bigrams and 200,000 trigrams",
        {"general_bigrams": 400_000, "general_trigrams": 200_000},
    ),
    # candidates: a larger share of the base LM (words and the n-grams among them)
    "general20k1m": (
        "learned G2P + general English, 20,000 words, 1M bigrams, 500,000 trigrams",
        {"general_words": 20_000, "general_bigrams": 1_000_000, "general_trigrams": 500_000},
    ),
    "general50k2m": (
        "learned G2P + general English, 50,000 words, 2M bigrams, 1M trigrams",
        {"general_words": 50_000, "general_bigrams": 2_000_000, "general_trigrams": 1_000_000},
    ),
    "generalall": (
        "learned G2P + general English, the whole base LM (every pronounceable word and n-gram among them)",
        {"general_words": 1_000_000, "general_bigrams": 100_000_000, "general_trigrams": 100_000_000},
    ),
    # candidates: a fixed domain weight instead of the cross-validated one (more folds than sentences: no tuning)
    **{
        f"weight{lam}": (
            f"learned G2P + general English, domain weight fixed at {lam}",
            {"default_domain_weight": lam, "general_tuning_folds": 1_000_000},
        )
        for lam in (0.05, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    },
}
DEFAULT_STEPS = ("today", "g2p", "mix", "standard", "current")
RTF_STEPS = ("today", "current", "vocab30k")


def bench_domain(
    name: str,
    root: Path,
    with_audio_run: bool = True,
    steps: Sequence[str] = DEFAULT_STEPS,
    test_on_adaptation: bool = False,
    audio_settings: TrainingSettings | None = None,
) -> dict:
    text, adapt, test = {**DOMAINS, **DEV_AUDIO_DOMAINS}[name]
    if test_on_adaptation:  # a second held-out set for text-only runs (they never see the adaptation audio)
        test, with_audio_run = adapt[::2], False
    directory = root / name
    directory.mkdir(parents=True)
    notes = directory / "text.txt"
    notes.write_text(text, encoding="utf-8")
    test_pairs = [AudioPair(p, s) for p, s in spoken(test, directory / "test", "t", 1)]
    pairing = None
    if name == "aviation":
        recordings = long_recordings(adapt, directory / "recordings", 8)
        paired = pair_recordings(
            [NamedFile(w.name, w) for w, _ in recordings], [NamedFile(v.name, v) for _, v in recordings]
        )
        train_pairs, pairing = paired.train_pairs, paired.report()
    else:
        train_pairs = [AudioPair(p, s) for p, s in spoken(adapt, directory / "adapt", "a", 0)]
    text_inputs = TrainingInputs(transcripts=[TextFile(notes)], test_pairs=test_pairs)
    runs: dict[str, TrainingResult] = {}
    seconds: dict[str, float] = {}
    for step in steps:
        began = perf_counter()
        runs[step] = run_training(text_inputs, directory / f"run-{step}", TrainingSettings(**TEXT_STEPS[step][1]))
        seconds[step] = round(perf_counter() - began, 1)
    out: dict = {
        "domain": name,
        "text_only": {step: r.metrics["evaluation"]["wer"]["text_only"] for step, r in runs.items()},
        "general_english": {step: r.metrics["lm"]["general_english"] for step, r in runs.items()},
        "g2p": {step: _g2p_words(r) for step, r in runs.items()},
        "seconds": seconds,
        "examples": {
            step: [(e["reference"], e["text_only"]) for e in r.metrics["evaluation"]["wer"]["examples"][:12]]
            for step, r in runs.items()
        },
    }
    if runs:
        out["base"] = next(iter(runs.values())).metrics["evaluation"]["wer"]["base"]
    if "today" in runs and "current" in runs:
        out["decode_rtf"] = {
            "today": decode_rtf(runs["today"], test_pairs),
            "current": decode_rtf(runs["current"], test_pairs),
        }
    if with_audio_run:
        began = perf_counter()
        with_audio = run_training(
            TrainingInputs(
                transcripts=[TextFile(notes)], train_pairs=train_pairs, test_pairs=test_pairs, pairing=pairing
            ),
            directory / "run-audio",
            audio_settings or TrainingSettings(),
        )
        seconds["audio"] = round(perf_counter() - began, 1)
        w_audio = with_audio.metrics["evaluation"]["wer"]
        out.update(
            {
                "base": w_audio["base"],
                "audio_run_text_only": w_audio["text_only"],
                "audio_run_text_audio": w_audio.get("text_audio"),
                "audio_run_general_english": with_audio.metrics["lm"]["general_english"],
                "audio_run_decoder": {k: with_audio.metrics["decoder"][k] for k in ("lw", "wip")},
                "audio_run_adapted_tuning": with_audio.metrics["decoder"]["adapted_tuning"],
                "acoustic": with_audio.metrics["acoustic"],
                "pairing": with_audio.metrics["data"]["pairing"],
                "train_audio_seconds": with_audio.metrics["data"]["train_audio_seconds"],
            }
        )
    return out


def _g2p_words(result: TrainingResult) -> dict:
    lexicon = result.metrics["lexicon"]
    return {"method": lexicon["g2p"]["method"], "from_g2p": lexicon["from_g2p"], "examples": lexicon["g2p_examples"]}


def print_domain(r: dict) -> None:
    print(f"\n## {r['domain']}")
    print("| model | WER | S | D | I | words |\n|---|---|---|---|---|---|")
    print(row("base", r["base"]))
    for step, result in r["text_only"].items():
        print(row(f"text only, {TEXT_STEPS[step][0]}", result))
    if r.get("audio_run_text_audio"):
        print(
            row("text + audio run: text-only model (LM weight and lw/wip tuned on the audio)", r["audio_run_text_only"])
        )
        print(row(f"text + audio run: adapted acoustic model ({r['acoustic']['method']})", r["audio_run_text_audio"]))
    t = r["text_only"]
    if "today" in t:
        # relative WER reduction vs today's text-only model (negative = fewer errors)
        for step in ("g2p", "mix", "standard", "current", "vocab30k"):
            if step in t:
                print(f"relative WER change vs today, {step}: {_relative(t['today'], t[step])}")
    if "current" in t and r.get("audio_run_text_audio"):
        print(
            "relative WER change, text + audio vs current text only:",
            _relative(t["current"], r["audio_run_text_audio"]),
        )
    print(f"G2P: {json.dumps(r['g2p'])}")
    print(f"general English: {json.dumps(r['general_english'])}")
    print(f"durations: {r['seconds']}; decode RTF: {r.get('decode_rtf')}")
    if r.get("acoustic"):
        print(f"adaptation: {r['acoustic']['reason']}; dev WER {r['acoustic']['dev_wer']}; pairing {r['pairing']}")
        print(f"decoder weights: text only {r['audio_run_decoder']}; adapted {_chosen(r['audio_run_adapted_tuning'])}")


def _chosen(tuning: dict | None) -> str:
    if not tuning:
        return "none"
    measured = f"WER {tuning['wer']:.3f} on {tuning['words']} words, tolerance {tuning['tolerance']}"
    return f"lw {tuning['lw']}, wip {tuning['wip']} ({measured})"


def _relative(before: dict, after: dict) -> str:
    return f"{after['wer'] / before['wer'] - 1:+.1%}" if before["wer"] else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None, help="write the JSON results here")
    parser.add_argument("--domains", default="aviation,medical")
    parser.add_argument(
        "--steps", default=",".join(DEFAULT_STEPS), help=f"text-only steps to run ({', '.join(TEXT_STEPS)})"
    )
    parser.add_argument("--no-audio", action="store_true", help="skip the text + audio run")
    parser.add_argument(
        "--test-on-adaptation", action="store_true", help="text-only runs tested on the adaptation sentences instead"
    )
    parser.add_argument(
        "--tuning-tolerance",
        type=float,
        default=None,
        help="the text + audio run's tuning_tolerance_se (see ml/tuning)",
    )
    parser.add_argument("--audio-search", default=None, help="the text + audio run's decoder_search (see ml/types)")
    args = parser.parse_args()
    audio_options = {"tuning_tolerance_se": args.tuning_tolerance, "decoder_search": args.audio_search}
    audio_settings = TrainingSettings(**{k: v for k, v in audio_options.items() if v is not None})
    root = Path(tempfile.mkdtemp(prefix="bench-acoustic-"))
    steps = [s for s in args.steps.split(",") if s]
    try:
        results = [
            bench_domain(d, root, not args.no_audio, steps, args.test_on_adaptation, audio_settings)
            for d in args.domains.split(",")
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for r in results:
        print_domain(r)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
