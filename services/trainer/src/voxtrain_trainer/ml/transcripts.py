"""Read the raw utterance text of transcript files (.txt, .vtt, .srt) as streams.

Contract: :func:`read_utterances` yields the un-normalised text of each utterance in file order:
each non-empty line of a .txt, the cue text of each .vtt/.srt cue (markup removed, lines joined).
Files must be UTF-8 (a BOM is allowed); anything else raises ``ValueError`` naming the file.
:func:`read_cues` yields the timed cues of a .vtt/.srt (start and end in seconds, cleaned text,
empty cues included so callers can report them).

Memory does not grow with the file: a .txt is read line by line, and a line longer than
:data:`MAX_LINE_CHARS` (a whole book on one line) is cut at white space into utterances of at most
that length; a .vtt/.srt is read a megabyte at a time by the cue parsers the validator judged it
with (:mod:`voxtrain_shared.subtitles`), so a file the validator accepts is read as it was judged.
Cue times and text are read as the ``webvtt-py`` and ``srt`` libraries read them (those parsers use
them for anything but plain cues; the tests compare both on the same files). A problem of the
file's structure, or a single cue larger than :data:`MAX_BLOCK_CHARS`, raises ``ValueError``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

from voxtrain_shared.subtitles import MAX_CUE_CHARS, SrtCues, VttCues, fixed_ms
from voxtrain_shared.text_lines import TextProblem, Utf8Lines

_T = TypeVar("_T")

FORMATS = ("txt", "vtt", "srt")
MAX_LINE_CHARS = 1 << 20
TELL_EVERY = 1024  # lines or cues between two reports of how far a file has been read
MAX_BLOCK_CHARS = MAX_CUE_CHARS
_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")


def detect_format(path: Path, declared: str | None = None) -> str:
    """The transcript format: ``declared`` if given, else the file extension; one of FORMATS."""
    fmt = (declared or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"{path.name}: unsupported transcript format {fmt!r}; use .txt, .vtt or .srt")
    return fmt


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> ValueError:
    return ValueError(f"{path.name}: not valid UTF-8 text (byte {exc.start}); re-save it as UTF-8")


def _clean(text: str) -> str:
    return " ".join(_MARKUP.sub(" ", text).split())


def _bounded_lines(handle: TextIO, limit: int) -> Iterator[str]:
    """The lines of ``handle`` (without the newline), a line longer than ``limit`` cut at white space."""
    carry = ""
    while True:
        piece = handle.readline(max(limit - len(carry), 1))
        if not piece:
            if carry:
                yield carry
            return
        text = carry + piece
        if text.endswith("\n"):
            carry = ""
            yield text[:-1]
            continue
        if len(text) < limit:  # the end of a file without a final newline
            carry = text
            continue
        cut = max(text.rfind(" "), text.rfind("\t"))
        if cut <= 0:
            cut = len(text)
        yield text[:cut]
        carry = text[cut:]


@dataclass(frozen=True)
class Cue:
    """One timed cue of a subtitle file."""

    start: float
    end: float
    text: str


class _KeptCues:
    """The trainer's :class:`voxtrain_shared.subtitles.CueSink`: keeps each cue (times in seconds, text
    cleaned, empty cues too); a problem of the file's structure raises ``ValueError`` naming the file."""

    def __init__(self, name: str, fmt: str) -> None:
        self._name, self._fmt = name, fmt
        self.taken: list[Cue] = []
        self._count = 0

    @property
    def cues(self) -> int:
        return self._count

    def cue(self, line: int, start_ms: int, end_ms: int, text: str) -> None:
        self._count += 1
        self.taken.append(Cue(start_ms / 1000, end_ms / 1000, _clean(text)))

    def plain_cues(self, starts: list[str], ends: list[str], texts: list[str], last_line: int) -> bool:
        self._count += len(starts)
        self.taken += (
            Cue(fixed_ms(start) / 1000, fixed_ms(end) / 1000, _clean(text))
            for start, end, text in zip(starts, ends, texts, strict=True)
        )
        return True

    def error(self, message: str, *, line: int | None = None) -> None:
        raise ValueError(f"{self._name}: not a valid {self._fmt.upper()} file ({message})")

    def warn(self, message: str) -> None:
        """Warnings (e.g. cue numbers out of sequence) do not matter for training."""


def _parse_cues(path: Path, fmt: str, on_bytes: Callable[[int], None] | None = None) -> Iterator[Cue]:
    """The cues of a .vtt/.srt, read by the validator's parsers (``voxtrain_shared.subtitles``) a block of about
    a megabyte at a time; ``on_bytes`` is told after each block how many bytes were read."""
    kept = _KeptCues(path.name, fmt)
    parser = VttCues(kept) if fmt == "vtt" else SrtCues(kept)
    with path.open("rb") as stream:
        lines = Utf8Lines(stream)
        try:
            for first, block in lines.blocks():
                parser.feed_block(first, block)
                taken, kept.taken = kept.taken, []
                yield from taken
                if on_bytes is not None:
                    on_bytes(lines.bytes_read)
            if lines.lines == 0 and fmt == "vtt":
                kept.error('the first line must be "WEBVTT"')
            parser.finish()
        except TextProblem as problem:
            raise ValueError(f"{path.name}: {problem.message}") from None
    yield from kept.taken
    if on_bytes is not None:
        on_bytes(lines.bytes_read)


def _telling(items: Iterable[_T], handle: TextIO, on_bytes: Callable[[int], None] | None) -> Iterator[_T]:
    """``items`` as they come; every ``TELL_EVERY`` of them (and at the end) ``on_bytes`` is told how far into
    the file ``handle`` reading has got (the file's offset: read-ahead included, so within a buffer's size)."""
    if on_bytes is None:
        yield from items
        return
    for n, item in enumerate(items, 1):
        yield item
        if n % TELL_EVERY == 0:
            on_bytes(os.lseek(handle.fileno(), 0, os.SEEK_CUR))
    on_bytes(os.lseek(handle.fileno(), 0, os.SEEK_CUR))


def read_cues(path: Path, fmt: str | None = None) -> Iterator[Cue]:
    """Timed cues of a .vtt or .srt file, in file order, one at a time (see module contract)."""
    fmt = detect_format(path, fmt)
    if fmt == "txt":
        raise ValueError(f"{path.name}: a .txt transcript has no cue times; use .vtt or .srt")
    return _parse_cues(path, fmt)


def read_utterances(path: Path, fmt: str | None = None, on_bytes: Callable[[int], None] | None = None) -> Iterator[str]:
    """Yield each utterance's raw text from the transcript file at ``path`` (see module contract); ``on_bytes``,
    when given, is told now and then how many bytes of the file have been read."""
    fmt = detect_format(path, fmt)
    if fmt == "txt":
        with path.open(encoding="utf-8-sig") as handle:
            try:
                for line in _telling(_bounded_lines(handle, MAX_LINE_CHARS), handle, on_bytes):
                    if line.strip():
                        yield line.strip()
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, exc) from exc
        return
    for cue in _parse_cues(path, fmt, on_bytes):
        if cue.text:
            yield cue.text
