"""Read the raw utterance text of transcript files (.txt, .vtt, .srt).

Contract: :func:`read_utterances` yields the un-normalised text of each utterance in file order:
each non-empty line of a .txt, the cue text of each .vtt/.srt cue (markup removed, lines joined).
Files must be UTF-8 (a BOM is allowed); anything else raises ``ValueError`` naming the file.
:func:`read_cues` yields the timed cues of a .vtt/.srt (start and end in seconds, cleaned text,
empty cues included so callers can report them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import srt
import webvtt

FORMATS = ("txt", "vtt", "srt")
_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")


def detect_format(path: Path, declared: str | None = None) -> str:
    """The transcript format: ``declared`` if given, else the file extension; one of FORMATS."""
    fmt = (declared or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"{path.name}: unsupported transcript format {fmt!r}; use .txt, .vtt or .srt")
    return fmt


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name}: not valid UTF-8 text (byte {exc.start}); re-save it as UTF-8") from exc


def _clean(text: str) -> str:
    return " ".join(_MARKUP.sub(" ", text).split())


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


def _parse_cues(path: Path, fmt: str) -> list[Cue]:
    text = _read_text(path)
    try:
        if fmt == "vtt":
            return [
                Cue(_vtt_seconds(c.start), _vtt_seconds(c.end), _clean(c.text))
                for c in webvtt.from_string(text).captions
            ]
        return [Cue(s.start.total_seconds(), s.end.total_seconds(), _clean(s.content)) for s in srt.parse(text)]
    except Exception as exc:  # both libraries raise their own error types
        raise ValueError(f"{path.name}: not a valid {fmt.upper()} file ({exc})") from exc


def read_cues(path: Path, fmt: str | None = None) -> list[Cue]:
    """Timed cues of a .vtt or .srt file, in file order (see module contract)."""
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
                for line in handle:
                    if line.strip():
                        yield line.strip()
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path.name}: not valid UTF-8 text; re-save it as UTF-8") from exc
        return
    for cue in _parse_cues(path, fmt):
        if cue.text:
            yield cue.text
