"""Gather and split the text of a run: training sentences, test sentences, train/test pairs.

Contract of :func:`prepare_data`:
- training sentences = normalised sentences of the TRANSCRIPT files + train-pair transcripts
  (the latter also kept apart in ``pair_sentences``);
- test sentences (for perplexity/OOV) = TEST files + test-pair transcripts;
- with no test text and no test pairs, a deterministic slice (``heldout_fraction``, chosen by a
  hash of the sentence, so identical sentences fall on the same side) of the training text is
  held out and ``heldout_text`` is set; with no test pairs but at least two train pairs, every
  ``round(1 / fraction)``-th train pair (at least one) is held out for WER, its text leaves the
  training text, and ``heldout_audio`` is set.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from voxtrain_trainer.ml.normalize import normalize_text
from voxtrain_trainer.ml.sentences import normalized_sentences
from voxtrain_trainer.ml.transcripts import read_utterances
from voxtrain_trainer.ml.types import AudioPair, TrainingInputs


@dataclass
class PreparedData:
    """The text and pairs a run trains and evaluates on."""

    training_sentences: list[str]
    test_sentences: list[str]
    train_pairs: list[AudioPair]
    test_pairs: list[AudioPair]
    pair_sentences: list[str] = field(default_factory=list)  # train-pair transcripts, normalised
    heldout_text: bool = False
    heldout_audio: bool = False
    notes: list[str] = field(default_factory=list)


def _is_heldout(sentence: str, fraction: float) -> bool:
    return zlib.crc32(sentence.encode("utf-8")) % 10_000 < fraction * 10_000


def _split_pairs(pairs: list[AudioPair], fraction: float) -> tuple[list[AudioPair], list[AudioPair]]:
    every = max(round(1 / fraction), 2)
    test = [p for i, p in enumerate(pairs) if i % every == every - 1] or [pairs[-1]]
    train = [p for p in pairs if p not in test]
    return train, test


def prepare_data(inputs: TrainingInputs, heldout_fraction: float) -> PreparedData:
    """Read, normalise and split the inputs (see module contract)."""
    train_pairs = [p for p in inputs.train_pairs if normalize_text(p.text)]
    test_pairs = [p for p in inputs.test_pairs if normalize_text(p.text)]
    notes: list[str] = []
    heldout_audio = False
    if not test_pairs and len(train_pairs) >= 2:
        train_pairs, test_pairs = _split_pairs(train_pairs, heldout_fraction)
        heldout_audio = True
        notes.append(f"no test audio: {len(test_pairs)} of the train pairs were held out for WER")
    training: list[str] = []
    for source in inputs.transcripts:
        training.extend(normalized_sentences(read_utterances(source.path, source.format)))
    pair_sentences = list(normalized_sentences(p.text for p in train_pairs))
    training.extend(pair_sentences)
    test: list[str] = []
    for source in inputs.test_texts:
        test.extend(normalized_sentences(read_utterances(source.path, source.format)))
    test.extend(normalized_sentences(p.text for p in test_pairs))
    heldout_text = False
    if not inputs.test_texts and not inputs.test_pairs and len(training) >= 2:
        kept = [s for s in training if not _is_heldout(s, heldout_fraction)]
        held = [s for s in training if _is_heldout(s, heldout_fraction)]
        if not held:
            held, kept = kept[-1:], kept[:-1]
        if kept:
            training = kept
            test = held + test
            heldout_text = True
            notes.append(
                f"no test text: {len(held)} training sentences ({len(held) / (len(held) + len(kept)):.0%}) "
                "were held out for perplexity and OOV"
            )
    return PreparedData(training, test, train_pairs, test_pairs, pair_sentences, heldout_text, heldout_audio, notes)
