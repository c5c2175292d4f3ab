"""MANIFEST datasets (.jsonl): every line links an audio dataset of the same model to its words.

A line is ``{"audio": REF, "text": "the words"}`` or ``{"audio": REF, "transcript": REF}``, with
optional ``"offset"`` and ``"duration"`` (seconds) to cut a segment out of the audio and
``"split"`` (``"train"`` or ``"test"``). REF is a dataset id of the same model, or the original
file name of one when that name is unique in the model.

References are looked up through the ``resolve`` callable the caller passes in, which only ever
sees datasets of the manifest's own model and tenant. A reference that looks like a path is
refused without being looked up. The file is read line by line, so its size does not matter;
lines with inline text and no problem (nearly all lines of a big manifest) take a shorter path
with the same effects: a few hundred at a time, column by column, else one by one; their words
are counted in batches.
"""

from __future__ import annotations

import functools
import json
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import repeat
from operator import attrgetter
from typing import Any, BinaryIO, Literal

import msgspec
from msgspec import UNSET, UnsetType

from voxtrain_shared.vocab import DatasetType, ErrorCode

from .outcome import Outcome, Report, failed
from .source import stream_size
from .text_stream import TextProblem, Utf8Lines
from .words import count_words

CODE = ErrorCode.VALIDATION_FAILED

KEYS = ("audio", "text", "transcript", "offset", "duration", "split")
SPLITS = ("train", "test")
# A segment may end this much past the audio's end (rounding of durations by tools).
END_TOLERANCE_SECONDS = 0.05
_MAX_CACHED_REFS = 100_000
_MAX_REMEMBERED_ENTRIES = 1_000_000
# The fast path: the keys of a line with inline text, the JSON decoder it uses, and the largest
# int read as seconds there (beyond it float() would overflow: the line goes the slow way).
_INLINE_KEYS = frozenset(("audio", "text", "offset", "duration", "split"))
_raw_decode = json.JSONDecoder().raw_decode
_BIG = 2**1000
# Lines checked together by the batch path: a batch with a problem in it goes line by line.
_BATCH_LINES = 256


class _PlainLine(msgspec.Struct, forbid_unknown_fields=True):
    """A line the batch path may take: inline text, its keys and value types as ``line`` wants them.

    Decoded by msgspec like ``json.loads`` would (the last of repeated keys wins, integers of any
    size stay ints); anything else (an unknown key, a value of another type, NaN, a lone surrogate)
    is a DecodeError and the batch goes line by line.
    """

    audio: str
    text: str
    offset: int | float | UnsetType = UNSET
    duration: int | float | UnsetType = UNSET
    split: Literal["train", "test"] = "train"


_decode_plain = msgspec.json.Decoder(_PlainLine).decode
_AUDIO, _TEXT, _OFFSET, _DURATION, _SPLIT = map(attrgetter, ("audio", "text", "offset", "duration", "split"))


class DatasetState(StrEnum):
    """How far a referenced dataset's own validation has got."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A dataset of the manifest's model and tenant, as ``resolve`` reports it."""

    dataset_id: str
    type: DatasetType
    file_name: str
    status: DatasetState
    duration_seconds: float | None = None  # known for AUDIO datasets that passed validation


class AmbiguousReference(Exception):
    """Raised by ``resolve`` when a file name matches more than one dataset of the model."""

    def __init__(self, ref: str, candidates: Sequence[DatasetRef]) -> None:
        super().__init__(f"{ref!r} matches {len(candidates)} datasets")
        self.ref = ref
        self.candidates = tuple(candidates)


Resolver = Callable[[str], "DatasetRef | None"]


def validate_manifest(stream: BinaryIO, resolve: Resolver) -> Outcome:
    """Check every line of the manifest in ``stream``; references are looked up with ``resolve``.

    ``resolve(ref)`` returns the dataset of the manifest's own model and tenant whose id or
    (unique) original file name is ``ref``, or None; it may raise AmbiguousReference. Any other
    exception from it propagates (it is the caller's infrastructure, not the file's fault), as does
    SourceReadError from the stream. A referenced dataset that failed validation is an error; one
    still pending is fine (the model trains only once every dataset has passed), and segment
    bounds that need its duration are returned in ``metadata["deferred_segment_ends"]``.
    Problems fail the Outcome with code ``validation_failed``, each with its line number.
    """
    size = stream_size(stream)
    if size == 0:
        return failed(
            CODE,
            "The manifest is empty (0 bytes). Put one JSON object per line, like "
            '{"audio": "call-01.wav", "text": "the words spoken"}.',
            metadata={"size_bytes": 0},
        )
    report = Report()
    checker = _ManifestChecker(report, resolve)
    lines = Utf8Lines(stream)
    try:
        for first, block in lines.blocks():
            checker.lines(first, block.split("\n")[:-1])
    except TextProblem as problem:
        report.error(problem.message, line=problem.line, byte_offset=problem.byte_offset)
    if checker.entries == 0 and not report.failed:
        report.error(
            "The manifest has no entries: every line is empty. Put one JSON object per "
            'line, like {"audio": "call-01.wav", "text": "the words spoken"}.'
        )
    metadata = {"size_bytes": size, "lines": lines.lines, **checker.metadata()}
    return report.outcome(CODE, metadata)


class _ManifestChecker:
    def __init__(self, report: Report, resolve: Resolver) -> None:
        self._report = report
        self._resolve = resolve
        self._cache: dict[str, DatasetRef | AmbiguousReference | None] = {}
        self._seen: dict[int, int] = {}  # entry hash -> first line, to spot repeated entries
        self._words = 0  # inline text words (a manifest reports no vocabulary: words are only counted)
        self.entries = 0
        self._splits = {"train": 0, "test": 0}
        self._inline = 0
        self._referenced: set[str] = set()
        self._pending: set[str] = set()
        self._deferred_ends: dict[str, float] = {}
        self._segment_seconds = 0.0
        self._audio_ok: dict[str, DatasetRef] = {}  # 'audio' refs already found usable (and cached)
        self._texts: list[str] = []  # inline texts taken by the fast path, words not counted yet

    def lines(self, first: int, lines: list[str]) -> None:
        """Check ``lines`` in order, the first being line ``first``.

        Exactly ``line`` for each; a line with inline text and no problem at all (most lines of
        a big manifest) takes a shorter way, and the words of such lines are counted in batches.
        """
        plain = self._plain_line
        for at in range(0, len(lines), _BATCH_LINES):
            batch = lines[at : at + _BATCH_LINES]
            if self._plain_batch(first + at, batch):
                continue
            for number, text in enumerate(batch, first + at):
                if not plain(number, text):
                    self._count_words()
                    self.line(number, text)
        self._count_words()

    def _plain_batch(self, first: int, lines: list[str]) -> bool:
        """Take in ``lines`` at once if every one of them is a line ``_plain_line`` would take.

        Each line is decoded by msgspec straight into a ``_PlainLine`` (C code that also checks
        the keys and the types of the values), then the rest of ``_plain_line``'s checks run
        column by column over the batch with C-speed ``map``/``all``/set operations. Returns
        False, having changed nothing, if any line might not be plain (or repeats an entry): the
        batch then goes line by line, so findings and messages are those of ``line``.
        """
        try:
            if not (all(map(str.startswith, lines, repeat("{"))) and all(map(str.endswith, lines, repeat("}")))):
                return False
            entries = list(map(_decode_plain, lines))
        except msgspec.DecodeError:  # (ValidationError is one)
            return False
        texts = list(map(_TEXT, entries))
        refs = list(map(_AUDIO, entries))
        audio_ok = self._audio_ok
        if not (all(map(str.strip, texts)) and all(map(audio_ok.__contains__, refs))):
            return False
        raw_offsets = [None if value is UNSET else value for value in map(_OFFSET, entries)]
        raw_durations = [None if value is UNSET else value for value in map(_DURATION, entries)]
        offsets = _batch_seconds(raw_offsets, allow_zero=True)
        durations = _batch_seconds(raw_durations, allow_zero=False)
        if offsets is None or durations is None:
            return False
        audios = list(map(audio_ok.__getitem__, refs))
        try:
            deferred = [
                (audio.dataset_id, end)
                for audio, offset, duration in zip(audios, offsets, durations, strict=True)
                if (end := _deferred_end(audio, offset, duration)) is not None
            ]
        except _NotPlain:
            return False
        ids = [audio.dataset_id for audio in audios]
        # The key ``_check_repeat`` makes (an absent offset or duration is None there, as here).
        keys = list(map(hash, zip(ids, texts, repeat(None), raw_offsets, raw_durations, strict=False)))
        seen = self._seen
        if len(set(keys)) != len(keys) or not seen.keys().isdisjoint(keys):
            return False  # a repeated entry: line by line, which warns where it is
        # No problem: the effects ``_plain_line`` has on each line, in order.
        self.entries += len(lines)
        for dataset_id, end_s in deferred:
            self._deferred_ends[dataset_id] = max(self._deferred_ends.get(dataset_id, 0.0), end_s)
        test = list(map(_SPLIT, entries)).count("test")
        self._splits["test"] += test
        self._splits["train"] += len(lines) - test
        self._inline += len(lines)
        self._texts.extend(texts)
        # Added one by one in order, as line by line (the float sum depends on the order).
        self._segment_seconds = functools.reduce(operator.add, filter(_is_not_none, durations), self._segment_seconds)
        room = _MAX_REMEMBERED_ENTRIES - len(seen)
        if room > 0:
            seen.update(zip(keys[:room], range(first, first + len(lines)), strict=False))
        return True

    def _count_words(self) -> None:
        if self._texts:
            self._words += count_words("\n".join(self._texts))  # (a line break separates words)
            self._texts = []

    def _plain_line(self, number: int, text: str) -> bool:
        """Take in a line like ``{"audio": REF, "text": "…"[, "offset"…]}`` that has no problem.

        Returns False, having changed nothing, for any other line: ``line`` then decides.
        """
        if text[:1] != "{" or text[-1:] != "}":
            return False
        try:
            entry, end = _raw_decode(text)
        except (ValueError, RecursionError):
            return False
        if end != len(text) or type(entry) is not dict or not entry.keys() <= _INLINE_KEYS:
            return False
        ref, words = entry.get("audio"), entry.get("text")
        if type(ref) is not str or type(words) is not str or not words.strip():
            return False
        audio = self._audio_ok.get(ref)
        if audio is None:
            return False
        try:
            offset = _plain_seconds(entry, "offset", allow_zero=True)
            duration = _plain_seconds(entry, "duration", allow_zero=False)
            deferred = _deferred_end(audio, offset, duration)
        except _NotPlain:
            return False
        split = entry.get("split", "train")
        if split not in SPLITS:
            return False
        # No problem: the effects ``line`` would have.
        self.entries += 1
        if deferred is not None:
            self._deferred_ends[audio.dataset_id] = max(self._deferred_ends.get(audio.dataset_id, 0.0), deferred)
        self._splits[split] += 1
        self._inline += 1
        self._texts.append(words)
        if duration is not None:
            self._segment_seconds += duration
        self._check_repeat(number, entry, audio, None)
        return True

    def line(self, number: int, text: str) -> None:
        if not text.strip():
            return
        errors_before = self._report.error_count
        try:
            entry = json.loads(text)
        except (ValueError, RecursionError) as exc:
            where = f", column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "too deeply nested"
            self._error(number, f"Line {number}{where}: not valid JSON ({reason}). Each line must be one JSON object.")
            return
        if not isinstance(entry, dict):
            self._error(
                number,
                f"Line {number}: expected a JSON object like "
                '{"audio": "call-01.wav", "text": "…"}, found '
                f"{_json_kind(entry)}.",
            )
            return
        self.entries += 1
        for key in entry:
            if key not in KEYS:
                self._error(
                    number, f"Line {number}: unknown key {key!r}; the keys are {', '.join(KEYS)}.", field=str(key)
                )

        audio = self._ref(number, entry, "audio", (DatasetType.AUDIO,))
        if audio is not None and entry["audio"] in self._cache:
            self._audio_ok[entry["audio"]] = audio
        if "audio" not in entry:
            self._error(
                number,
                f"Line {number}: 'audio' is missing; every line names the audio dataset it is about.",
                field="audio",
            )

        has_text, has_transcript = "text" in entry, "transcript" in entry
        transcript: DatasetRef | None = None
        if has_text and has_transcript:
            self._error(number, f"Line {number}: give either 'text' or 'transcript', not both.", field="transcript")
        elif not has_text and not has_transcript:
            self._error(
                number,
                f"Line {number}: 'text' (the words spoken) or 'transcript' (a transcript dataset) is missing.",
                field="text",
            )
        elif has_text:
            words = entry["text"]
            if not isinstance(words, str) or not words.strip():
                self._error(
                    number, f"Line {number}: 'text' must be the words spoken, as a non-empty string.", field="text"
                )
        else:
            transcript = self._ref(number, entry, "transcript", (DatasetType.TRANSCRIPT, DatasetType.TEST))

        offset = self._seconds(number, entry, "offset", allow_zero=True)
        duration = self._seconds(number, entry, "duration", allow_zero=False)
        split = entry.get("split")
        if "split" in entry and split not in SPLITS:
            self._error(
                number,
                f'Line {number}: \'split\' must be "train" or "test", not {json.dumps(split)[:40]}.',
                field="split",
            )
        if audio is not None:
            self._check_segment(number, audio, offset, duration)

        if self._report.error_count > errors_before:
            return
        if split is None:
            split = "test" if transcript is not None and transcript.type == DatasetType.TEST else "train"
        self._splits[split] += 1
        if has_text:
            self._inline += 1
            self._words += count_words(entry["text"])
        if duration is not None:
            self._segment_seconds += duration
        self._check_repeat(number, entry, audio, transcript)

    # ------------------------------------------------------------------ parts of a line

    def _ref(self, number: int, entry: dict[str, Any], key: str, types: tuple[DatasetType, ...]) -> DatasetRef | None:
        if key not in entry:
            return None
        ref = entry[key]
        wanted = " or ".join(t.name for t in types)
        if not isinstance(ref, str) or not ref.strip():
            self._error(
                number,
                f"Line {number}: {key!r} must be the id or file name of "
                f"{_a(wanted)} {wanted} dataset of this model, as a string.",
                field=key,
            )
            return None
        if "/" in ref or "\\" in ref or ".." in ref:
            self._error(
                number,
                f"Line {number}: {key!r} is {_quote(ref)}, which looks like a path; "
                f"use the id or the file name of {_a(wanted)} {wanted} dataset of "
                "this model.",
                field=key,
            )
            return None
        found = self._lookup(ref)
        if isinstance(found, AmbiguousReference):
            ids = ", ".join(c.dataset_id for c in found.candidates[:5])
            self._error(
                number,
                f"Line {number}: {key!r} file name {_quote(ref)} matches "
                f"{len(found.candidates)} datasets of this model; use the dataset id "
                f"instead (one of: {ids}).",
                field=key,
            )
            return None
        if found is None:
            self._error(
                number,
                f"Line {number}: {key!r} refers to {_quote(ref)}, but this model has "
                "no dataset with that id or file name. Upload it first, or check the "
                "spelling.",
                field=key,
            )
            return None
        self._referenced.add(found.dataset_id)
        if found.type not in types:
            found_type = _type_name(found.type)
            self._error(
                number,
                f"Line {number}: {key!r} refers to {_quote(found.file_name)}, "
                f"{_a(found_type)} {found_type} dataset; it must be {_a(wanted)} "
                f"{wanted} dataset.",
                field=key,
            )
            return None
        if found.status == DatasetState.FAILED:
            self._error(
                number,
                f"Line {number}: {key!r} refers to {_quote(found.file_name)} "
                f"(dataset {found.dataset_id}), which failed validation. Fix or "
                "replace that file first.",
                field=key,
            )
            return None
        if found.status == DatasetState.PENDING:
            self._pending.add(found.dataset_id)
        return found

    def _lookup(self, ref: str) -> DatasetRef | AmbiguousReference | None:
        if ref in self._cache:
            return self._cache[ref]
        try:
            found: DatasetRef | AmbiguousReference | None = self._resolve(ref)
        except AmbiguousReference as exc:
            found = exc
        if len(self._cache) < _MAX_CACHED_REFS:
            self._cache[ref] = found
        return found

    def _seconds(self, number: int, entry: dict[str, Any], key: str, *, allow_zero: bool) -> float | None:
        if key not in entry:
            return None
        value = entry[key]
        if not _is_seconds(value, allow_zero=allow_zero):
            bound = "0 or more" if allow_zero else "more than 0"
            self._error(
                number,
                f"Line {number}: {key!r} must be a number of seconds, {bound}; found {json.dumps(value)[:40]}.",
                field=key,
            )
            return None
        return float(value)

    def _check_segment(self, number: int, audio: DatasetRef, offset: float | None, duration: float | None) -> None:
        if offset is None and duration is None:
            return
        start = offset or 0.0
        end = start + (duration or 0.0)
        length = audio.duration_seconds
        if length is None:
            # Not known yet (the audio is still being validated): the caller checks it later.
            self._deferred_ends[audio.dataset_id] = max(self._deferred_ends.get(audio.dataset_id, 0.0), end)
            return
        name = _quote(audio.file_name)
        if start >= length:
            self._error(
                number,
                f"Line {number}: the segment starts at {start:g} s, but {name} is only {length:g} s long.",
                field="offset",
            )
        elif end > length + END_TOLERANCE_SECONDS:
            self._error(
                number,
                f"Line {number}: the segment {start:g}–{end:g} s runs past the end of "
                f"{name}, which is {length:g} s long.",
                field="duration",
            )

    def _check_repeat(
        self, number: int, entry: dict[str, Any], audio: DatasetRef | None, transcript: DatasetRef | None
    ) -> None:
        key = hash(
            (
                audio.dataset_id if audio else None,
                entry.get("text"),
                transcript.dataset_id if transcript else None,
                entry.get("offset"),
                entry.get("duration"),
            )
        )
        first = self._seen.get(key)
        if first is not None:
            self._report.warn(f"Line {number} repeats line {first}; the pair is counted twice.")
        elif len(self._seen) < _MAX_REMEMBERED_ENTRIES:
            self._seen[key] = number

    def _error(self, number: int, message: str, *, field: str | None = None) -> None:
        self._report.error(message, line=number, field=field)

    def metadata(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "train_entries": self._splits["train"],
            "test_entries": self._splits["test"],
            "inline_text_entries": self._inline,
            "inline_text_words": self._words,
            "segment_seconds": round(self._segment_seconds, 3),
            "referenced_dataset_ids": sorted(self._referenced),
            "pending_dataset_ids": sorted(self._pending),
            "deferred_segment_ends": {k: round(v, 3) for k, v in sorted(self._deferred_ends.items())},
        }


class _NotPlain(Exception):
    """A value the fast path leaves to the line-by-line checks."""


def _plain_seconds(entry: dict[str, Any], key: str, *, allow_zero: bool) -> float | None:
    """``entry[key]`` as seconds (None if absent) if ``_seconds`` takes it without a problem."""
    if key not in entry:
        return None
    value = entry[key]
    if _is_seconds(value, allow_zero=allow_zero):
        return float(value)
    raise _NotPlain(key)


def _batch_seconds(values: list[int | float | None], *, allow_zero: bool) -> list[float | None] | None:
    """``_plain_seconds`` of each value (None: absent), or None if any of them is not plain.

    The values come from ``_PlainLine``: ints and finite floats only (msgspec refuses NaN,
    infinities and ``true``/``false`` there).
    """
    present = [value for value in values if value is not None]
    if not present:
        return [None] * len(values)
    low = min(present)
    if not (low > 0 or (allow_zero and low == 0)) or max(present) >= _BIG:
        return None
    return [None if value is None else float(value) for value in values]


def _deferred_end(audio: DatasetRef, offset: float | None, duration: float | None) -> float | None:
    """For the fast paths: where the segment ends if that is to be checked later (the audio's
    length is not known yet), else None; raises _NotPlain if ``_check_segment`` would report it."""
    if offset is None and duration is None:
        return None
    start = offset or 0.0
    end = start + (duration or 0.0)
    length = audio.duration_seconds
    if length is None:
        return end
    if start >= length or end > length + END_TOLERANCE_SECONDS:
        raise _NotPlain("segment")
    return None


def _is_not_none(value: object) -> bool:
    return value is not None


def _is_seconds(value: Any, *, allow_zero: bool) -> bool:
    """A JSON number usable as seconds: finite, within float range (JSON allows any integer), not negative
    (and not 0 unless ``allow_zero``); ``true``/``false`` are not numbers here."""
    kind = type(value)
    if not ((kind is float and math.isfinite(value)) or (kind is int and value < _BIG)):
        return False
    return bool(value > 0 or (allow_zero and value == 0))


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def _type_name(value: Any) -> str:
    try:
        return DatasetType(value).name
    except ValueError:
        return str(value)


def _a(word: str) -> str:
    return "an" if word[:1].upper() in "AEIOU" else "a"


def _quote(text: str, limit: int = 80) -> str:
    return json.dumps(text if len(text) <= limit else text[: limit - 1] + "…", ensure_ascii=False)


__all__ = [
    "AmbiguousReference",
    "DatasetRef",
    "DatasetState",
    "Resolver",
    "validate_manifest",
]
