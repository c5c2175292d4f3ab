r"""Inputs, settings and result of a training run (plain, immutable data).

Text inputs are files already on local disk; recordings are local files or :class:`StoredRecording`\ s read where
they are stored. The service layer downloads the text, names the recordings and resolves manifest references
before calling :func:`voxtrain_trainer.ml.pipeline.run_training`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

ProgressCallback = Callable[[str, float], None]
G2P_METHODS = ("phonetisaurus", "espeak")
# PocketSphinx search options a trained model decodes with (its decoder.json "search"), on top of PocketSphinx's
# defaults (topn 4, pl_window 5, beam 1e-48, wbeam 7e-29, maxhmmpf 30000). "wide": no phone-loop lookahead and the
# 8 best Gaussians per frame instead of 4. Chosen on the development domains (bench/trainer/ACOUSTIC_RESULTS.md).
# "standard": PocketSphinx's defaults, what models decoded with before.
DECODER_SEARCHES: dict[str, dict[str, int | float]] = {"standard": {}, "wide": {"pl_window": 0, "topn": 8}}

# The worker's memory budget (worker_memory_mb) is shared by what it holds for the whole run (interpreter,
# numpy, DuckDB, PocketSphinx, the base dictionary, the lexicon, the G2P model: WORKER_RESERVE_MB, measured
# below) and the LM stage's two big steps, one after the other: the DuckDB estimator (which keeps its process
# within its own memory_mb) and PocketSphinx's ARPA-to-binary conversion, which holds every n-gram at once
# (69 bytes an n-gram at 10.9M n-grams of a trigram model; see bench/e2e/RESULTS.md).
WORKER_RESERVE_MB = 512
CONVERT_BYTES_PER_NGRAM = 72
# Mixing with general English holds the general model, the domain model and their mixture at once: measured
# 1,292 MB peak for a tiny text mixed with the whole base LM (3.8M n-grams) and 2,035 MB for 1M words of
# Zipf text (5.0M mixed n-grams), so beside the reserve about 330 bytes per mixed n-gram (general + domain).
MIX_BYTES_PER_NGRAM = 330
# A run with audio pairs and other text mixes a second LM (the one weights are tuned with) while it holds the first:
# a 30-line text with the whole base LM peaked 1,292 MB without pairs and 1,531 MB with them, ~65 bytes more per
# n-gram.
MIX_SECOND_BYTES_PER_NGRAM = 80
MIN_WORKER_MEMORY_MB = 768


@dataclass(frozen=True)
class StoredRecording:
    """A recording read where it is stored, through a seekable stream ``open`` gives (ranged reads as the decoder
    seeks), never copied whole to the work directory. ``name`` identifies it in reports, as a local file's name."""

    name: str
    size: int
    open: Callable[[], BinaryIO] = field(compare=False, repr=False)


#: A recording: a local file or a stored one.
Media = Path | StoredRecording


@dataclass(frozen=True)
class TextFile:
    """A transcript file: .txt (one utterance per line), .vtt or .srt (cue text)."""

    path: Path
    format: str | None = None  # "txt" | "vtt" | "srt"; None: from the extension


@dataclass(frozen=True)
class AudioPair:
    """An audio file (or the segment ``[offset, offset+duration)`` of it) and what is said in it."""

    audio: Media
    text: str
    offset: float | None = None
    duration: float | None = None
    name: str | None = None  # how reports refer to it (e.g. a dataset id); default: file name

    @property
    def label(self) -> str:
        """Name used in reports."""
        return self.name or self.audio.name


@dataclass(frozen=True)
class TrainingInputs:
    """Everything a run learns from and is evaluated on."""

    transcripts: Sequence[TextFile] = ()
    test_texts: Sequence[TextFile] = ()
    train_pairs: Sequence[AudioPair] = ()
    test_pairs: Sequence[AudioPair] = ()
    pairing: Mapping[str, object] | None = None  # report of AUDIO+VTT/SRT pairing (see ml.pairing)
    unused_audio: Sequence[str] = ()  # AUDIO files with no transcript: named in the metrics, not trained on


@dataclass(frozen=True)
class TrainingSettings:
    """Knobs of a run; the defaults are what the service uses."""

    order: int = 3
    fallback_discounts: tuple[float, float, float] = (0.5, 1.0, 1.5)
    heldout_fraction: float = 0.1
    lw_grid: tuple[float, ...] = (6.5, 9.0, 12.0)
    wip_grid: tuple[float, ...] = (0.2, 0.65, 2.0)
    max_tuning_decodes: int = 180
    # lw/wip: the point nearest PocketSphinx's defaults among those within this many standard errors of the lowest
    # WER (0: the lowest WER itself; see ml/tuning.py)
    tuning_tolerance_se: float = 1.0
    max_perplexity_words: int = 200_000
    g2p_voice: str = "en-us"
    worker_memory_mb: int = 2048  # budget of the whole training worker (see worker_budget)
    lm_memory_mb: int | None = None  # the LM estimator's share of it; None: the budget less WORKER_RESERVE_MB
    lm_max_ngrams: int | None = None  # n-grams of the model (all orders); None: what the budget converts
    # G2P for words the base dictionary lacks: "phonetisaurus" (a model trained on the base dictionary, see
    # ml/g2p_learn.py) or "espeak" (the espeak-ng table, what runs used before it: for comparisons)
    g2p_method: str = "phonetisaurus"
    lm_spill_limit_mb: int = 32768  # disk it may spill to (lm_spill_limit_exceeded beyond)
    # disk a run may use in its work directory (downloads, the LM's spill, the model); None: the free space there
    work_disk_mb: int | None = None
    lm_max_vocabulary: int | None = None  # None: chosen by corpus size (lm_external.auto_limits)
    lm_prune_thresholds: tuple[int, ...] | None = None  # one count per order; None: by corpus size
    # The general English mixed into the domain LM: the base LM's commonest pronounceable words (0: domain text
    # only) and its most probable bigrams and trigrams among them. The defaults are over the shipped en-US LM's
    # own sizes (72,544 pronounceable words, 2.05M bigrams, 1.67M trigrams): all of it is mixed in when the mix
    # fits the worker's memory (MIX_BYTES_PER_NGRAM), else general_fallback's smaller share. Chosen on the
    # development domains (bench/trainer/ACOUSTIC_RESULTS.md): pooled WER 0.781 with the 10,000 / 200,000 /
    # 100,000 of before, 0.740 with 50,000 / 2M / 1M, 0.727 with all of it (the base model alone: 0.736).
    general_words: int = 200_000
    general_bigrams: int = 10_000_000
    general_trigrams: int = 10_000_000
    general_fallback: tuple[int, int, int] = (10_000, 200_000, 100_000)  # words, bigrams, trigrams
    general_tuning_folds: int = 5  # without held-out pairs: cross-validation folds of the text that tune the weight
    general_lm_cache_dir: str = str(Path(tempfile.gettempdir()) / "voxtrain-general-lm")  # pruned base LM cache
    default_domain_weight: float = 0.8  # domain LM weight when there is no held-out text to tune it on
    # more training text than this: no general-English mix (the domain text covers ordinary English by then, and
    # mixing reads whole models into memory and estimates another LM per fold: time and memory grow with the text)
    general_mix_max_words: int = 2_000_000
    decoder_search: str = "wide"  # a DECODER_SEARCHES name: what the trained model decodes with
    adapt_acoustic_model: bool = True
    min_adaptation_pairs: int = 6  # fewer train pairs: no held-out pairs to check an adaptation on
    adaptation_dev_every: int = 4  # every n-th train pair checks the adaptation instead of training it
    map_min_seconds: float = 30.0  # less adaptation audio: MLLR only
    # audio bounds, so a run's time does not grow with the recordings (see bench/trainer/SIZE_LIMITS.md)
    max_pair_seconds: float = 120.0  # a longer pair cannot be aligned in one piece: skipped, not decoded
    max_train_audio_seconds: float = 3600.0  # train pairs past this much stored audio are not decoded
    max_test_pairs: int = 300  # test pairs evaluated (evenly spaced over all of them)
    max_training_words: int = 200_000_000  # transcript text past this many words is not read (time limit)

    def __post_init__(self) -> None:
        if not 1 <= self.order <= 6:
            raise ValueError("order must be between 1 and 6")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError("heldout_fraction must be between 0 and 1")
        if not self.lw_grid or not self.wip_grid or self.max_tuning_decodes < 1:
            raise ValueError("the tuning grid and decode budget must not be empty")
        if self.tuning_tolerance_se < 0:
            raise ValueError("tuning_tolerance_se must not be negative")
        if self.worker_memory_mb < MIN_WORKER_MEMORY_MB:
            raise ValueError(f"worker_memory_mb must be at least {MIN_WORKER_MEMORY_MB}")
        if self.lm_memory_mb is not None and not 256 <= self.lm_memory_mb <= self.worker_memory_mb:
            raise ValueError("lm_memory_mb must be at least 256 and at most worker_memory_mb")
        if (self.lm_max_vocabulary is not None and self.lm_max_vocabulary < 1) or (
            self.lm_max_ngrams is not None and self.lm_max_ngrams < 1
        ):
            raise ValueError("lm_max_vocabulary and lm_max_ngrams must be positive")
        if min(self.max_pair_seconds, self.max_train_audio_seconds, self.max_test_pairs, self.max_training_words) <= 0:
            raise ValueError("max_pair_seconds, max_train_audio_seconds, max_test_pairs, max_training_words: positive")
        if self.decoder_search not in DECODER_SEARCHES:
            raise ValueError(f"decoder_search must be one of {', '.join(DECODER_SEARCHES)}")
        if self.g2p_method not in G2P_METHODS:
            raise ValueError(f"g2p_method must be one of {', '.join(G2P_METHODS)}")
        if self.lm_spill_limit_mb < 64:
            raise ValueError("lm_spill_limit_mb must be at least 64")
        if self.work_disk_mb is not None and self.work_disk_mb < 1:
            raise ValueError("work_disk_mb must be positive")
        thresholds = self.lm_prune_thresholds
        if thresholds is not None and (len(thresholds) != self.order or min(thresholds) < 0):
            raise ValueError("lm_prune_thresholds needs one non-negative count per order")

    @property
    def estimator_memory_mb(self) -> int:
        """The LM estimator's budget: ``lm_memory_mb``, else the worker's budget less what the rest of the worker
        holds while it runs."""
        return self.lm_memory_mb or max(self.worker_memory_mb - WORKER_RESERVE_MB, 256)

    @property
    def search_options(self) -> dict[str, int | float]:
        """The PocketSphinx search options of ``decoder_search``."""
        return dict(DECODER_SEARCHES[self.decoder_search])

    @property
    def max_model_ngrams(self) -> int:
        """The model's n-gram cap: ``lm_max_ngrams``, else as many as PocketSphinx's ARPA-to-binary conversion
        (``CONVERT_BYTES_PER_NGRAM`` each) holds in the worker's budget beside the rest of the worker."""
        fit = (self.worker_memory_mb - WORKER_RESERVE_MB) * 2**20 // CONVERT_BYTES_PER_NGRAM
        return self.lm_max_ngrams or max(int(fit), 1)

    def mix_fits(self, mixed_ngrams: int, mixtures: int = 1) -> bool:
        """Whether mixing ``mixed_ngrams`` n-grams (general + domain) with general English, into ``mixtures`` LMs one
        after the other, fits the worker's budget beside the rest of the worker."""
        per_ngram = MIX_BYTES_PER_NGRAM + (mixtures - 1) * MIX_SECOND_BYTES_PER_NGRAM
        return WORKER_RESERVE_MB * 2**20 + mixed_ngrams * per_ngram <= self.worker_memory_mb * 2**20

    def to_dict(self) -> dict:
        """JSON-ready view."""
        derived = {"estimator_memory_mb": self.estimator_memory_mb, "max_model_ngrams": self.max_model_ngrams}
        return {**asdict(self), **derived}


@dataclass(frozen=True)
class TrainingResult:
    """Where the artifacts are and what was measured."""

    model_dir: Path
    artifacts: dict[str, Path] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
