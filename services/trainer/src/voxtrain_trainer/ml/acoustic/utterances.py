"""Audio pairs stored one at a time as WAV files, so memory does not grow with the input.

Contract: :func:`store_pairs` decodes each pair's audio (or segment) with :func:`load_pcm`,
writes it to ``directory/<n>.wav`` and keeps only the path, label, normalised text and
duration; pairs whose audio cannot be decoded (unless ``strict``) or is empty are skipped and
reported.
:class:`PcmSequence` reads the files back lazily as ``(label, pcm, text)`` tuples, which is
what the WER and tuning code iterate over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from voxtrain_trainer.ml.audio import load_pcm, pcm_duration, read_wav, write_wav
from voxtrain_trainer.ml.normalize import normalize_text
from voxtrain_trainer.ml.types import AudioPair


@dataclass(frozen=True)
class StoredUtterance:
    """One pair's audio on disk (16 kHz mono WAV) and its normalised transcript."""

    label: str
    wav: Path
    text: str
    seconds: float


def store_pairs(
    pairs: Sequence[AudioPair],
    directory: Path,
    progress: Callable[[float], None] = lambda f: None,
    strict: bool = False,
) -> tuple[list[StoredUtterance], list[str]]:
    """Write every pair's audio to ``directory``; the stored utterances and what was skipped.

    With ``strict`` an undecodable file raises ``ValueError`` instead of being skipped.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stored: list[StoredUtterance] = []
    skipped: list[str] = []
    for i, pair in enumerate(pairs):
        try:
            pcm = load_pcm(pair.audio, pair.offset, pair.duration)
        except ValueError as exc:
            if strict:
                raise
            skipped.append(f"{pair.label}: {exc}")
            continue
        if len(pcm) < 2:
            skipped.append(f"{pair.label}: no audio in the segment")
            continue
        wav = write_wav(directory / f"u{len(stored):05d}.wav", pcm)
        stored.append(StoredUtterance(pair.label, wav, normalize_text(pair.text), pcm_duration(pcm)))
        del pcm
        progress((i + 1) / len(pairs))
    return stored, skipped


class PcmSequence(Sequence[tuple[str, bytes, str]]):
    """``(label, pcm, text)`` of stored utterances, read from disk on access."""

    def __init__(self, utterances: Sequence[StoredUtterance]) -> None:
        self._items = list(utterances)

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> tuple[str, bytes, str]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, bytes, str]]: ...

    def __getitem__(self, index: int | slice) -> tuple[str, bytes, str] | list[tuple[str, bytes, str]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        item = self._items[index]
        return item.label, read_wav(item.wav), item.text
