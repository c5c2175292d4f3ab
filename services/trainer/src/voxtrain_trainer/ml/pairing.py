"""Pair long recordings with their timed transcripts and cut them into utterances by cue times.

Contract of :func:`pair_recordings`: an AUDIO file and a .vtt/.srt transcript whose file names
have the same base name (``talk.mp3`` + ``talk.vtt``, case-insensitive) are paired, unless the
audio is already paired by a manifest line (manifest lines win). Each cue with text becomes an
:class:`AudioPair` for ``[start - pad, end + pad)`` (the padding never reaches into a neighbouring
cue); cues with no text, shorter than ``min_cue_seconds`` or longer than ``max_cue_seconds``
(too long to align reliably in one piece) are skipped and reported, and silence between cues is
never used. Pairs go to the split of the transcript ("test" for a TEST dataset). The report
counts recordings paired, cues cut and cues skipped (with reasons), and names the AUDIO files
that have no transcript at all: a run trains from text without them and says so.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from voxtrain_trainer.ml.transcripts import read_cues
from voxtrain_trainer.ml.types import AudioPair

TIMED_FORMATS = (".vtt", ".srt")
MAX_CUE_SECONDS = 30.0
MIN_CUE_SECONDS = 0.3
CUE_PAD_SECONDS = 0.15


@dataclass(frozen=True)
class NamedFile:
    """A dataset file: the customer's file name, the local path, and its split."""

    name: str
    path: Path
    split: str = "train"


@dataclass
class PairingResult:
    """Pairs cut from recordings, the transcripts they used, and what was paired, cut and skipped."""

    train_pairs: list[AudioPair] = field(default_factory=list)
    test_pairs: list[AudioPair] = field(default_factory=list)
    used_transcripts: list[Path] = field(default_factory=list)
    paired: list[str] = field(default_factory=list)
    cues_cut: int = 0
    skipped: list[str] = field(default_factory=list)
    unused_audio: list[str] = field(default_factory=list)

    def report(self) -> dict:
        """JSON-ready counts and examples for the metrics."""
        return {
            "recordings_paired": len(self.paired),
            "paired": self.paired[:50],
            "cues_cut": self.cues_cut,
            "cues_skipped": len(self.skipped),
            "skipped": self.skipped[:50],
            "unused_audio": self.unused_audio[:50],
        }


def _stem(name: str) -> str:
    return PurePath(name).stem.lower()


def cut_by_cues(
    audio: NamedFile,
    transcript: NamedFile,
    max_cue_seconds: float = MAX_CUE_SECONDS,
    min_cue_seconds: float = MIN_CUE_SECONDS,
    pad: float = CUE_PAD_SECONDS,
) -> tuple[list[AudioPair], list[str]]:
    """One pair per usable cue of ``transcript`` over ``audio``; skipped cues with reasons."""
    cues = read_cues(transcript.path)
    pairs: list[AudioPair] = []
    skipped: list[str] = []
    for i, cue in enumerate(cues):
        where = f"{transcript.name} cue {i + 1} ({cue.start:.2f}-{cue.end:.2f} s)"
        length = cue.end - cue.start
        if not cue.text:
            skipped.append(f"{where}: no text")
        elif length < min_cue_seconds:
            skipped.append(f"{where}: shorter than {min_cue_seconds} s")
        elif length > max_cue_seconds:
            skipped.append(f"{where}: longer than {max_cue_seconds:.0f} s, too long to align in one piece")
        else:
            before = cues[i - 1].end if i > 0 else 0.0
            after = cues[i + 1].start if i + 1 < len(cues) else cue.end + pad
            start = max(cue.start - pad, min(before, cue.start), 0.0)
            end = min(cue.end + pad, max(after, cue.end))
            pairs.append(
                AudioPair(
                    audio.path, cue.text, offset=start, duration=end - start, name=f"{audio.name}@{cue.start:.2f}"
                )
            )
    return pairs, skipped


def pair_recordings(
    audio: Sequence[NamedFile], transcripts: Sequence[NamedFile], already_paired: Collection[Path] = ()
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
            result.skipped.append(f"{recording.name}: several transcripts share its base name ({names}); not paired")
            result.unused_audio.append(recording.name)
            continue
        transcript = matches[0]
        pairs, skipped = cut_by_cues(recording, transcript)
        (result.test_pairs if transcript.split == "test" else result.train_pairs).extend(pairs)
        result.used_transcripts.append(transcript.path)
        result.paired.append(f"{recording.name} + {transcript.name}")
        result.cues_cut += len(pairs)
        result.skipped.extend(skipped)
    return result
