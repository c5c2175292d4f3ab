"""Peak memory of a whole training run at two input sizes (1x and 8x): does it grow with the input?

Two kinds of run, each size in its own child process (its ru_maxrss, and the largest of the tools it ran:
sphinxtrain's, espeak-ng), through `run_training` as the worker calls it:

- text only: a transcript (.txt) of Zipf-distributed sentences over 20,000 words of the base dictionary,
  and the same text again as .vtt cues (both are read as streams);
- audio pairs: a long recording (pink noise: decoding cost and memory do not depend on what is said) with
  a .vtt cue every 20 s, cut into pairs, plus a manifest-style un-cut pair of the whole recording (skipped
  by its container length, never decoded), next to a small transcript. Acoustic adaptation is on.

The baseline is the input itself: a path that held its input would grow by the input ratio (8x); the printed
ratio is peak RSS at 8x over peak RSS at 1x, for the run and for each stage (resident set sampled every
50 ms). The LM estimator's own budget is a setting (2 GB) that it fills more of as the corpus grows
(bench_lm.py measures it alone), and mixing with general English reads the estimated model into memory,
so the estimate_lm stage of text runs grows with the model; the stages that read text and audio should not.

    uv run --frozen --no-sync python bench/trainer/bench_pipeline_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import json, resource, sys, threading, time
from pathlib import Path
from voxtrain_trainer.ml import TrainingSettings, run_training
from voxtrain_trainer.ml.types import AudioPair, TextFile, TrainingInputs
from voxtrain_trainer.ml.pairing import NamedFile, pair_recordings
here, kind = Path(sys.argv[1]), sys.argv[2]
stage, stages = ["start"], {}

def sample():  # resident set per stage, every 50 ms (ru_maxrss only gives the run's peak)
    while True:
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
        stages[stage[0]] = round(max(stages.get(stage[0], 0.0), rss), 1)
        time.sleep(0.05)

threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
settings = TrainingSettings(max_tuning_decodes=20)
if kind == "text":
    inputs = TrainingInputs(transcripts=[TextFile(here / "notes.txt"), TextFile(here / "notes.vtt")])
else:
    paired = pair_recordings([NamedFile("long.wav", here / "long.wav")], [NamedFile("long.vtt", here / "long.vtt")])
    uncut = AudioPair(here / "long.wav", "the whole recording as one pair", name="uncut")
    inputs = TrainingInputs(transcripts=[TextFile(here / "notes.txt")], train_pairs=[uncut, *paired.train_pairs],
                            pairing=paired.report())
result = run_training(inputs, here / "run", settings, lambda name, percent: stage.__setitem__(0, name))
data = result.metrics["data"]
print(json.dumps({
    "seconds": round(time.perf_counter() - t, 1),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "tools_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    "training_words": data["training_words"],
    "train_pairs": data["train_pairs"],
    "train_audio_seconds": data["train_audio_seconds"],
    "uncut_skipped": any(s.startswith("uncut:") for s in data["audio_skipped"]),
    "adaptation": result.metrics["acoustic"]["method"],
    "stage_peak_rss_mb": stages,
}))
"""


def _stamp(seconds: float) -> str:
    return f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}"


def _vocabulary(size: int) -> list[str]:
    from voxtrain_trainer.ml.base_model import base_model_files

    words: list[str] = []
    with base_model_files().dictionary.open(encoding="utf-8") as lines:
        for line in lines:
            word = line.split(" ", 1)[0]
            if "(" not in word and word.isalpha():
                words.append(word)
    return words[:: max(len(words) // size, 1)][:size]


def _text(here: Path, words: int, vocabulary: list[str]) -> None:
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, len(vocabulary) + 1) ** 1.05
    ids = rng.choice(len(vocabulary), size=words, p=weights / weights.sum())
    vocab = np.array(vocabulary)
    sentences = [" ".join(vocab[ids[i : i + 12]].tolist()) + "." for i in range(0, words, 12)]
    half = len(sentences) // 2
    (here / "notes.txt").write_text("\n".join(sentences[:half]) + "\n", encoding="utf-8")
    with (here / "notes.vtt").open("w", encoding="utf-8") as out:
        out.write("WEBVTT\n\n")
        for n, sentence in enumerate(sentences[half:]):
            out.write(f"{_stamp(n * 4.0)} --> {_stamp(n * 4.0 + 3.5)}\n{sentence}\n\n")


def _audio(here: Path, minutes: float, vocabulary: list[str]) -> None:
    seconds = minutes * 60
    sox = ["sox", "-R", "-n", "-r", "16000", "-c", "1", "-b", "16", str(here / "long.wav")]
    subprocess.run([*sox, "synth", str(seconds), "pinknoise", "vol", "0.3"], check=True)
    with (here / "long.vtt").open("w", encoding="utf-8") as out:
        out.write("WEBVTT\n\n")
        for n in range(int(seconds // 20)):
            words = " ".join(vocabulary[(n * 7 + k) % 200] for k in range(6))
            out.write(f"{_stamp(n * 20.0 + 5)} --> {_stamp(n * 20.0 + 8)}\n{words}\n\n")
    _text(here, 20_000, vocabulary)


def _run(here: Path, kind: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(here), kind], capture_output=True, text=True, check=False, timeout=1800
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{done.stderr[-3000:]}")
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    result["input_mb"] = round(sum(p.stat().st_size for p in here.iterdir() if p.is_file()) / 2**20, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller text (25k words at 1x)")
    args = parser.parse_args()
    words, minutes = (25_000, 2.5) if args.quick else (50_000, 2.5)  # 2.5 min: 7 cues, 6 train pairs: adaptation runs
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average at start: {' '.join(load)}")
    vocabulary = _vocabulary(20_000)
    rows: dict[str, list[dict]] = {"text": [], "audio": []}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        for scale in (1, 8):
            for kind in ("text", "audio"):
                here = Path(tmp) / f"{kind}-{scale}x"
                here.mkdir()
                began = time.perf_counter()
                if kind == "text":
                    _text(here, words * scale, vocabulary)
                else:
                    _audio(here, minutes * scale, vocabulary)
                result = {"scale": scale, **_run(here, kind), "wall_seconds": round(time.perf_counter() - began, 1)}
                rows[kind].append(result)
                print(json.dumps({"kind": kind, **result}))
    for kind, (one, eight) in rows.items():
        print(
            f"{kind}: input {one['input_mb']} MB -> {eight['input_mb']} MB "
            f"(x{eight['input_mb'] / one['input_mb']:.1f}); peak RSS {one['peak_rss_mb']} MB -> "
            f"{eight['peak_rss_mb']} MB (x{eight['peak_rss_mb'] / one['peak_rss_mb']:.2f}); "
            f"tools' peak {one['tools_peak_rss_mb']} -> {eight['tools_peak_rss_mb']} MB"
        )
        for name, peak in eight["stage_peak_rss_mb"].items():
            before = one["stage_peak_rss_mb"].get(name)
            if before:
                print(f"  {name}: {before} MB -> {peak} MB (x{peak / before:.2f})")
    print(f"load average at end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
