"""The training run: text -> lexicon -> Kneser-Ney LM -> tuned weights -> base vs custom metrics.

Contract of :func:`run_training`: synchronous and CPU-only; writes ``lm.arpa``, ``lm.bin``,
``lexicon.dict``, ``decoder.json``, ``metrics.json`` and ``model_card.md`` into
``work_dir / "model"`` and returns their paths with the metrics. ``progress(stage, percent)`` is
called at the start and end of every stage (and within long ones) with a percent that never
goes down. Failures raise :class:`TrainingError`: ``no_training_text`` when no usable word is
left after normalisation and lexicon building, ``stage_failed`` (with ``stage``) otherwise. An
exception raised by ``progress`` itself (e.g. to cancel a run) propagates unchanged.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter

from voxtrain_trainer.ml import model_files
from voxtrain_trainer.ml.audio import load_pcm
from voxtrain_trainer.ml.backoff_lm import BackoffLM
from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.decoder import DecoderConfig
from voxtrain_trainer.ml.encoding import SPECIALS, EncodedText, encode_sentences, restrict_vocabulary
from voxtrain_trainer.ml.errors import TrainingError
from voxtrain_trainer.ml.evaluation import compare_perplexity, compare_wer
from voxtrain_trainer.ml.g2p import espeak_pronunciations
from voxtrain_trainer.ml.kneser_ney import Discounts
from voxtrain_trainer.ml.lexicon import build_lexicon, load_base_dictionary, write_dictionary
from voxtrain_trainer.ml.lm_binary import convert_to_binary
from voxtrain_trainer.ml.lm_external import encoded_sentences, estimate_arpa
from voxtrain_trainer.ml.model_card import render_model_card
from voxtrain_trainer.ml.prepare import PreparedData, prepare_data
from voxtrain_trainer.ml.tuning import DEFAULT_LW, DEFAULT_WIP, tune_weights
from voxtrain_trainer.ml.types import AudioPair, ProgressCallback, TrainingInputs, TrainingResult, TrainingSettings

STAGES = {
    "prepare_text": ("reading and normalising the text", 0, 10),
    "lexicon": ("building the pronunciation lexicon", 10, 20),
    "estimate_lm": ("estimating the language model", 20, 40),
    "tune": ("tuning the decoder weights", 40, 65),
    "evaluate": ("evaluating base and custom model", 65, 95),
    "report": ("writing metrics and model card", 95, 100),
}


class _Stages:
    """Runs stages: progress, timing, and turning unexpected errors into ``stage_failed``."""

    def __init__(self, progress: ProgressCallback) -> None:
        self._progress = progress
        self._progress_error: BaseException | None = None
        self.durations: dict[str, float] = {}

    def report(self, stage: str, percent: float) -> None:
        try:
            self._progress(stage, round(percent, 1))
        except BaseException as exc:
            self._progress_error = exc
            raise

    @contextmanager
    def run(self, stage: str) -> Iterator[Callable[[float], None]]:
        what, start, end = STAGES[stage]
        self.report(stage, start)
        began = perf_counter()
        try:
            yield lambda fraction: self.report(stage, start + (end - start) * min(max(fraction, 0.0), 1.0))
        except TrainingError:
            raise
        except Exception as exc:
            if exc is self._progress_error:
                raise
            raise TrainingError(TrainingError.STAGE_FAILED, f"{what} failed: {exc}", stage=stage) from exc
        finally:
            self.durations[stage] = round(perf_counter() - began, 3)
        self.report(stage, end)


def _write_lm(
    encoded: EncodedText,
    settings: TrainingSettings,
    directory: Path,
    progress: Callable[[float], None] | None = None,
) -> tuple[BackoffLM, list[Discounts], list[int], Path]:
    """Estimate (out of core, in ``settings.lm_memory_mb``); write ``lm.arpa`` and ``lm.bin`` into ``directory``.

    Returns the model, discounts, n-gram counts and bin path; ``lm.metadata["pruning"]`` says what
    the vocabulary cap and count pruning removed.
    """
    estimated = estimate_arpa(
        encoded_sentences(encoded),
        directory / model_files.LM_FILE,
        settings.order,
        memory_mb=settings.lm_memory_mb,
        work_dir=directory,
        max_vocabulary=settings.lm_max_vocabulary,
        prune_thresholds=settings.lm_prune_thresholds,
        automatic_limits=True,
        keep_model=True,
        fallback=settings.fallback_discounts,
        progress=progress,
    )
    assert estimated.model is not None  # keep_model=True
    lm, discounts, counts = estimated.model, estimated.discounts, estimated.ngram_counts
    lm.metadata["pruning"] = estimated.pruning.to_dict()
    bin_path = convert_to_binary(directory / model_files.LM_FILE, directory / model_files.LM_BIN_FILE)
    return lm, discounts, counts, bin_path


def _tuning_config(
    data: PreparedData, vocabulary: set[str], final: DecoderConfig, settings: TrainingSettings, directory: Path
) -> tuple[DecoderConfig, str]:
    """The decoder to tune with: an LM without the train pairs' own text when there is other text.

    Tuning on utterances whose transcripts are in the LM rewards a high LM weight (the LM knows
    every sentence); test audio is never in the LM, so that bias would carry over.
    """
    pair_text = set(data.pair_sentences)
    other = [s for s in data.training_sentences if s not in pair_text]
    if not other:
        return final, "full LM (the train pairs are the only text; their transcripts are in it)"
    encoded = restrict_vocabulary(encode_sentences(other), vocabulary)
    directory.mkdir(exist_ok=True)
    _, _, _, bin_path = _write_lm(encoded, settings, directory)
    return DecoderConfig(bin_path, final.dictionary, final.hmm), "LM without the train pairs' transcripts"


def _load_audio(pairs: list[AudioPair], progress: Callable[[float], None]) -> list[tuple[str, bytes, str]]:
    out = []
    for i, pair in enumerate(pairs):
        out.append((pair.label, load_pcm(pair.audio, pair.offset, pair.duration), pair.text))
        progress((i + 1) / len(pairs))
    return out


def run_training(
    inputs: TrainingInputs,
    work_dir: Path,
    settings: TrainingSettings | None = None,
    progress: ProgressCallback = lambda stage, percent: None,
) -> TrainingResult:
    """Train and evaluate a custom model from local files (see module contract)."""
    settings = settings or TrainingSettings()
    model_dir = Path(work_dir) / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    stages = _Stages(progress)

    with stages.run("prepare_text"):
        data = prepare_data(inputs, settings.heldout_fraction)
        encoded = encode_sentences(data.training_sentences)
    if encoded.n_words == 0:
        raise TrainingError(
            TrainingError.NO_TRAINING_TEXT,
            "There is no training text: the transcripts and manifest texts contain no words after "
            "normalisation. Add a TRANSCRIPT dataset (.txt, .vtt or .srt) or manifest lines with text.",
        )

    with stages.run("lexicon"):
        base_dict = load_base_dictionary(base_model_files().dictionary)
        lexicon = build_lexicon(
            encoded.vocab[len(SPECIALS) :], base_dict, lambda words: espeak_pronunciations(words, settings.g2p_voice)
        )
        encoded = restrict_vocabulary(encoded, set(lexicon.entries))
    if not lexicon.entries:
        raise TrainingError(
            TrainingError.NO_TRAINING_TEXT,
            "No word of the training text could be given a pronunciation (base dictionary or "
            f"espeak-ng); e.g. {', '.join(lexicon.unmapped[:5])}. The model is English: check the text language.",
        )

    with stages.run("estimate_lm") as step:
        lm, discounts, ngram_counts, bin_path = _write_lm(encoded, settings, model_dir, step)
        lm_path = model_dir / model_files.LM_FILE
        dict_path = model_dir / model_files.DICT_FILE
        write_dictionary(lexicon.entries, dict_path)
    custom = DecoderConfig(lm=bin_path, dictionary=dict_path, hmm=base_model_files().hmm)

    tuning = tuning_lm = None
    with stages.run("tune") as step:
        if data.train_pairs:
            utterances = _load_audio(data.train_pairs, lambda f: step(0.1 * f))
            scratch = Path(work_dir) / "tuning-lm"
            config, tuning_lm = _tuning_config(data, set(lexicon.entries), custom, settings, scratch)
            step(0.2)
            tuning = tune_weights(
                config,
                [(pcm, text) for _, pcm, text in utterances],
                settings.lw_grid,
                settings.wip_grid,
                settings.max_tuning_decodes,
                lambda f: step(0.2 + 0.8 * f),
            )
            shutil.rmtree(scratch, ignore_errors=True)
    lw, wip = (tuning.lw, tuning.wip) if tuning else (DEFAULT_LW, DEFAULT_WIP)
    custom = custom.with_weights(lw, wip)

    with stages.run("evaluate") as step:
        wer = None
        if data.test_pairs:
            test_audio = _load_audio(data.test_pairs, lambda f: step(0.1 * f))
            wer = compare_wer(test_audio, DecoderConfig.base(), custom, progress=lambda f: step(0.1 + 0.8 * f))
        ppl = (
            compare_perplexity(lm, data.test_sentences, settings.max_perplexity_words) if data.test_sentences else None
        )

    with stages.run("report"):
        metrics = {
            "heldout": data.heldout_text or data.heldout_audio,
            "heldout_text": data.heldout_text,
            "heldout_audio": data.heldout_audio,
            "data": {
                "transcript_files": len(inputs.transcripts),
                "test_text_files": len(inputs.test_texts),
                "train_pairs": len(data.train_pairs),
                "test_pairs": len(data.test_pairs),
                "training_sentences": encoded.n_sentences,
                "training_words": encoded.n_words,
                "test_sentences": len(data.test_sentences),
                "notes": data.notes,
            },
            "lm": {
                "order": lm.order,
                "requested_order": settings.order,
                "smoothing": "interpolated modified Kneser-Ney",
                "ngram_counts": ngram_counts,
                "vocabulary_size": lm.vocab_size,
                "discounts": [d.to_dict() for d in discounts],
                "discount_fallback": any(d.fallback for d in discounts),
                "pruning": lm.metadata["pruning"],
            },
            "lexicon": {
                "words": len(lexicon.entries),
                "from_base": len(lexicon.from_base),
                "from_g2p": len(lexicon.from_g2p),
                "g2p_examples": {w: " ".join(lexicon.entries[w][0]) for w in lexicon.from_g2p[:20]},
                "unmapped": lexicon.unmapped[:100],
                "unmapped_count": len(lexicon.unmapped),
            },
            "decoder": {
                "lw": lw,
                "wip": wip,
                "tuned": tuning is not None,
                "tuning": {**tuning.to_dict(), "lm": tuning_lm} if tuning else None,
            },
            "evaluation": {"wer": wer, "perplexity": ppl},
            "settings": settings.to_dict(),
            "durations": stages.durations,
        }
        decoder_path = model_files.write_decoder_json(model_dir, lw, wip, lm.order)
        metrics["durations"] = dict(stages.durations)
        metrics_path = model_dir / model_files.METRICS_FILE
        metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        card_path = model_dir / model_files.CARD_FILE
        card_path.write_text(render_model_card(metrics), encoding="utf-8")
    metrics["durations"] = dict(stages.durations)
    artifacts = {
        "lm": lm_path,
        "lm_bin": bin_path,
        "lexicon": dict_path,
        "decoder": decoder_path,
        "metrics": metrics_path,
        "model_card": card_path,
    }
    return TrainingResult(model_dir=model_dir, artifacts=artifacts, metrics=metrics)
