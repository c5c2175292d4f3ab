"""The e2e test's set, without the services: which part of the text + audio model makes its held-out WER.

    uv run --frozen --no-sync python -m bench.trainer.bench_e2e_set --out DIR [--models DIR ...]

Trains on exactly the inputs of tests/e2e/test_acoustic_adaptation.py (the medical notes and 24 adaptation
sentences in three VTT-cut recordings) with the pipeline the trainer service runs, then decodes the test's
ten held-out utterances (never trained or tuned on) with every acoustic candidate the adaptation step
compares (none, MLLR, MAP, MLLR+MAP: rebuilt from the same pairs and split, SphinxTrain is deterministic)
under the shipped LM and weights, and under the LM and weights of each other model directory given
(``--models``: e.g. one trained by an older commit with ``bench.trainer.bench_e2e_set --train-only``),
so the shipped choice, the adaptation candidates and the LM can be told apart.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from tests.e2e.test_acoustic_adaptation import ADAPT, HELD_OUT
from tests.trainer.medical_domain import TRAINING_TEXT
from tests.trainer.recordings import long_recordings, spoken
from voxtrain_trainer.ml import TextFile, TrainingInputs, TrainingSettings, run_training
from voxtrain_trainer.ml.acoustic.adapt import AdaptationReport, _candidates, _write_corpus
from voxtrain_trainer.ml.acoustic.sphinxtrain import SphinxTools
from voxtrain_trainer.ml.acoustic.utterances import store_pairs
from voxtrain_trainer.ml.audio import SAMPLE_RATE, load_pcm
from voxtrain_trainer.ml.decoder import AcousticFiles, DecoderConfig, SpeechDecoder
from voxtrain_trainer.ml.lexicon import read_dictionary
from voxtrain_trainer.ml.model_files import decoder_config
from voxtrain_trainer.ml.pairing import NamedFile, pair_recordings
from voxtrain_trainer.ml.pipeline import _adaptation_split
from voxtrain_trainer.ml.prepare import prepare_data
from voxtrain_trainer.ml.wer import word_error_rate


def inputs(directory: Path) -> TrainingInputs:
    """The e2e test's upload: notes and three long recordings with VTT transcripts, paired by base name."""
    directory.mkdir(parents=True, exist_ok=True)
    notes = directory / "notes.txt"
    notes.write_text(TRAINING_TEXT, encoding="utf-8")
    recordings = long_recordings(ADAPT, directory / "recordings", 8)
    paired = pair_recordings(
        [NamedFile(w.name, w) for w, _ in recordings], [NamedFile(v.name, v) for _, v in recordings]
    )
    return TrainingInputs(transcripts=[TextFile(notes)], train_pairs=paired.train_pairs, pairing=paired.report())


def candidates(data_inputs: TrainingInputs, model_dir: Path, work: Path) -> dict[str, AcousticFiles | None]:
    """Every adaptation the run compared, rebuilt from its split of the train pairs."""
    settings = TrainingSettings()
    data = prepare_data(data_inputs, settings.heldout_fraction, work / "text")
    utterances, _ = store_pairs(data.train_pairs, work / "audio")
    train, _ = _adaptation_split(utterances, settings)
    tools = SphinxTools(work / "logs")
    corpus = work / "corpus"
    report = AdaptationReport()
    _write_corpus(train, read_dictionary(model_dir / "lexicon.dict"), corpus, report)
    base = tools.prepare_base(decoder_config(model_dir).hmm, work / "mixture_weights", work / "mdef.txt")
    tools.features(base, corpus / "fileids", corpus, SAMPLE_RATE)
    found: dict[str, AcousticFiles | None] = {"none": None}
    found.update(_candidates(tools, base, corpus, work, report.seconds >= settings.map_min_seconds))
    return found


def held_out_wer(config: DecoderConfig, held: list[tuple[Path, str]]) -> dict:
    decoder = SpeechDecoder(config)
    hyps = [decoder.decode(load_pcm(path)).text for path, _ in held]
    result = word_error_rate([text for _, text in held], hyps).to_dict()
    return {k: result[k] for k in ("wer", "substitutions", "deletions", "insertions")} | {"hyps": hyps}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True, help="keeps the trained model directories and results")
    parser.add_argument("--models", type=Path, nargs="*", default=[], help="other model directories (their LM)")
    parser.add_argument("--train-only", action="store_true", help="train into --out/model and stop")
    parser.add_argument("--settings", default="{}", help="TrainingSettings fields as JSON")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data_inputs = inputs(args.out / "inputs")
    run_dir = args.out / "run"
    if not (run_dir / "model" / "decoder.json").exists():
        result = run_training(data_inputs, run_dir, TrainingSettings(**json.loads(args.settings)))
        metrics = result.metrics
    else:
        metrics = json.loads((run_dir / "model" / "metrics.json").read_text())
    summary = {
        "acoustic": metrics["acoustic"],
        "decoder": {k: metrics["decoder"][k] for k in ("lw", "wip")},
        "general_english": metrics["lm"]["general_english"],
        "in_run_wer": {k: metrics["evaluation"]["wer"][k]["wer"] for k in metrics["evaluation"]["wer"]["models"]},
    }
    print(json.dumps(summary, indent=1))
    if args.train_only:
        return
    held = spoken(HELD_OUT, args.out / "held-out", "h", offset=1)
    shipped = decoder_config(run_dir / "model")
    results: dict[str, dict] = {"shipped": held_out_wer(shipped, held)}
    work = args.out / "candidates"
    shutil.rmtree(work, ignore_errors=True)
    found = candidates(data_inputs, run_dir / "model", work)
    lms = {"this run's LM": shipped, **{f"LM of {m}": decoder_config(m) for m in args.models}}
    for lm_name, config in lms.items():
        for name, files in found.items():
            results[f"{lm_name} (lw {config.lw}, wip {config.wip}) + AM {name}"] = held_out_wer(
                config.with_acoustic(files), held
            )
    for name, r in results.items():
        print(f"{name}: WER {r['wer']:.3f} (S {r['substitutions']}, D {r['deletions']}, I {r['insertions']})")
    (args.out / "results.json").write_text(json.dumps({"summary": summary, "held_out": results}, indent=1))


if __name__ == "__main__":
    main()
