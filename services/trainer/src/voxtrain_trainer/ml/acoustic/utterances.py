"""Audio pairs stored one at a time as WAV files, so memory does not grow with the input.

Contract: :func:`store_pairs` decodes each pair's audio (or segment) as :func:`load_pcm` does (consecutive segments
of one recording through one :class:`~voxtrain_trainer.ml.audio.OpenRecording`),
writes it to ``directory/<n>.wav`` and keeps only the path, label, normalised text and
duration; pairs whose audio cannot be decoded (unless ``strict``) or is empty are skipped and
reported. A pair longer than ``max_pair_seconds`` (its ``duration``, else the recording's length
read from the container, past its ``offset``) is skipped with its reason before anything is
decoded, and no decode reads more than ``max_pair_seconds`` (plus a second) of a file, so an
un-cut pair of a multi-hour recording costs neither time nor memory. Once ``max_seconds`` of audio
are stored the remaining pairs are not decoded and are reported in one line.
:class:`PcmSequence` reads the files back lazily as ``(label, pcm, text)`` tuples, which is
what the WER and tuning code iterate over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from voxtrain_trainer.audio_probe import duration_seconds
from voxtrain_trainer.ml.audio import OpenRecording, pcm_duration, read_wav, write_wav
from voxtrain_trainer.ml.normalize import normalize_text
from voxtrain_trainer.ml.types import AudioPair, Media

MAX_PAIR_SECONDS = 120.0


@dataclass(frozen=True)
class StoredUtterance:
    """One pair's audio on disk (16 kHz mono WAV) and its normalised transcript."""

    label: str
    wav: Path
    text: str
    seconds: float


def _too_long(label: str, seconds: float, cap: float) -> str:
    return (
        f"{label}: {seconds:.0f} s of audio, longer than the {cap:.0f} s one utterance may last to be aligned "
        "with its text in one piece; cut the recording with offset/duration per manifest line, or pair it "
        "with a timed .vtt/.srt of the same base name"
    )


class _Lengths:
    """Recording lengths from their containers (no decoding), each file probed once."""

    def __init__(self) -> None:
        self._seconds: dict[Media, float | None] = {}

    def of(self, path: Media) -> float | None:
        if path not in self._seconds:
            try:
                self._seconds[path] = duration_seconds(path)
            except ValueError:
                self._seconds[path] = None  # load_pcm says why when it is decoded
        return self._seconds[path]


def store_pairs(
    pairs: Sequence[AudioPair],
    directory: Path,
    progress: Callable[[float], None] = lambda f: None,
    strict: bool = False,
    max_pair_seconds: float = MAX_PAIR_SECONDS,
    max_seconds: float | None = None,
) -> tuple[list[StoredUtterance], list[str]]:
    """Write every pair's audio to ``directory``; the stored utterances and what was skipped.

    With ``strict`` an undecodable file raises ``ValueError`` instead of being skipped.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with OpenRecording() as recording:  # a recording's consecutive segments share one opening (see OpenRecording)
        stored: list[StoredUtterance] = []
        skipped: list[str] = []
        lengths = _Lengths()
        total = 0.0
        for i, pair in enumerate(pairs):
            if max_seconds is not None and total >= max_seconds:
                skipped.append(
                    f"{len(pairs) - i} pair(s) from {pair.label} on were not used: the first {max_seconds:.0f} s of "
                    "audio are what a run adapts to in its time limit"
                )
                break
            seconds = pair.duration
            if seconds is None:
                length = lengths.of(pair.audio)
                seconds = None if length is None else max(length - (pair.offset or 0.0), 0.0)
            if seconds is not None and seconds > max_pair_seconds:
                skipped.append(_too_long(pair.label, seconds, max_pair_seconds))
                progress((i + 1) / len(pairs))
                continue
            try:
                pcm = recording.load_pcm(pair.audio, pair.offset, pair.duration or max_pair_seconds + 1.0)
            except ValueError as exc:
                if strict:
                    raise
                skipped.append(f"{pair.label}: {exc}")
                continue
            if pcm_duration(pcm) > max_pair_seconds:  # the container did not say how long it is
                skipped.append(_too_long(pair.label, pcm_duration(pcm), max_pair_seconds))
                continue
            if len(pcm) < 2:
                skipped.append(f"{pair.label}: no audio in the segment")
                continue
            wav = write_wav(directory / f"u{len(stored):05d}.wav", pcm)
            stored.append(StoredUtterance(pair.label, wav, normalize_text(pair.text), pcm_duration(pcm)))
            total += stored[-1].seconds
            del pcm
            progress((i + 1) / len(pairs))
        return stored, skipped


class PcmSequence(Sequence[tuple[str, bytes, str]]):
    """``(label, pcm, text)`` of stored utterances, read from disk on access."""

    def __init__(self, utterances: Sequence[StoredUtterance]) -> None:
        self._items = list(utterances)

    def __len__(self) -> int:
        return len(self._items)

    def labels(self) -> list[tuple[str, str]]:
        """``(label, text)`` of every utterance, without reading the audio."""
        return [(u.label, u.text) for u in self._items]

    @overload
    def __getitem__(self, index: int) -> tuple[str, bytes, str]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, bytes, str]]: ...

    def __getitem__(self, index: int | slice) -> tuple[str, bytes, str] | list[tuple[str, bytes, str]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        item = self._items[index]
        return item.label, read_wav(item.wav), item.text
