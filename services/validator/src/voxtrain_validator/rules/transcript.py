"""TRANSCRIPT and TEST datasets (.vtt, .srt, .txt): UTF-8 text whose structure really parses.

Everything is read incrementally (see text_stream), so files of any size are fine:

* TXT: at least one line with text;
* VTT and SRT: read by the cue parsers the trainer also reads them with
  (:mod:`voxtrain_shared.subtitles`), which report the file's structure; the checks here are those of
  the cues themselves.

For VTT and SRT, timestamps must be valid (minutes and seconds below 60), each cue must end after
it starts, start no earlier than the cue before it, and have text. Problems are reported with
line numbers; encoding problems with the byte offset of the first bad byte.

Speed: the checkers take whole blocks of lines. Runs of plain cues are offered by the parsers all at
once and checked here with C-speed list and string operations (``_CueTimes.plain_cues``); a run with
any problem in it is declined and comes back one cue at a time, so findings, messages and positions
are the same as reading line by line (``tests/validator/test_validator_golden.py``).
"""

from __future__ import annotations

import itertools
import operator
import re
from typing import Any, BinaryIO

from voxtrain_shared.subtitles import SrtCues, VttCues, clip, fixed_ms
from voxtrain_shared.vocab import ErrorCode

from .outcome import Outcome, Report, failed, plural
from .source import stream_size
from .text_stream import CHUNK_BYTES, TextProblem, Utf8Lines
from .words import WordCounter

CODE = ErrorCode.INVALID_TRANSCRIPT_FORMAT
FEW_WORDS = 20

_ANY_TIMING = re.compile(r"\d+:\d{2}[,.]\d{1,3}\s*-->")


def validate_transcript(stream: BinaryIO, extension: str, *, chunk_bytes: int = CHUNK_BYTES) -> Outcome:
    """Read the text in ``stream`` incrementally and judge it as a TRANSCRIPT/TEST dataset.

    ``extension`` is ".vtt", ".srt" or ".txt" (any case, dot optional). Content problems become a
    failed Outcome with code ``invalid_transcript_format``; a failure of the stream itself raises
    SourceReadError. Synchronous, thread-safe, memory bounded by one read of ``chunk_bytes`` (and
    one cue or line). What is found before an encoding problem depends on ``chunk_bytes``: each
    read is decoded as a whole before its lines are checked.
    """
    ext = extension.lower().lstrip(".")
    if ext not in ("txt", *_CUE_PARSERS):
        return failed(CODE, f"'.{ext}' is not a transcript type that can be uploaded; use .vtt, .srt or .txt.")
    size = stream_size(stream)
    if size == 0:
        return failed(
            CODE,
            "The file is empty (0 bytes). Upload a transcript with text in it.",
            metadata={"format": ext, "size_bytes": 0},
        )
    report = Report()
    words = WordCounter()
    summary: _TxtChecker | _CueTimes
    checker: _TxtChecker | VttCues | SrtCues
    if ext == "txt":
        checker = summary = _TxtChecker(report, words)
    else:
        summary = _CueTimes(report, words)
        checker = _CUE_PARSERS[ext](summary)
    lines = Utf8Lines(stream, chunk_bytes=chunk_bytes)
    try:
        for first, block in lines.blocks():
            try:
                checker.feed_block(first, block)
            except TextProblem:
                lines.lines = checker.at  # reading stopped at the line that was being checked
                raise
        checker.finish()
        if summary is not checker:
            summary.finish()
    except TextProblem as problem:
        report.error(problem.message, line=problem.line, byte_offset=problem.byte_offset)
    metadata: dict[str, Any] = {
        "format": ext,
        "encoding": "utf-8",
        "bom": lines.bom,
        "size_bytes": size,
        "lines": lines.lines,
        **summary.metadata(),
        "words": words.count,
        "vocabulary_size": words.vocabulary_size,
        "vocabulary_capped": words.capped,
    }
    if not report.failed and words.count < FEW_WORDS:
        report.warn(
            f"The transcript has only {plural(words.count, 'word')}; adapting a language "
            "model needs far more text (thousands of sentences) to make a difference."
        )
    return report.outcome(CODE, metadata)


class _TxtChecker:
    """Plain text: any line with text counts; lines that look like subtitles are suspicious."""

    # Only the first lines are looked at for subtitle timing.
    _TIMING_LINES = 100
    at = 0  # the last line taken in

    def __init__(self, report: Report, words: WordCounter) -> None:
        self._report = report
        self._words = words
        self.non_empty = 0
        self._warned_timing = False

    def feed_block(self, first: int, block: str) -> None:
        lines = block.split("\n")
        lines.pop()  # the block ends with "\n"
        head = 0
        if first <= self._TIMING_LINES and not self._warned_timing:
            head = min(len(lines), self._TIMING_LINES + 1 - first)
            for number, line in enumerate(lines[:head], first):
                self.feed(number, line)
        rest = lines[head:] if head else lines
        self.at = first + len(lines) - 1
        if rest:
            # Blank lines have no words, so the words of the block are those of its non-blank lines.
            self.non_empty += len(rest) - sum(1 for _ in itertools.filterfalse(None, map(str.strip, rest)))
            self._words.add_all(rest, "\n".join(rest) if head else block)

    def feed(self, number: int, line: str) -> None:
        if not line.strip():
            return
        self.non_empty += 1
        self._words.add(line)
        if (
            not self._warned_timing
            and number <= self._TIMING_LINES
            and (_ANY_TIMING.search(line) or (number == 1 and line.startswith("WEBVTT")))
        ):
            self._warned_timing = True
            self._report.warn(
                f"Line {number} looks like subtitle timing ('{clip(line)}'); in a "
                ".txt file it is read as words. Upload subtitles as .vtt or .srt."
            )

    def finish(self) -> None:
        if self.non_empty == 0:
            self._report.error(
                "The file has no text: every line is empty. Upload a transcript with at least one line of text."
            )

    def metadata(self) -> dict[str, Any]:
        return {"non_empty_lines": self.non_empty}


class _CueTimes:
    """The checks of VTT and SRT cues (order, length, text; times in milliseconds) and their words: the
    :class:`voxtrain_shared.subtitles.CueSink` the parsers read into."""

    def __init__(self, report: Report, words: WordCounter) -> None:
        self._report = report
        self._words = words
        self.cues = 0
        self.last_end_ms = 0
        self._previous: tuple[int, int] | None = None  # (line, start ms)

    def cue(self, line: int, start_ms: int, end_ms: int, text: str) -> None:
        self.cues += 1
        if end_ms < start_ms:
            self._report.error(
                f"Line {line}: the cue ends ({_ts(end_ms)}) before it starts ({_ts(start_ms)}).", line=line
            )
        elif end_ms == start_ms:
            self._report.warn(f"Line {line}: the cue starts and ends at {_ts(start_ms)} (zero length).")
        if self._previous is not None and start_ms < self._previous[1]:
            self._report.error(
                f"Line {line}: the cue starts at {_ts(start_ms)}, before the previous cue "
                f"(line {self._previous[0]}, at {_ts(self._previous[1])}); cues must be in time order.",
                line=line,
            )
        self._previous = (line, start_ms)
        self.last_end_ms = max(self.last_end_ms, end_ms)
        if not text.strip():
            self._report.error(f"Line {line}: the cue has no text. Remove it or add the words spoken.", line=line)
        else:
            self._words.add(text)

    def plain_cues(self, starts: list[str], ends: list[str], texts: list[str], last_line: int) -> bool:
        """Take in a run of well-formed cues at once if none of them has a problem; else do nothing.

        ``starts`` and ``ends`` are ``[h…h:]mm:ss.ttt`` (or ``,ttt``) timestamps; when all have
        the same width, comparing them as strings compares the times (else the run is left).
        ``texts`` are the cues' texts, none of them blank; ``last_line`` is the line of the last
        cue's timing. Returns whether the run was taken: a run with any cue out of order,
        backwards or of zero length is left to ``cue`` one cue at a time, which reports each
        problem where it is.
        """
        widths = set(map(len, starts))
        widths.update(map(len, ends))
        if len(widths) > 1:  # e.g. the run crosses 99:59:59.999
            return False
        previous = self._previous
        if previous is not None and fixed_ms(starts[0]) < previous[1]:
            return False
        if not (
            all(map(operator.lt, starts, ends)) and all(map(operator.le, starts, itertools.islice(starts, 1, None)))
        ):
            return False
        self.cues += len(starts)
        self._previous = (last_line, fixed_ms(starts[-1]))
        self.last_end_ms = max(self.last_end_ms, fixed_ms(max(ends)))
        self._words.add_all(texts, "\n".join(texts))
        return True

    def error(self, message: str, *, line: int | None = None) -> None:
        self._report.error(message, line=line)

    def warn(self, message: str) -> None:
        self._report.warn(message)

    def finish(self) -> None:
        if self.cues == 0:
            self._report.error(
                "The file has no cues: nothing with a timing line and text was found. Check that it is a subtitle file."
            )

    def metadata(self) -> dict[str, Any]:
        return {"cues": self.cues, "duration_seconds": round(self.last_end_ms / 1000, 3)}


_CUE_PARSERS: dict[str, type[VttCues] | type[SrtCues]] = {"vtt": VttCues, "srt": SrtCues}


def _ts(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
