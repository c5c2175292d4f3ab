"""Read the raw utterance text of transcript files (.txt, .vtt, .srt) as streams.

Contract: :func:`read_utterances` yields the un-normalised text of each utterance in file order:
each non-empty line of a .txt, the cue text of each .vtt/.srt cue (markup removed, lines joined).
Files must be UTF-8 (a BOM is allowed); anything else raises ``ValueError`` naming the file.
:func:`read_cues` yields the timed cues of a .vtt/.srt (start and end in seconds, cleaned text,
empty cues included so callers can report them).

Memory does not grow with the file: a .txt is read line by line, and a line longer than
:data:`MAX_LINE_CHARS` (a whole book on one line) is cut at white space into utterances of at most
that length; a .vtt/.srt is read a few cue blocks (split at blank lines) at a time, each batch
parsed by the subtitle library as before, so results and error messages are the same as parsing
the whole file at once. A single cue block larger than :data:`MAX_BLOCK_CHARS` raises
``ValueError`` (no subtitle cue is that long; the file is not really a subtitle file).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import srt
import webvtt

FORMATS = ("txt", "vtt", "srt")
MAX_LINE_CHARS = 1 << 20
MAX_BLOCK_CHARS = 1 << 20
_BATCH_CHARS = 1 << 16  # cue blocks handed to the subtitle library at once
_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_VTT_HEADER = "WEBVTT\n\n"


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


def _blocks(path: Path, handle: TextIO) -> Iterator[str]:
    """Batches of whole cue blocks (text between blank lines), each at most about ``_BATCH_CHARS`` long."""
    batch: list[str] = []
    size = block = 0
    for line in _bounded_lines(handle, MAX_BLOCK_CHARS):
        batch.append(line)
        size += len(line) + 1
        block = 0 if not line.strip() else block + len(line) + 1
        if block > MAX_BLOCK_CHARS:
            raise ValueError(
                f"{path.name}: a cue has more than {MAX_BLOCK_CHARS // 1024} KiB of text without a blank line; "
                "separate the cues by blank lines"
            )
        if block == 0 and size >= _BATCH_CHARS:
            yield "\n".join(batch) + "\n"
            batch, size = [], 0
    if batch:
        yield "\n".join(batch) + "\n"


def _parse_batch(batch: str, fmt: str, first: bool) -> list[Cue]:
    if fmt == "vtt":
        text = batch if first else _VTT_HEADER + batch
        return [
            Cue(_vtt_seconds(c.start), _vtt_seconds(c.end), _clean(c.text)) for c in webvtt.from_string(text).captions
        ]
    return [Cue(s.start.total_seconds(), s.end.total_seconds(), _clean(s.content)) for s in srt.parse(batch)]


def _parse_cues(path: Path, fmt: str) -> Iterator[Cue]:
    with path.open(encoding="utf-8-sig") as handle:
        try:
            for n, batch in enumerate(_blocks(path, handle)):
                if not batch.strip():
                    continue
                try:
                    cues = _parse_batch(batch, fmt, first=n == 0)
                except Exception as exc:  # both libraries raise their own error types
                    raise ValueError(f"{path.name}: not a valid {fmt.upper()} file ({exc})") from exc
                yield from cues
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from exc


def read_cues(path: Path, fmt: str | None = None) -> Iterator[Cue]:
    """Timed cues of a .vtt or .srt file, in file order, one at a time (see module contract)."""
    fmt = detect_format(path, fmt)
    if fmt == "txt":
        raise ValueError(f"{path.name}: a .txt transcript has no cue times; use .vtt or .srt")
    return _parse_cues(path, fmt)


def read_utterances(path: Path, fmt: str | None = None) -> Iterator[str]:
    """Yield each utterance's raw text from the transcript file at ``path`` (see module contract)."""
    fmt = detect_format(path, fmt)
    if fmt == "txt":
        with path.open(encoding="utf-8-sig") as handle:
            try:
                for line in _bounded_lines(handle, MAX_LINE_CHARS):
                    if line.strip():
                        yield line.strip()
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, exc) from exc
        return
    for cue in _parse_cues(path, fmt):
        if cue.text:
            yield cue.text
