"""Pair long recordings with their timed transcripts and cut them into utterances by cue times.

Contract of :func:`pair_recordings`: an AUDIO file and a .vtt/.srt transcript whose file names
have the same base name (``talk.mp3`` + ``talk.vtt``, case-insensitive) are paired, unless the
audio is already paired by a manifest line (manifest lines win). Each cue with text becomes an
:class:`AudioPair` for ``[start - pad, end + pad)`` (the padding never reaches into a neighbouring
cue); cues with no text, shorter than ``min_cue_seconds``, longer than ``max_cue_seconds``
(too long to align reliably in one piece) or starting after the end of the recording (its length
is read from the container, nothing is decoded) are skipped and reported, and silence between
cues is never used. Pairs go to the split of the transcript ("test" for a TEST dataset). At most
``max_pairs`` pairs are cut in all; the cues past that are counted as not used, and such a transcript
is not in ``used_transcripts``: all its text still trains the language model. The report counts
recordings paired, cues cut and cues skipped (with reasons), and names the AUDIO files that have no
transcript at all: a run trains from text without them and says so.

Cues are read one at a time (see :mod:`transcripts`) and only the first :data:`EXAMPLES` skip
reasons are kept, so memory holds the pairs and not the subtitle file.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from voxtrain_trainer.audio_probe import duration_seconds
from voxtrain_trainer.ml.transcripts import Cue, read_cues
from voxtrain_trainer.ml.types import AudioPair, Media

TIMED_FORMATS = (".vtt", ".srt")
MAX_CUE_SECONDS = 30.0
MIN_CUE_SECONDS = 0.3
CUE_PAD_SECONDS = 0.15
EXAMPLES = 50
# Pairs a run takes in all: more audio than a run adapts to and evaluates on in its time limit
# (see TrainingSettings.max_train_audio_seconds / max_test_pairs), and each pair is held in memory.
MAX_PAIRS = 20_000


@dataclass
class Skips:
    """How many things were skipped, with the first :data:`EXAMPLES` reasons (bounded memory)."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(reason)

    def extend(self, other: Skips) -> None:
        self.count += other.count
        self.examples.extend(other.examples[: EXAMPLES - len(self.examples)])

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        return iter(self.examples)


@dataclass(frozen=True)
class NamedFile:
    """A dataset file: the customer's file name, where it is (a recording may be stored, not local), and its split."""

    name: str
    path: Media
    split: str = "train"

    @property
    def local(self) -> Path:
        """The local file of a transcript (text is always downloaded)."""
        assert isinstance(self.path, Path), f"{self.name}: text is read from a local file"
        return self.path


@dataclass
class PairingResult:
    """Pairs cut from recordings, the transcripts they used, and what was paired, cut and skipped."""

    train_pairs: list[AudioPair] = field(default_factory=list)
    test_pairs: list[AudioPair] = field(default_factory=list)
    used_transcripts: list[Path] = field(default_factory=list)
    paired: list[str] = field(default_factory=list)
    cues_cut: int = 0
    skipped: Skips = field(default_factory=Skips)
    unused_audio: list[str] = field(default_factory=list)
    pairs_not_used: int = 0  # beyond max_pairs

    def report(self) -> dict:
        """JSON-ready counts and examples for the metrics."""
        return {
            "recordings_paired": len(self.paired),
            "paired": self.paired[:EXAMPLES],
            "cues_cut": self.cues_cut,
            "cues_skipped": self.skipped.count,
            "skipped": self.skipped.examples,
            "unused_audio": self.unused_audio[:EXAMPLES],
            "pairs_not_used": self.pairs_not_used,
        }


def _stem(name: str) -> str:
    return PurePath(name).stem.lower()


def _with_neighbours(cues: Iterable[Cue]) -> Iterator[tuple[Cue | None, Cue, Cue | None]]:
    before: Cue | None = None
    current: Cue | None = None
    for cue in cues:
        if current is not None:
            yield before, current, cue
        before, current = current, cue
    if current is not None:
        yield before, current, None


def cut_by_cues(
    audio: NamedFile,
    transcript: NamedFile,
    max_cue_seconds: float = MAX_CUE_SECONDS,
    min_cue_seconds: float = MIN_CUE_SECONDS,
    pad: float = CUE_PAD_SECONDS,
    audio_seconds: float | None = None,
    max_pairs: int | None = None,
) -> tuple[list[AudioPair], Skips, int]:
    """One pair per usable cue of ``transcript`` over ``audio`` (whose length is ``audio_seconds`` when known);
    the skipped cues with reasons, and how many usable cues were left out past ``max_pairs``."""
    pairs: list[AudioPair] = []
    skipped = Skips()
    past_end = not_used = 0
    for i, (previous, cue, following) in enumerate(_with_neighbours(read_cues(transcript.local))):
        where = f"{transcript.name} cue {i + 1} ({cue.start:.2f}-{cue.end:.2f} s)"
        length = cue.end - cue.start
        if not cue.text:
            skipped.add(f"{where}: no text")
        elif length < min_cue_seconds:
            skipped.add(f"{where}: shorter than {min_cue_seconds} s")
        elif length > max_cue_seconds:
            skipped.add(f"{where}: longer than {max_cue_seconds:.0f} s, too long to align in one piece")
        elif audio_seconds is not None and cue.start >= audio_seconds:
            past_end += 1
        elif max_pairs is not None and len(pairs) >= max_pairs:
            not_used += 1
        else:
            before = previous.end if previous is not None else 0.0
            after = following.start if following is not None else cue.end + pad
            start = max(cue.start - pad, min(before, cue.start), 0.0)
            end = min(cue.end + pad, max(after, cue.end))
            pairs.append(
                AudioPair(
                    audio.path, cue.text, offset=start, duration=end - start, name=f"{audio.name}@{cue.start:.2f}"
                )
            )
    if past_end:
        skipped.add(
            f"{transcript.name}: {past_end} cue(s) start after the end of {audio.name} ({audio_seconds:.1f} s); "
            "check that the subtitles belong to this recording"
        )
        skipped.count += past_end - 1
    return pairs, skipped, not_used


def _probe(path: Media) -> float | None:
    try:
        return duration_seconds(path)
    except ValueError:
        return None  # undecodable audio is reported when its pairs are decoded


def pair_recordings(
    audio: Sequence[NamedFile],
    transcripts: Sequence[NamedFile],
    already_paired: Collection[Media] = (),
    max_pairs: int = MAX_PAIRS,
    probe: Callable[[Media], float | None] = _probe,
) -> PairingResult:
    """Pair AUDIO files with same-named .vtt/.srt transcripts and cut them (see module contract)."""
    result = PairingResult()
    timed: dict[str, list[NamedFile]] = {}
    for t in transcripts:
        if PurePath(t.name).suffix.lower() in TIMED_FORMATS:
            timed.setdefault(_stem(t.name), []).append(t)
    for recording in audio:
        if recording.path in already_paired:
            continue
        matches = timed.get(_stem(recording.name), [])
        if not matches:
            result.unused_audio.append(recording.name)
            continue
        if len(matches) > 1:
            names = ", ".join(m.name for m in matches)
            result.skipped.add(f"{recording.name}: several transcripts share its base name ({names}); not paired")
            result.unused_audio.append(recording.name)
            continue
        transcript = matches[0]
        room = max(max_pairs - len(result.train_pairs) - len(result.test_pairs), 0)
        pairs, skipped, not_used = cut_by_cues(
            recording, transcript, audio_seconds=probe(recording.path), max_pairs=room
        )
        (result.test_pairs if transcript.split == "test" else result.train_pairs).extend(pairs)
        if not not_used:  # cues past the cap still train the language model as text
            result.used_transcripts.append(transcript.local)
        result.paired.append(f"{recording.name} + {transcript.name}")
        result.cues_cut += len(pairs)
        result.skipped.extend(skipped)
        result.pairs_not_used += not_used
    return result
