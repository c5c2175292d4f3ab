"""PocketSphinx decoding of 16 kHz PCM into normalised text with word timings.

Contract: :class:`SpeechDecoder` loads one model (acoustic model + LM + dictionary + weights +
search options) once, with an adapted acoustic model's files (:class:`AcousticFiles`: MAP-adapted
means, variances, mixture weights, transition matrices and/or an MLLR transform) replacing those of
``hmm`` when given, and decodes any number of utterances with :meth:`SpeechDecoder.decode`. The transcript
holds only real words (no ``<s>``, ``</s>``, ``<sil>``, ``[NOISE]``-style fillers), without
alternate-pronunciation markers (``the(2)`` -> ``the``), with start/end in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import pocketsphinx

from voxtrain_trainer.ml.base_model import base_model_files


@dataclass(frozen=True)
class AcousticFiles:
    """Files of an adapted acoustic model that replace the base model's (``None``: keep the base one)."""

    mean: Path | None = None
    var: Path | None = None
    sendump: Path | None = None
    tmat: Path | None = None
    mllr: Path | None = None

    def decoder_options(self) -> dict[str, str]:
        """PocketSphinx options loading these files."""
        return {k: str(v) for k, v in vars(self).items() if v is not None}

    def items(self) -> list[tuple[str, Path]]:
        """``(option, path)`` of every file given."""
        return [(k, v) for k, v in vars(self).items() if v is not None]


@dataclass(frozen=True)
class DecoderConfig:
    """What a decoder loads: LM, dictionary, acoustic model, weights (``None`` = default) and search options."""

    lm: Path
    dictionary: Path
    hmm: Path
    lw: float | None = None
    wip: float | None = None
    acoustic: AcousticFiles | None = None
    # PocketSphinx search options on top of its defaults (a trained model's decoder.json "search")
    search: Mapping[str, int | float] = field(default_factory=dict)

    @classmethod
    def base(cls) -> DecoderConfig:
        """The shipped en-US model with PocketSphinx's default weights and search."""
        files = base_model_files()
        return cls(lm=files.lm, dictionary=files.dictionary, hmm=files.hmm)

    def with_weights(self, lw: float, wip: float) -> DecoderConfig:
        """The same model with other decoder weights."""
        return replace(self, lw=lw, wip=wip)

    def with_acoustic(self, acoustic: AcousticFiles | None) -> DecoderConfig:
        """The same model with another (adapted) acoustic model."""
        return replace(self, acoustic=acoustic)

    def with_lm(self, lm: Path) -> DecoderConfig:
        """The same model with another language model."""
        return replace(self, lm=lm)


@dataclass(frozen=True)
class WordTiming:
    """One recognised word and when it was said."""

    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Transcript:
    """Recognised words joined by spaces (dictionary spelling) and per-word timings."""

    text: str
    words: list[WordTiming]


def _is_filler(word: str) -> bool:
    return word.startswith(("<", "[", "++")) or not word


def _base_word(word: str) -> str:
    if word.endswith(")") and "(" in word:
        return word[: word.index("(")]
    return word


class SpeechDecoder:
    """A loaded PocketSphinx decoder (not thread-safe: one per worker thread)."""

    def __init__(self, config: DecoderConfig) -> None:
        kwargs: dict[str, object] = {
            "hmm": str(config.hmm),
            "lm": str(config.lm),
            "dict": str(config.dictionary),
            "loglevel": "FATAL",
            **config.search,
        }
        if config.lw is not None:
            kwargs["lw"] = float(config.lw)
        if config.wip is not None:
            kwargs["wip"] = float(config.wip)
        if config.acoustic is not None:
            kwargs.update(config.acoustic.decoder_options())
        try:
            self._decoder = pocketsphinx.Decoder(**kwargs)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(
                f"PocketSphinx could not load the model ({config.lm.name}, {config.dictionary.name})"
            ) from exc
        self.config = config
        self.frame_rate = int(self._decoder.config["frate"])
        self.lw = float(self._decoder.config["lw"])
        self.wip = float(self._decoder.config["wip"])

    def option(self, name: str) -> object:
        """The value PocketSphinx decodes with for one of its options (``topn``, ``beam``...)."""
        return self._decoder.config[name]

    def decode(self, pcm: bytes) -> Transcript:
        """Recognise one utterance of 16 kHz mono s16 ``pcm``."""
        if len(pcm) < 2:
            return Transcript("", [])
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        words: list[WordTiming] = []
        for seg in self._decoder.seg() or []:
            if _is_filler(seg.word):
                continue
            words.append(
                WordTiming(
                    _base_word(seg.word), seg.start_frame / self.frame_rate, (seg.end_frame + 1) / self.frame_rate
                )
            )
        return Transcript(" ".join(w.word for w in words), words)
