"""Measure the constants of the training ETA (voxtrain_trainer.eta.Calibration) on this machine.

    uv run --frozen --no-sync python -m bench.trainer.calibrate_eta [--train 12] [--test 4]

Trains one model from the medical-domain text, ``--train`` spoken train pairs (tuning and acoustic
adaptation) and ``--test`` spoken test pairs, in this process, and prints a JSON line: the time of
``eta.reference_work()`` before and after (the machine's speed at the time: stage times divided by it are
comparable between a quiet and a busy machine), the workload, each stage's seconds, what the calibration
predicts for that workload and the ratio measured/predicted. Copy measured values into ``Calibration`` with
``reference_seconds`` = the mean reference time of the same run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tests.trainer.medical_domain import ADAPTATION_SENTENCES, TEST_SENTENCES, TRAINING_TEXT, speak_all
from voxtrain_trainer.audio_probe import duration_seconds
from voxtrain_trainer.eta import CALIBRATION, Workload, reference_work
from voxtrain_trainer.ml import AudioPair, TextFile, TrainingInputs, run_training


def timed_reference() -> float:
    began = time.perf_counter()
    reference_work()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=12, help="spoken train pairs (at most 28)")
    parser.add_argument("--test", type=int, default=4, help="spoken test pairs (at most 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "notes.txt").write_text(TRAINING_TEXT, encoding="utf-8")
        train, test = ADAPTATION_SENTENCES[: args.train], TEST_SENTENCES[: args.test]
        train_audio, test_audio = speak_all(train, d / "train", "train"), speak_all(test, d / "test", "test")
        inputs = TrainingInputs(
            transcripts=[TextFile(d / "notes.txt")],
            train_pairs=[AudioPair(p, s) for p, s in zip(train_audio, train, strict=True)],
            test_pairs=[AudioPair(p, s) for p, s in zip(test_audio, test, strict=True)],
        )
        workload = Workload(
            text_words=len(TRAINING_TEXT.split()),
            train_pairs=len(train_audio),
            train_audio_seconds=sum(duration_seconds(p) for p in train_audio),
            test_pairs=len(test_audio),
            test_audio_seconds=sum(duration_seconds(p) for p in test_audio),
        )
        before = timed_reference()
        result = run_training(inputs, d / "work")
        after = timed_reference()
    reference = (before + after) / 2
    measured = result.metrics["durations"]
    predicted = CALIBRATION.expected(workload)
    scale = reference / CALIBRATION.reference_seconds
    at_speed = {k: predicted[k] * scale for k in measured}
    print(
        json.dumps(
            {
                "reference_seconds": [round(before, 3), round(after, 3)],
                "workload": vars(workload),
                "acoustic": result.metrics["acoustic"]["method"],
                "measured": measured,
                "predicted_at_this_speed": {k: round(v, 2) for k, v in at_speed.items()},
                "ratio": {k: round(v / at_speed[k], 2) if at_speed[k] else None for k, v in measured.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
