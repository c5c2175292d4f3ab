"""The training run: text -> lexicon -> Kneser-Ney LM -> tuned weights -> acoustic adaptation
-> base vs text-only vs text + audio metrics.

Contract of :func:`run_training`: synchronous and CPU-only; writes ``lm.arpa``, ``lm.bin``,
``lexicon.dict``, ``decoder.json``, ``metrics.json`` and ``model_card.md`` into
``work_dir / "model"`` (plus the adapted acoustic model's ``am_*`` files when adaptation beat the
base acoustic model on held-out train pairs) and returns their paths with the metrics. The training
text is streamed to a file under ``work_dir`` and audio is decoded one pair at a time into WAV files
there, within the caps of :class:`TrainingSettings` (what they left out is in the metrics); every
scratch directory is removed whatever the outcome. ``progress(stage, percent)`` is
called at the start and end of every stage (and within long ones) with a percent that never
goes down. Failures raise :class:`TrainingError`: ``no_training_text`` when no usable word is
left after normalisation and lexicon building, ``stage_failed`` (with ``stage``) otherwise. An
exception raised by ``progress`` itself (e.g. to cancel a run) propagates unchanged.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

from voxtrain_trainer.ml import model_files
from voxtrain_trainer.ml.acoustic.adapt import AdaptationReport, adapt_acoustic_model
from voxtrain_trainer.ml.acoustic.sphinxtrain import missing_tools
from voxtrain_trainer.ml.acoustic.utterances import PcmSequence, StoredUtterance, store_pairs
from voxtrain_trainer.ml.backoff_lm import BackoffLM
from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.decoder import AcousticFiles, DecoderConfig
from voxtrain_trainer.ml.encoding import SPECIALS
from voxtrain_trainer.ml.errors import TrainingError
from voxtrain_trainer.ml.evaluation import cap_sentences, compare_perplexity, compare_wer
from voxtrain_trainer.ml.g2p_learn import learned_g2p
from voxtrain_trainer.ml.general_lm import GeneralPruning, general_model
from voxtrain_trainer.ml.interpolate import (
    ArrayModel,
    interpolate_with_general,
    read_model,
    to_backoff_lm,
    tune_weight,
    write_model,
)
from voxtrain_trainer.ml.lexicon import Lexicon, build_lexicon, load_base_dictionary, write_dictionary
from voxtrain_trainer.ml.lm_binary import convert_to_binary
from voxtrain_trainer.ml.lm_external import ExternalLMResult, auto_limits, estimate_arpa
from voxtrain_trainer.ml.model_card import render_model_card
from voxtrain_trainer.ml.prepare import PreparedData, SentenceFile, prepare_data
from voxtrain_trainer.ml.tuning import DEFAULT_LW, DEFAULT_WIP, tune_weights
from voxtrain_trainer.ml.types import AudioPair, ProgressCallback, TrainingInputs, TrainingResult, TrainingSettings
from voxtrain_trainer.storage_errors import InputUnavailable

STAGES = {
    "prepare_text": ("reading and normalising the text", 0, 8),
    "lexicon": ("building the pronunciation lexicon", 8, 15),
    "estimate_lm": ("estimating the language model", 15, 30),
    "tune": ("tuning the decoder weights", 30, 45),
    "adapt": ("adapting the acoustic model to the audio", 45, 75),
    "evaluate": ("evaluating base, text-only and text + audio models", 75, 97),
    "report": ("writing metrics and model card", 97, 100),
}
SCRATCH_DIRS = ("text", "audio", "tuning-lm", "mixed-lm", "acoustic")
CV_MAX_SENTENCES = 2000  # more training sentences: one held-out fold (capped at this many) tunes the general weight
AUDIO_SHARE = 0.04  # of the tune and evaluate stages: storing the pairs' audio, quick next to decoding it


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
        except (TrainingError, InputUnavailable):
            raise  # InputUnavailable: the storage was away, not a failure of the stage (the run is tried again)
        except Exception as exc:
            if exc is self._progress_error:
                raise
            raise TrainingError(TrainingError.STAGE_FAILED, f"{what} failed: {exc}", stage=stage) from exc
        finally:
            self.durations[stage] = round(perf_counter() - began, 3)
        self.report(stage, end)


def _write_lm(
    corpus: SentenceFile,
    settings: TrainingSettings,
    directory: Path,
    progress: Callable[[float], None] | None = None,
    scoring: Sequence[str] | None = None,
) -> tuple[BackoffLM | None, ExternalLMResult, Path]:
    """Estimate (out of core, in the estimator's share of the worker's budget, the model capped at what the binary
    conversion holds in it); write ``lm.arpa`` and ``lm.bin`` into ``directory``.

    Returns the model restricted to what scoring the ``scoring`` sentences reads (None without them: the
    whole model is never held in memory), the estimation and the bin path.
    """
    estimated = estimate_arpa(
        corpus.path,
        directory / model_files.LM_FILE,
        settings.order,
        memory_mb=settings.estimator_memory_mb,
        spill_limit_mb=settings.lm_spill_limit_mb,
        work_dir=directory,
        max_vocabulary=settings.lm_max_vocabulary,
        prune_thresholds=settings.lm_prune_thresholds,
        max_ngrams=settings.max_model_ngrams,
        automatic_limits=True,
        scoring_sentences=scoring,
        fallback=settings.fallback_discounts,
        progress=progress,
    )
    bin_path = convert_to_binary(directory / model_files.LM_FILE, directory / model_files.LM_BIN_FILE)
    return estimated.model, estimated, bin_path


def _tuning_config(
    data: PreparedData, vocabulary: set[str], final: DecoderConfig, settings: TrainingSettings, directory: Path
) -> tuple[DecoderConfig, str]:
    """The decoder to tune with: an LM without the train pairs' own text when there is other text.

    Tuning on utterances whose transcripts are in the LM rewards a high LM weight (the LM knows
    every sentence); test audio is never in the LM, so that bias would carry over.
    """
    directory.mkdir(exist_ok=True)
    other = data.training_sentences.rewritten(directory / "sentences.txt", vocabulary, set(data.pair_sentences))
    if not other.count:
        return final, "full LM (the train pairs are the only text; their transcripts are in it)"
    _, _, bin_path = _write_lm(other, settings, directory)
    return final.with_lm(bin_path), "LM without the train pairs' transcripts"


@dataclass
class _Mixing:
    """The general-English variant of the LMs (files under ``directory``) and how it was made."""

    final: DecoderConfig
    tuning: DecoderConfig
    general: list[str]
    report: dict
    lm: BackoffLM  # the final mixed LM, as read_arpa would read its file


def _general_part(
    settings: TrainingSettings, domain_ngrams: int, mixtures: int
) -> tuple[ArrayModel, GeneralPruning, str | None]:
    """The pruned general model to mix in: the settings' share when mixing it into ``mixtures`` LMs fits the
    worker's memory, else the fallback's smaller share, and why it fell back (None when it did not)."""
    files, cache = base_model_files(), Path(settings.general_lm_cache_dir)
    pruning = GeneralPruning(settings.general_words, settings.general_bigrams, settings.general_trigrams)
    general = general_model(files.lm, files.dictionary, pruning, cache)
    size = sum(len(level) for level in general.probs)
    if settings.mix_fits(size + domain_ngrams, mixtures):
        return general, pruning, None
    del general
    general_model.cache_clear()  # the larger model goes before the smaller one is loaded
    smaller = GeneralPruning(*settings.general_fallback)
    reason = (
        f"{size} general + {domain_ngrams} domain n-grams do not fit the worker's {settings.worker_memory_mb} MB "
        f"while mixing: the {smaller.words} commonest words and {smaller.bigrams} / {smaller.trigrams} n-grams "
        "among them are mixed in instead"
    )
    return general_model(files.lm, files.dictionary, smaller, cache), smaller, reason


def _mix_general(
    final: DecoderConfig,
    tuning: DecoderConfig,
    held_out: list[str],
    data: PreparedData,
    vocabulary: set[str],
    settings: TrainingSettings,
    directory: Path,
    domain_ngrams: int,
) -> _Mixing:
    """The domain LM (and the tuning LM) interpolated with the base model's pruned general LM.

    The weight is tuned by perplexity: on the train pairs' transcripts under the LM that does not
    contain them when there are such pairs; otherwise by ``general_tuning_folds``-fold
    cross-validation on the training text (each fold scored under an LM of the other folds); with
    too little text the default weight is used. Written under ``directory``.
    """
    began = perf_counter()
    general, pruning, fallback = _general_part(settings, domain_ngrams, len({final.lm, tuning.lm}))
    load_seconds = perf_counter() - began
    choice, tuned_on = None, "default weight (too little text to hold some out)"
    if held_out and tuning.lm != final.lm:
        choice = tune_weight([(read_model(tuning.lm.with_suffix(".arpa")), held_out)], general)
        tuned_on = f"train pairs' transcripts ({len(held_out)} sentences) under the LM without them"
    elif len(data.training_sentences) >= settings.general_tuning_folds:
        k = settings.general_tuning_folds
        folds = []
        # a large text needs one fold only (plenty of held-out words; every estimate costs)
        for fold in range(k if len(data.training_sentences) <= CV_MAX_SENTENCES else 1):
            held = [t for i, t in enumerate(data.training_sentences) if i % k == fold][:CV_MAX_SENTENCES]
            fold_dir = directory / f"fold-{fold}"
            fold_dir.mkdir(parents=True, exist_ok=True)
            rest = data.training_sentences.rewritten(fold_dir / "sentences.txt", vocabulary, set(held))
            if not rest.count:
                continue
            _write_lm(rest, settings, fold_dir)
            folds.append((read_model(fold_dir / model_files.LM_FILE), held))
        if folds:
            choice = tune_weight(folds, general)
            tuned_on = (
                f"{len(folds)} of {k} cross-validation folds of the training text ({len(data.training_sentences)} "
                "sentences), each scored under an LM of the other folds"
            )
    lam = choice.lam if choice else settings.default_domain_weight
    mixed: dict[Path, Path] = {}
    counts: list[int] = []
    final_lm: BackoffLM | None = None
    for n, source in enumerate(dict.fromkeys([final.lm, tuning.lm])):
        target = directory / str(n) / model_files.LM_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        model = interpolate_with_general(read_model(source.with_suffix(".arpa")), general, lam)
        written = write_model(model, target)
        counts = counts or written
        final_lm = final_lm or to_backoff_lm(model)  # the first source is the final LM
        mixed[source] = convert_to_binary(target, target.with_suffix(".bin"))
    assert final_lm is not None
    report = {
        "general_words": sum(w not in SPECIALS for w in general.vocab),
        "general_pruning": pruning.to_dict(),
        "general_fallback": fallback,
        "general_ngram_counts": [len(level) for level in general.probs],
        "mixed_ngram_counts": counts,
        "domain_weight": lam,
        "weight_tuned": choice is not None,
        "tuned_on": tuned_on,
        "heldout_perplexity": {str(k): round(v, 2) for k, v in choice.perplexity.items()} if choice else None,
        "heldout_tokens": choice.tokens if choice else 0,
        "general_load_seconds": round(load_seconds, 2),
        "source": "base en-us LM (trie binary read by ml/trie_lm.py), pruned to its commonest words and n-grams",
    }
    return _Mixing(
        final.with_lm(mixed[final.lm]),
        tuning.with_lm(mixed[tuning.lm]),
        [ng[0] for ng in general.probs[0] if ng[0] not in SPECIALS],
        report,
        final_lm,
    )


def _lexicon_words(counts: Counter[str], n_words: int, settings: TrainingSettings) -> list[str]:
    """The words to give pronunciations: all, or under a vocabulary cap (the setting, else the corpus size's
    default) the most frequent ones, as the estimator would keep (ties by spelling): the others become ``<unk>``,
    and no time goes into pronouncing words the model would drop."""
    cap = settings.lm_max_vocabulary or auto_limits(n_words, settings.order)[0]
    if cap is None or len(counts) <= cap:
        return list(counts)
    return [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:cap]]


def evenly_spaced(pairs: Sequence[AudioPair], most: int) -> list[AudioPair]:
    """At most ``most`` of ``pairs``, spread evenly over them (all of them when there are no more)."""
    if len(pairs) <= most:
        return list(pairs)
    return [pairs[i * len(pairs) // most] for i in range(most)]


def _audio_notes(inputs: TrainingInputs) -> list[str]:
    notes = []
    if inputs.unused_audio:
        notes.append(
            f"{len(inputs.unused_audio)} AUDIO file(s) were not used because no transcript goes with them "
            f"({', '.join(list(inputs.unused_audio)[:5])}): add a manifest line or a .vtt/.srt TRANSCRIPT with the "
            "same base name; the model was trained from the text only"
        )
    pairing = inputs.pairing or {}
    left = int(str(pairing.get("pairs_not_used", 0))) + int(str(pairing.get("manifest_lines_not_read", 0)))
    if left:
        notes.append(
            f"{left} audio pair(s) past the first {pairing.get('max_pairs')} were not used (cues cut or manifest "
            "lines not read): more audio than a run adapts to and evaluates on in its time limit"
        )
    return notes


def _adaptation_split(
    utterances: list[StoredUtterance], settings: TrainingSettings
) -> tuple[list[StoredUtterance], list[StoredUtterance]]:
    """Train pairs that adapt the acoustic model, and those held out to check the adaptation."""
    every = settings.adaptation_dev_every
    dev = [u for i, u in enumerate(utterances) if i % every == every - 1]
    held = set(dev)
    return [u for u in utterances if u not in held], dev


def _adapt(
    utterances: list[StoredUtterance],
    lexicon: Lexicon,
    decoder: DecoderConfig,
    settings: TrainingSettings,
    work_dir: Path,
    model_dir: Path,
    step: Callable[[float], None],
) -> tuple[AcousticFiles | None, dict]:
    """Adapt when there is enough audio to adapt and to check the adaptation; files and report."""
    if not settings.adapt_acoustic_model:
        return None, AdaptationReport(reason="acoustic adaptation is switched off").to_dict()
    if len(utterances) < settings.min_adaptation_pairs:
        reason = (
            f"{len(utterances)} train pairs: at least {settings.min_adaptation_pairs} are needed to adapt the "
            "acoustic model and check it on held-out pairs, so the base acoustic model is used"
        )
        return None, AdaptationReport(reason=reason).to_dict()
    missing = missing_tools()
    if missing:
        return None, AdaptationReport(reason="not installed: " + ", ".join(missing)).to_dict()
    train, dev = _adaptation_split(utterances, settings)
    files, report = adapt_acoustic_model(
        train, dev, lexicon.entries, decoder, work_dir, model_dir, settings.map_min_seconds, step
    )
    return files, report.to_dict()


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
    try:
        return _run(inputs, Path(work_dir), model_dir, settings, _Stages(progress))
    finally:
        for name in SCRATCH_DIRS:
            shutil.rmtree(Path(work_dir) / name, ignore_errors=True)


def _run(
    inputs: TrainingInputs, work_dir: Path, model_dir: Path, settings: TrainingSettings, stages: _Stages
) -> TrainingResult:

    with stages.run("prepare_text") as step:
        data = prepare_data(
            inputs,
            settings.heldout_fraction,
            work_dir / "text",
            settings.max_perplexity_words,
            settings.max_training_words,
            progress=step,
        )
        word_counts, n_words = data.training_sentences.word_counts()
    if n_words == 0:
        raise TrainingError(
            TrainingError.NO_TRAINING_TEXT,
            "There is no training text: the transcripts and manifest texts contain no words after "
            "normalisation. Add a TRANSCRIPT dataset (.txt, .vtt or .srt) or manifest lines with text.",
        )

    with stages.run("lexicon"):
        base_dict = load_base_dictionary(base_model_files().dictionary)
        g2p = learned_g2p(base_model_files().dictionary, settings.g2p_voice, method=settings.g2p_method)
        lexicon = build_lexicon(_lexicon_words(word_counts, n_words, settings), base_dict, g2p.pronounce)
        corpus = data.training_sentences
        if any(word not in lexicon.entries for word in word_counts):
            corpus = corpus.rewritten(work_dir / "text" / "lm-sentences.txt", set(lexicon.entries))
        del word_counts
    if not lexicon.entries:
        raise TrainingError(
            TrainingError.NO_TRAINING_TEXT,
            "No word of the training text could be given a pronunciation (base dictionary or "
            f"espeak-ng); e.g. {', '.join(lexicon.unmapped[:5])}. The model is English: check the text language.",
        )

    with stages.run("estimate_lm") as step:
        scored = cap_sentences(data.test_sentences, settings.max_perplexity_words)
        lm, estimated, bin_path = _write_lm(corpus, settings, model_dir, step, scored if scored else None)
        discounts, ngram_counts, lm_order = estimated.discounts, estimated.ngram_counts, estimated.order
        lm_path = model_dir / model_files.LM_FILE
        dict_path = model_dir / model_files.DICT_FILE
        custom = DecoderConfig(bin_path, dict_path, base_model_files().hmm, search=settings.search_options)
        tuning_config, tuning_lm = custom, None
        if data.train_pairs:
            tuning_config, tuning_lm = _tuning_config(
                data, set(lexicon.entries), custom, settings, work_dir / "tuning-lm"
            )
        mixing, unmixed = None, None
        if settings.general_words > 0 and n_words > settings.general_mix_max_words:
            unmixed = {
                "skipped": f"the training text has {n_words} words, more than {settings.general_mix_max_words}: "
                "it covers ordinary English itself, so the domain LM ships without the general-English mix"
            }
        elif settings.general_words > 0:
            held_out = data.pair_sentences if tuning_config is not custom else []
            mixing = _mix_general(
                custom,
                tuning_config,
                held_out,
                data,
                set(lexicon.entries),
                settings,
                work_dir / "mixed-lm",
                sum(ngram_counts),
            )
            # Always shipped when on: tuning on the train audio (domain sentences) would favour the
            # domain-only LM, yet held-out speech uses ordinary words too (see bench/trainer/bench_acoustic.py).
            shutil.copyfile(mixing.final.lm.with_suffix(".arpa"), lm_path)
            shutil.copyfile(mixing.final.lm, bin_path)
            if mixing.tuning.lm != mixing.final.lm:
                shutil.copyfile(mixing.tuning.lm, tuning_config.lm)
            shutil.rmtree(work_dir / "mixed-lm", ignore_errors=True)
            lexicon.entries.update({w: list(base_dict[w]) for w in mixing.general if w not in lexicon.entries})
            lm = mixing.lm  # held by the mix already (bounded by general_mix_max_words)
            ngram_counts, lm_order = lm.ngram_counts(), lm.order
        write_dictionary(lexicon.entries, dict_path)

    tuning = None
    train_audio: list[StoredUtterance] = []
    audio_skipped: list[str] = []
    with stages.run("tune") as step:
        if data.train_pairs:
            train_audio, audio_skipped = store_pairs(
                data.train_pairs,
                work_dir / "audio" / "train",
                lambda f: step(AUDIO_SHARE * f),
                max_pair_seconds=settings.max_pair_seconds,
                max_seconds=settings.max_train_audio_seconds,
            )
        if train_audio:
            step(AUDIO_SHARE)
            tuning = tune_weights(
                tuning_config,
                PcmSequence(train_audio),
                settings.lw_grid,
                settings.wip_grid,
                settings.max_tuning_decodes,
                lambda f: step(AUDIO_SHARE + (1 - AUDIO_SHARE) * f),
                settings.tuning_tolerance_se,
            )
    lw, wip = (tuning.lw, tuning.wip) if tuning else (DEFAULT_LW, DEFAULT_WIP)
    custom = custom.with_weights(lw, wip)

    adapted_tuning = None
    with stages.run("adapt") as step:
        acoustic, adaptation = _adapt(
            train_audio, lexicon, tuning_config.with_weights(lw, wip), settings, work_dir / "acoustic", model_dir, step
        )
        if acoustic is not None:
            # lw/wip above suit the base acoustic model; the adapted one gets its own, tuned on the pairs held out
            # from the adaptation (with the base model's, the e2e set: 0.16 -> 0.38 WER; bench/trainer/bench_e2e_set.py)
            adapted_tuning = tune_weights(
                tuning_config.with_acoustic(acoustic),
                PcmSequence(_adaptation_split(train_audio, settings)[1]),
                settings.lw_grid,
                settings.wip_grid,
                settings.max_tuning_decodes,
                tolerance_se=settings.tuning_tolerance_se,
            )
        shutil.rmtree(work_dir / "acoustic", ignore_errors=True)
        shutil.rmtree(work_dir / "tuning-lm", ignore_errors=True)
    shipped_lw, shipped_wip = (adapted_tuning.lw, adapted_tuning.wip) if adapted_tuning else (lw, wip)

    with stages.run("evaluate") as step:
        wer = None
        if data.test_pairs:
            test_pairs = evenly_spaced(data.test_pairs, settings.max_test_pairs)
            if len(test_pairs) < len(data.test_pairs):
                audio_skipped.append(
                    f"{len(test_pairs)} of the {len(data.test_pairs)} test pairs (evenly spaced) were evaluated: "
                    "more would not fit a run's time limit"
                )
            test_audio, skipped = store_pairs(
                test_pairs,
                work_dir / "audio" / "test",
                lambda f: step(AUDIO_SHARE * f),
                strict=True,
                max_pair_seconds=settings.max_pair_seconds,
            )
            audio_skipped += skipped
            models = [("base", DecoderConfig.base()), ("text_only", custom)]
            if acoustic is not None:
                models.append(("text_audio", custom.with_weights(shipped_lw, shipped_wip).with_acoustic(acoustic)))
            if test_audio:
                wer = compare_wer(
                    PcmSequence(test_audio), models, progress=lambda f: step(AUDIO_SHARE + (0.97 - AUDIO_SHARE) * f)
                )
        ppl = compare_perplexity(lm, scored, settings.max_perplexity_words) if lm is not None else None

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
                "training_sentences": data.training_sentences.count,
                "training_words": n_words,
                "test_sentences": data.test_sentence_count,
                "train_audio_seconds": round(sum(u.seconds for u in train_audio), 1),
                "audio_skipped": audio_skipped[:50],
                "pairing": dict(inputs.pairing or {}),
                "unused_audio": list(inputs.unused_audio),
                "notes": data.notes + _audio_notes(inputs),
            },
            "lm": {
                "order": lm_order,
                "requested_order": settings.order,
                "smoothing": "interpolated modified Kneser-Ney" + (", mixed with general English" if mixing else ""),
                "general_english": mixing.report if mixing else unmixed,
                "ngram_counts": ngram_counts,
                "vocabulary_size": ngram_counts[0],
                "discounts": [d.to_dict() for d in discounts],
                "discount_fallback": any(d.fallback for d in discounts),
                "pruning": estimated.pruning.to_dict(),
            },
            "lexicon": {
                "words": len(lexicon.entries),
                "from_base": len(lexicon.from_base),
                "from_g2p": len(lexicon.from_g2p),
                "from_g2p_with_variant": sum(len(lexicon.entries[w]) > 1 for w in lexicon.from_g2p),
                "g2p_examples": {w: " ".join(lexicon.entries[w][0]) for w in lexicon.from_g2p[:20]},
                "unmapped": lexicon.unmapped[:100],
                "unmapped_count": len(lexicon.unmapped),
                "g2p": g2p.report,
            },
            "decoder": {
                "lw": lw,
                "wip": wip,
                "tuned": tuning is not None,
                "search": {"name": settings.decoder_search, "options": dict(custom.search)},
                "tuning": {**tuning.to_dict(), "lm": tuning_lm} if tuning else None,
                # the adapted acoustic model's own weights (shipped in decoder.json when it is shipped)
                "adapted_tuning": adapted_tuning.to_dict() if adapted_tuning else None,
            },
            "acoustic": adaptation,
            "evaluation": {"wer": wer, "perplexity": ppl},
            "settings": settings.to_dict(),
            "durations": stages.durations,
        }
        decoder_path = model_files.write_decoder_json(
            model_dir, shipped_lw, shipped_wip, lm_order, acoustic, adaptation["method"], custom.search
        )
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
        **{f"acoustic_{option}": path for option, path in (acoustic.items() if acoustic else [])},
    }
    return TrainingResult(model_dir=model_dir, artifacts=artifacts, metrics=metrics)
