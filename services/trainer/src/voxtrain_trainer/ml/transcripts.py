"""Read the raw utterance text of transcript files (.txt, .vtt, .srt) as streams.

Contract: :func:`read_utterances` yields the un-normalised text of each utterance in file order:
each non-empty line of a .txt, the cue text of each .vtt/.srt cue (markup removed, lines joined).
Files must be UTF-8 (a BOM is allowed); anything else raises ``ValueError`` naming the file.
:func:`read_cues` yields the timed cues of a .vtt/.srt (start and end in seconds, cleaned text,
empty cues included so callers can report them).

Memory does not grow with the file: a .txt is read line by line, and a line longer than
:data:`MAX_LINE_CHARS` (a whole book on one line) is cut at white space into utterances of at most
that length; a .vtt/.srt is read one cue block (the lines between blank lines) at a time. Cue
times and text are read as the ``webvtt-py`` and ``srt`` libraries read them (the tests compare
both on the same files), by a reader of our own: those libraries parse a whole string at
0.4-1.1 MB/s, a 10 GB subtitle file in hours, and hold all of it. A single cue block larger than
:data:`MAX_BLOCK_CHARS` raises ``ValueError`` (no subtitle cue is that long).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

_T = TypeVar("_T")

FORMATS = ("txt", "vtt", "srt")
MAX_LINE_CHARS = 1 << 20
TELL_EVERY = 1024  # lines or cues between two reports of how far a file has been read
MAX_BLOCK_CHARS = 1 << 20
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


def _vtt_seconds(stamp: str) -> float:
    seconds = 0.0
    for part in stamp.strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


_DELIM = "[,.:\uff0c\uff0e\u3002\uff1a]"  # what the srt library accepts between the fields
_SRT_STAMP = re.compile(rf"(\d+){_DELIM}(\d+){_DELIM}(\d+){_DELIM}?(\d*)")
_VTT_SKIPPED = ("NOTE", "STYLE", "REGION")


def _srt_seconds(stamp: str) -> float:
    """As the ``srt`` library reads a timestamp (the last field is milliseconds as written: ``,5`` is 5 ms)."""
    match = _SRT_STAMP.fullmatch(stamp.strip())
    if match is None:
        raise ValueError(f"unparseable timestamp {stamp.strip()!r}")
    hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _timing(line: str, fmt: str) -> tuple[float, float]:
    start, _, rest = line.partition("-->")
    end = rest.split()[0] if rest.split() else ""
    if fmt == "vtt":
        return _vtt_seconds(start), _vtt_seconds(end)
    return _srt_seconds(start), _srt_seconds(end)


class _CueReader:
    """Cues of a subtitle file, one block (the lines between blank lines) at a time.

    A block's ``start --> end`` line starts a cue and the lines after it are its text; in an SRT
    block a line of digits right before a timing line is the next cue's index (cues not separated
    by a blank line, as the ``srt`` library also reads them). VTT blocks without a timing line (the
    header, NOTE, STYLE, REGION) are skipped. In an SRT file a block without a timing line goes on with
    the text of the cue before it (a blank line inside a cue's text, as the ``srt`` library and the
    validator read it), so the last cue read is given only when the next block starts a cue; before the
    first cue such a block is an error, as there.
    """

    def __init__(self, path: Path, fmt: str) -> None:
        self._path, self._fmt = path, fmt

    def _invalid(self, why: str) -> ValueError:
        return ValueError(f"{self._path.name}: not a valid {self._fmt.upper()} file ({why})")

    def cues(self, handle: TextIO) -> Iterator[Cue]:
        block: list[str] = []
        size = number = first = 0
        last: tuple[float, float, list[str]] | None = None  # SRT: the last cue read, its text lines
        for number, line in enumerate(_bounded_lines(handle, MAX_BLOCK_CHARS), start=1):
            if number == 1 and self._fmt == "vtt" and not line.startswith("WEBVTT"):
                raise self._invalid('the first line must be "WEBVTT"')
            if line.strip():
                if not block:
                    first = number
                block.append(line)
                size += len(line) + 1
                if size > MAX_BLOCK_CHARS:
                    raise ValueError(
                        f"{self._path.name}: a cue has more than {MAX_BLOCK_CHARS // 1024} KiB of text without a "
                        "blank line; separate the cues by blank lines"
                    )
                continue
            if block:
                last = yield from self._block(block, first, last)
            block, size = [], 0
        if number == 0 and self._fmt == "vtt":
            raise self._invalid('the first line must be "WEBVTT"')
        if block:
            last = yield from self._block(block, first, last)
        if last is not None:
            yield Cue(last[0], last[1], _clean("\n".join(last[2])))

    def _block(
        self, lines: list[str], first: int, last: tuple[float, float, list[str]] | None
    ) -> Generator[Cue, None, tuple[float, float, list[str]] | None]:
        """Yield the cues of a block; returns the SRT cue still open (its text may go on in the next block)."""
        timings = [i for i, line in enumerate(lines) if "-->" in line]
        if not timings:
            if self._fmt == "srt" and last is not None:
                if sum(map(len, last[2])) + sum(map(len, lines)) > MAX_BLOCK_CHARS:
                    raise ValueError(
                        f"{self._path.name}: a cue has more than {MAX_BLOCK_CHARS // 1024} KiB of text; "
                        "separate the cues by blank lines"
                    )
                last[2].extend(["", *lines])
                return last
            if self._fmt == "vtt" and (first == 1 or lines[0].startswith(_VTT_SKIPPED)):
                return None
            raise self._invalid(f"line {first}: a block without a 'start --> end' line")
        if self._fmt == "vtt" and lines[0].startswith(_VTT_SKIPPED):
            return None
        if last is not None:
            yield Cue(last[0], last[1], _clean("\n".join(last[2])))
        cues: list[tuple[float, float, list[str]]] = []
        for n, at in enumerate(timings):
            end = timings[n + 1] if n + 1 < len(timings) else len(lines)
            if self._fmt == "srt" and n + 1 < len(timings) and lines[end - 1].strip().isdigit():
                end -= 1  # the next cue's index
            try:
                start, stop = _timing(lines[at], self._fmt)
            except ValueError as exc:
                raise self._invalid(f"line {first + at}: {exc}") from None
            cues.append((start, stop, lines[at + 1 : end]))
        if self._fmt == "srt":  # the last cue's text may go on after a blank line
            *done, open_cue = cues
        else:
            done, open_cue = cues, None
        for start, stop, text in done:
            yield Cue(start, stop, _clean("\n".join(text)))
        return open_cue


def _parse_cues(path: Path, fmt: str, on_bytes: Callable[[int], None] | None = None) -> Iterator[Cue]:
    with path.open(encoding="utf-8-sig") as handle:
        try:
            yield from _telling(_CueReader(path, fmt).cues(handle), handle, on_bytes)
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from exc


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
