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

Streams: the transcripts are read one utterance at a time and the training sentences are written
to a :class:`SentenceFile` in ``directory`` (one a line), never held in memory; of the test
sentences only the leading ones that perplexity scores are read and kept (whole sentences up to
``max_test_words`` words, and the next one so callers can tell the rest was left out; a note says
when some were not read), and ``test_sentence_count`` counts those read. Memory holds the pairs
and those sentences, whatever the size of the text. Past ``max_training_words`` words of transcript
text the transcripts are read no further (a note says so): a run's time grows with its text, and
the time limit does not.
"""

from __future__ import annotations

import itertools
import operator
import zlib
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from voxtrain_trainer.ml.encoding import UNK
from voxtrain_trainer.ml.normalize import normalize_text
from voxtrain_trainer.ml.sentences import normalized_sentence_blocks, normalized_sentences
from voxtrain_trainer.ml.transcripts import read_utterances
from voxtrain_trainer.ml.types import AudioPair, TextFile, TrainingInputs


class SentenceFile:
    """Normalised sentences on disk, one a line; iterated from the file each time."""

    def __init__(self, path: Path, count: int) -> None:
        self.path = path
        self.count = count

    def __iter__(self) -> Iterator[str]:
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                yield line[:-1]

    def __len__(self) -> int:
        return self.count

    def word_counts(self) -> tuple[Counter[str], int]:
        """How often each word occurs, and the number of words (one pass; memory grows with the vocabulary only)."""
        counts: Counter[str] = Counter()
        for sentence in self:
            counts.update(sentence.split())
        return counts, sum(counts.values())

    def rewritten(self, path: Path, keep: Container[str] | None = None, drop: Container[str] = ()) -> SentenceFile:
        """The sentences not in ``drop``, each word not in ``keep`` (when given) as ``<unk>``, written to ``path``."""
        with _Writer(path) as out:
            for sentence in self:
                if sentence in drop:
                    continue
                if keep is not None:
                    sentence = " ".join(w if w in keep else UNK for w in sentence.split())
                out.write(sentence)
        return SentenceFile(path, out.count)


class _Writer:
    """Sentences appended to a file, one a line; the last one can be taken back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._last = 0
        self._end = 0  # bytes written (not ``tell()``: a call into the file per sentence costs as much as the rest)
        self._out: BinaryIO = path.open("wb")

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._out.close()

    def write(self, sentence: str) -> None:
        self._last = self._end
        self._end += self._out.write(f"{sentence}\n".encode())
        self.count += 1

    def write_all(self, sentences: list[str]) -> None:
        """``write`` each of ``sentences`` (in one write)."""
        if sentences:
            written = self._out.write(("\n".join(sentences) + "\n").encode())
            self._last = self._end + written - len(sentences[-1].encode()) - 1
            self._end += written
            self.count += len(sentences)

    def take_last(self) -> str:
        """Remove the last sentence written and return it (at least one must have been written)."""
        self._out.flush()
        with self.path.open("rb") as handle:
            handle.seek(self._last)
            last = handle.read().decode("utf-8")[:-1]
        self._out.seek(self._last)
        self._out.truncate()
        self._end = self._last
        self.count -= 1
        return last


class _TestText:
    """Test sentences: the leading ones up to ``max_words`` words (and one more) kept and counted; once that
    many are kept, sources are read no further (``unread`` says some were left)."""

    def __init__(self, max_words: int | None) -> None:
        self.kept: list[str] = []
        self.count = 0
        self.unread = False
        self._words = 0
        self._max = max_words

    def add(self, sentences: Iterable[str]) -> None:
        for sentence in sentences:
            if self._max is not None and self._words > self._max:
                self.unread = True
                return
            self.count += 1
            self.kept.append(sentence)
            self._words += len(sentence.split())


@dataclass
class PreparedData:
    """The text and pairs a run trains and evaluates on."""

    training_sentences: SentenceFile
    test_sentences: list[str]
    train_pairs: list[AudioPair]
    test_pairs: list[AudioPair]
    pair_sentences: list[str] = field(default_factory=list)  # train-pair transcripts, normalised
    heldout_text: bool = False
    heldout_audio: bool = False
    notes: list[str] = field(default_factory=list)
    test_sentence_count: int = 0  # all test sentences; ``test_sentences`` may hold only the leading ones


def _is_heldout(sentence: str, fraction: float) -> bool:
    return zlib.crc32(sentence.encode("utf-8")) % 10_000 < fraction * 10_000


def _split_pairs(pairs: list[AudioPair], fraction: float) -> tuple[list[AudioPair], list[AudioPair]]:
    every = max(round(1 / fraction), 2)
    test = [p for i, p in enumerate(pairs) if i % every == every - 1] or [pairs[-1]]
    held = set(test)  # pairs are frozen dataclasses: a set keeps this linear at tens of thousands of pairs
    train = [p for p in pairs if p not in held]
    return train, test


def _text_of(files: Iterable[TextFile], progress: Callable[[float], None] | None = None) -> Iterator[list[str]]:
    """The normalised sentences of ``files``, a block at a time; ``progress`` is told the fraction of their bytes
    read so far."""
    files = list(files)
    if progress is None:
        for source in files:
            yield from normalized_sentence_blocks(read_utterances(source.path, source.format))
        return
    total = max(1, sum(source.path.stat().st_size for source in files))
    done, told = 0, -1.0

    def tell(offset: int) -> None:
        nonlocal told
        fraction = min(1.0, (done + offset) / total)
        if fraction - told >= 0.005:  # a few hundred updates at most, however big the text
            told = fraction
            progress(fraction)

    for source in files:
        yield from normalized_sentence_blocks(read_utterances(source.path, source.format, tell))
        done += source.path.stat().st_size


def _up_to(blocks: Iterable[list[str]], max_words: int | None, notes: list[str]) -> Iterator[list[str]]:
    """The blocks of sentences until ``max_words`` words are given (a note when some were left unread): the
    sentence that reaches the limit is the last one."""
    words = 0
    for block in blocks:
        block_words = sum(map(str.count, block, itertools.repeat(" "))) + len(block)
        if max_words is None or words + block_words < max_words:
            words += block_words
            yield block
            continue
        for i, sentence in enumerate(block):
            if words >= max_words:
                if i:
                    yield block[:i]
                notes.append(
                    f"the transcripts hold more than {max_words:,} words: the text after the first {words:,} was "
                    "not read, so the run finishes within its time limit; put the most useful text first"
                )
                return
            words += sentence.count(" ") + 1
        yield block


def _write(sentences: list[str], kept: _Writer, held: _Writer, hold_out: bool, fraction: float) -> None:
    """Write ``sentences`` to ``kept``, or when ``hold_out`` those that ``_is_heldout`` picks to ``held``."""
    if not hold_out:
        kept.write_all(sentences)
        return
    picks = [_is_heldout(sentence, fraction) for sentence in sentences]
    kept.write_all(list(itertools.compress(sentences, map(operator.not_, picks))))
    held.write_all(list(itertools.compress(sentences, picks)))


def prepare_data(
    inputs: TrainingInputs,
    heldout_fraction: float,
    directory: Path,
    max_test_words: int | None = None,
    max_training_words: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> PreparedData:
    """Read, normalise and split the inputs, the training text into ``directory`` (see module contract);
    ``progress`` follows the transcripts' bytes read (the long part: a gigabyte takes minutes)."""
    directory.mkdir(parents=True, exist_ok=True)
    train_pairs = [p for p in inputs.train_pairs if normalize_text(p.text)]
    test_pairs = [p for p in inputs.test_pairs if normalize_text(p.text)]
    notes: list[str] = []
    heldout_audio = False
    if not test_pairs and len(train_pairs) >= 2:
        train_pairs, test_pairs = _split_pairs(train_pairs, heldout_fraction)
        heldout_audio = True
        notes.append(f"no test audio: {len(test_pairs)} of the train pairs were held out for WER")
    pair_sentences = list(normalized_sentences(p.text for p in train_pairs))
    hold_out = not inputs.test_texts and not inputs.test_pairs
    with _Writer(directory / "training.txt") as kept, _Writer(directory / "heldout.txt") as held:
        for block in _up_to(_text_of(inputs.transcripts, progress), max_training_words, notes):
            _write(block, kept, held, hold_out, heldout_fraction)
        _write(pair_sentences, kept, held, hold_out, heldout_fraction)
        if hold_out and kept.count + held.count >= 2 and not held.count:
            held.write(kept.take_last())
    test = _TestText(max_test_words)
    heldout_text = False
    if hold_out and kept.count and held.count:
        training = SentenceFile(kept.path, kept.count)
        test.add(SentenceFile(held.path, held.count))
        heldout_text = True
        notes.append(
            f"no test text: {held.count} training sentences ({held.count / (held.count + kept.count):.0%}) "
            "were held out for perplexity and OOV"
        )
    else:  # nothing held out: every sentence is in one of the files
        training = SentenceFile(held.path, held.count) if held.count else SentenceFile(kept.path, kept.count)
    test.add(itertools.chain.from_iterable(_text_of(inputs.test_texts)))
    test.add(normalized_sentences(p.text for p in test_pairs))
    if test.unread:
        notes.append(
            f"test text past the first {test.count:,} sentences was not read: perplexity and OOV are measured on "
            f"at most {max_test_words:,} words"
        )
    return PreparedData(
        training, test.kept, train_pairs, test_pairs, pair_sentences, heldout_text, heldout_audio, notes, test.count
    )
