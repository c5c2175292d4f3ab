"""Read the raw utterance text of transcript files (.txt, .vtt, .srt).

Contract: :func:`read_utterances` yields the un-normalised text of each utterance in file order:
each non-empty line of a .txt, the cue text of each .vtt/.srt cue (markup removed, lines joined).
Files must be UTF-8 (a BOM is allowed); anything else raises ``ValueError`` naming the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
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
    text = _read_text(path)
    try:
        cues = [c.text for c in webvtt.from_string(text)] if fmt == "vtt" else [s.content for s in srt.parse(text)]
    except Exception as exc:  # both libraries raise their own error types
        raise ValueError(f"{path.name}: not a valid {fmt.upper()} file ({exc})") from exc
    for cue in cues:
        cleaned = _clean(cue)
        if cleaned:
            yield cleaned
