"""Turn a TrainingRequested's datasets (downloaded to local files) into :class:`TrainingInputs`.

Pure, apart from reading the local files. Manifest lines (DESIGN.md, "Datasets") link an audio
dataset to inline ``text`` or to a ``transcript`` dataset, optionally cut by ``offset``/``duration``,
with ``split`` "train" or "test" (default: "test" when the transcript is a TEST dataset, else
"train"). References are a dataset id or a file name unique in the model; they were checked by the
validator, but a bad line here still fails with a clear message rather than a crash.

Manifests are read line by line, and no more lines than make :data:`~.ml.pairing.MAX_PAIRS` pairs
(the lines past it are counted as not read, in the pairing report). A line naming a ``transcript``
whose text is longer than :data:`MAX_PAIR_TEXT_CHARS` is skipped with its reason: no stretch of
audio that long can be aligned as one utterance (the transcript still trains as text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from voxtrain_shared.vocab import DatasetType

from .ml.errors import TrainingError
from .ml.pairing import MAX_PAIRS, NamedFile, Skips, pair_recordings
from .ml.transcripts import read_utterances
from .ml.types import AudioPair, Media, StoredRecording, TextFile, TrainingInputs


@dataclass(frozen=True)
class LocalDataset:
    """A dataset of the run: text at ``path`` (downloaded); a recording at ``path`` or, when ``stored`` is given,
    read where it is stored (``path`` is then never written)."""

    dataset_id: str
    type: DatasetType
    file_name: str
    path: Path
    stored: StoredRecording | None = None

    @property
    def media(self) -> Media:
        return self.stored or self.path


def _index(datasets: Sequence[LocalDataset]) -> dict[str, LocalDataset]:
    by_ref: dict[str, LocalDataset] = {d.dataset_id: d for d in datasets}
    names: dict[str, list[LocalDataset]] = {}
    for d in datasets:
        names.setdefault(d.file_name, []).append(d)
    for name, ds in names.items():
        if len(ds) == 1:
            by_ref.setdefault(name, ds[0])
    return by_ref


MAX_PAIR_TEXT_CHARS = 20_000


class _PairTooLong(Exception):
    pass


def _text_of(ds: LocalDataset, cache: dict[str, str]) -> str:
    """The transcript's text as one utterance; ``_PairTooLong`` past MAX_PAIR_TEXT_CHARS (read no further)."""
    if ds.dataset_id not in cache:
        parts: list[str] = []
        size = 0
        for utterance in read_utterances(ds.path):
            parts.append(utterance)
            size += len(utterance) + 1
            if size > MAX_PAIR_TEXT_CHARS + 1:
                raise _PairTooLong(
                    f"its transcript {ds.file_name} has more than {MAX_PAIR_TEXT_CHARS:,} characters, far more than "
                    "one stretch of audio that can be aligned in one piece says; cut the audio into utterances "
                    "with offset/duration and a text per line, or use a timed .vtt/.srt (the transcript still "
                    "trains as text)"
                )
        cache[ds.dataset_id] = " ".join(parts)
    return cache[ds.dataset_id]


def _manifest_pairs(
    datasets: Sequence[LocalDataset], by_ref: Mapping[str, LocalDataset], room: int, skips: Skips
) -> tuple[list[AudioPair], list[AudioPair], int]:
    """Train and test pairs of every manifest line (at most ``room``), and the lines not read past it."""
    train: list[AudioPair] = []
    test: list[AudioPair] = []
    texts: dict[str, str] = {}
    not_read = 0
    for manifest in (d for d in datasets if d.type is DatasetType.MANIFEST):
        with manifest.path.open(encoding="utf-8-sig") as lines:
            for n, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                if len(train) + len(test) >= room:
                    not_read += 1 + sum(1 for rest in lines if rest.strip())
                    break
                where = f"{manifest.file_name} line {n}"
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TrainingError("validation_failed", f"{where}: not JSON ({exc.msg})", "gather") from None
                try:
                    pair, split = _pair(entry, by_ref, where, texts)
                except _PairTooLong as exc:
                    skips.add(f"{where}: not used: {exc}")
                    continue
                (test if split == "test" else train).append(pair)
    return train, test, not_read


def build_inputs(datasets: Sequence[LocalDataset]) -> tuple[TrainingInputs, dict[str, int]]:
    """The run's inputs, and counts of what was used (for the model card)."""
    by_ref = _index(datasets)
    transcripts = [TextFile(d.path) for d in datasets if d.type is DatasetType.TRANSCRIPT]
    test_texts = [TextFile(d.path) for d in datasets if d.type is DatasetType.TEST]
    manifest_skips = Skips()
    train_pairs, test_pairs, lines_not_read = _manifest_pairs(datasets, by_ref, MAX_PAIRS, manifest_skips)
    # AUDIO + same-named .vtt/.srt: paired and cut by cue times (manifest lines win), see ml.pairing
    paired = pair_recordings(
        [NamedFile(d.file_name, d.media) for d in datasets if d.type is DatasetType.AUDIO],
        [
            NamedFile(d.file_name, d.path, "test" if d.type is DatasetType.TEST else "train")
            for d in datasets
            if d.type in (DatasetType.TRANSCRIPT, DatasetType.TEST)
        ],
        already_paired={p.audio for p in train_pairs + test_pairs},
        max_pairs=MAX_PAIRS - len(train_pairs) - len(test_pairs),
    )
    train_pairs += paired.train_pairs
    test_pairs += paired.test_pairs
    transcripts = [t for t in transcripts if t.path not in paired.used_transcripts]
    test_texts = [t for t in test_texts if t.path not in paired.used_transcripts]
    used = {
        "transcript_files": len(transcripts),
        "test_files": len(test_texts),
        "train_pairs": len(train_pairs),
        "test_pairs": len(test_pairs),
    }
    return TrainingInputs(
        transcripts=transcripts,
        test_texts=test_texts,
        train_pairs=train_pairs,
        test_pairs=test_pairs,
        pairing={
            **paired.report(),
            "manifest_lines_skipped": manifest_skips.count,
            "manifest_skipped": manifest_skips.examples,
            "manifest_lines_not_read": lines_not_read,
            "max_pairs": MAX_PAIRS,
        },
        unused_audio=paired.unused_audio,
    ), used


def _pair(
    entry: Mapping[str, object], by_ref: Mapping[str, LocalDataset], where: str, texts: dict[str, str]
) -> tuple[AudioPair, str]:
    if not isinstance(entry, dict):
        raise TrainingError("validation_failed", f"{where}: each line must be a JSON object", "gather")
    audio = by_ref.get(str(entry.get("audio")))
    if audio is None or audio.type is not DatasetType.AUDIO:
        raise TrainingError(
            "validation_failed", f"{where}: 'audio' does not name an AUDIO dataset of this model", "gather"
        )
    split = entry.get("split")
    if "text" in entry:
        text, default_split = str(entry["text"]), "train"
    else:
        transcript = by_ref.get(str(entry.get("transcript")))
        if transcript is None or transcript.type not in (DatasetType.TRANSCRIPT, DatasetType.TEST):
            raise TrainingError(
                "validation_failed", f"{where}: 'transcript' does not name a TRANSCRIPT or TEST dataset", "gather"
            )
        text = _text_of(transcript, texts)
        default_split = "test" if transcript.type is DatasetType.TEST else "train"
    split = str(split or default_split)
    if split not in ("train", "test"):
        raise TrainingError("validation_failed", f'{where}: \'split\' must be "train" or "test"', "gather")
    offset = entry.get("offset")
    duration = entry.get("duration")
    return AudioPair(
        audio=audio.media,
        text=text,
        offset=float(offset) if offset is not None else None,
        duration=float(duration) if duration is not None else None,
        name=f"{audio.file_name}@{offset or 0}",
    ), split
