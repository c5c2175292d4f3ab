"""Benchmark: base vs text-only vs text + audio (adapted acoustic model) WER on two held-out domains.

    uv run --frozen --no-sync python -m bench.trainer.bench_acoustic [--out DIR] [--domains aviation,medical]

For each domain (bench/trainer/acoustic_domains.py) espeak-ng speaks the adaptation and the test
sentences with a rotation of voices and speeds (test and adaptation recordings are disjoint: other
sentences, other files). The aviation adaptation audio is four long recordings with a VTT
transcript each, paired by base name and cut by cue times like a customer upload. Two runs per
domain: the domain LM alone as before general-English mixing (no audio), text only (no audio) and
text + audio; the table prints the base model, those runs, and the text + audio run's text-only
and adapted models, all on the same test audio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from time import perf_counter, process_time

from bench.trainer.acoustic_domains import DOMAINS
from tests.trainer.recordings import long_recordings, spoken
from voxtrain_trainer.ml import AudioPair, TextFile, TrainingInputs, TrainingResult, TrainingSettings, run_training
from voxtrain_trainer.ml.audio import load_pcm, pcm_duration
from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.decoder import DecoderConfig, SpeechDecoder
from voxtrain_trainer.ml.pairing import NamedFile, pair_recordings


def row(name: str, r: dict) -> str:
    parts = [f"{r['wer']:.3f}", *(str(r[k]) for k in ("substitutions", "deletions", "insertions", "reference_words"))]
    return f"| {name} | {' | '.join(parts)} |"


def decode_rtf(result: TrainingResult, pairs: list[AudioPair]) -> dict:
    """Decode seconds (wall and CPU) per audio second of a run's LM + lexicon (base acoustic model) on ``pairs``."""
    config = DecoderConfig(result.artifacts["lm_bin"], result.artifacts["lexicon"], base_model_files().hmm)
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


def bench_domain(name: str, root: Path, with_audio_run: bool = True) -> dict:
    text, adapt, test = DOMAINS[name]
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
    settings = TrainingSettings()
    text_inputs = TrainingInputs(transcripts=[TextFile(notes)], test_pairs=test_pairs)
    today = run_training(text_inputs, directory / "run-today", TrainingSettings(general_words=0))
    began = perf_counter()
    text_only = run_training(
        TrainingInputs(transcripts=[TextFile(notes)], test_pairs=test_pairs), directory / "run-text", settings
    )
    t_text = perf_counter() - began
    began = perf_counter()
    with_audio = text_only
    if with_audio_run:
        with_audio = run_training(
            TrainingInputs(
                transcripts=[TextFile(notes)], train_pairs=train_pairs, test_pairs=test_pairs, pairing=pairing
            ),
            directory / "run-audio",
            settings,
        )
    t_audio = perf_counter() - began
    w_text = text_only.metrics["evaluation"]["wer"]
    w_audio = with_audio.metrics["evaluation"]["wer"]
    return {
        "domain": name,
        "base": w_text["base"],
        "today_text_only": today.metrics["evaluation"]["wer"]["text_only"],
        "general_english": {
            "text_only_run": text_only.metrics["lm"]["general_english"],
            "text_audio_run": with_audio.metrics["lm"]["general_english"],
        },
        "decode_rtf": {"domain_lm_alone": decode_rtf(today, test_pairs), "mixed_lm": decode_rtf(text_only, test_pairs)},
        "text_only_run": w_text["text_only"],
        "audio_run_text_only": w_audio["text_only"],
        "audio_run_text_audio": w_audio.get("text_audio"),
        "acoustic": with_audio.metrics["acoustic"],
        "pairing": with_audio.metrics["data"]["pairing"],
        "train_audio_seconds": with_audio.metrics["data"]["train_audio_seconds"],
        "seconds": {"text_only_run": round(t_text, 1), "text_audio_run": round(t_audio, 1)},
        "examples": w_audio["examples"][:6],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None, help="write the JSON results here")
    parser.add_argument("--domains", default="aviation,medical")
    parser.add_argument("--no-audio", action="store_true", help="skip the audio (the text + audio run trains on text)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-acoustic-"))
    try:
        results = [bench_domain(d, root, not args.no_audio) for d in args.domains.split(",")]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for r in results:
        print(
            f"\n## {r['domain']} ({r['train_audio_seconds']} s adaptation audio; adaptation: {r['acoustic']['method']})"
        )
        print(f"{r['acoustic']['reason']}; dev WER {r['acoustic']['dev_wer']}")
        print("| model | WER | S | D | I | words |\n|---|---|---|---|---|---|")
        print(row("base", r["base"]))
        print(row("text only, domain LM alone (before this change)", r["today_text_only"]))
        print(row("text only (run without audio)", r["text_only_run"]))
        print(row("text only (LM + weights tuned on the audio)", r["audio_run_text_only"]))
        if r["audio_run_text_audio"]:
            print(row("text + audio (adapted acoustic model)", r["audio_run_text_audio"]))
            gain = 1 - r["audio_run_text_audio"]["wer"] / r["text_only_run"]["wer"]
            print(f"relative gain of audio vs text-only run: {gain:.1%}")
        text_gain = 1 - r["text_only_run"]["wer"] / r["today_text_only"]["wer"]
        print(f"relative gain of the text-only run vs the domain LM alone: {text_gain:.1%}")
        print(f"general English: {r['general_english']}")
        print(f"decode real-time factor (base acoustic model): {r['decode_rtf']}")
        print(f"durations: {r['seconds']}; pairing: {r['pairing']}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
