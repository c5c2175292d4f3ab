"""Streamed WebVTT and SubRip cue reading, shared by the validator and the trainer.

The text comes in as runs of whole lines (``voxtrain_shared.text_lines.Utf8Lines.blocks``) and goes
out as cues to a :class:`CueSink`: the validator's sink checks them (order, length, text) and counts
words, the trainer's keeps their times and text. Both therefore read a file in exactly the same way,
and a file the validator accepts is read by the trainer as it was judged.

* VTT (:class:`VttCues`): the ``WEBVTT`` header, then blocks separated by blank lines; each cue
  block is parsed by webvtt-py (strict timestamps) one block at a time; NOTE, STYLE and REGION
  blocks are skipped.
* SRT (:class:`SrtCues`): cues are cut at their boundaries (blank line, cue number, timing line) and
  each piece is parsed by the ``srt`` library, so cue text with blank lines in it is still understood.

Problems of structure go to ``CueSink.error`` with line numbers (reading goes on); a block longer
than :data:`MAX_CUE_CHARS` or a file that is not WebVTT at all raises ``TextProblem``. Memory holds
one block of lines and one cue.

Speed: runs of plain cues (the shape nearly every subtitle file has) are matched by one regular
expression and offered to the sink all at once (``CueSink.plain_cues``), which checks them with
C-speed list and string operations; the line-by-line parsing (each parser's ``feed``) decides
everything else, and a run the sink declines is handed to it, so findings, messages and positions
are the same as reading line by line (``tests/validator/test_validator_golden.py``).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from datetime import timedelta
from typing import Protocol

import srt
import webvtt.vtt
from webvtt.errors import MalformedCaptionError

from voxtrain_shared.text_lines import TextProblem

MAX_CUE_CHARS = 1 << 20

_VTT_HEADER = re.compile(r"^WEBVTT(?:[ \t].*)?$")
_VTT_TIME = r"(?:\d{2,}:)?\d{2}:\d{2}\.\d{3}"
_VTT_TIMING = re.compile(rf"^({_VTT_TIME})[ \t]+-->[ \t]+({_VTT_TIME})(?:[ \t]+(.*))?$")
_SRT_INDEX = re.compile(r"^\s*\d+\s*$")
_SRT_TIME = r"\d+:([0-5]\d):([0-5]\d)[,.]\d{1,3}"
_SRT_TIMING = re.compile(rf"^\s*{_SRT_TIME}\s*-->\s*{_SRT_TIME}(?:\s.*)?$")

# Fast paths: runs of plain cues, matched in whole blocks of LF-ended lines. A plain cue has
# times with ASCII digits and two-digit minutes, seconds and three-digit milliseconds (so times of
# the same width compare as strings), text that every rule accepts as it is, and is followed by
# blank lines. Anything else (and any plain cue with a problem) goes line by line through the
# checkers' ``feed``, which stays the reference; these shapes only decide what may skip it.
_RUN_CUES = 100  # at most this many cues per run, so a problem in one costs little to redo
_FIXED_VTT_TIME = r"(?:[0-9]{2,10}:)?[0-5][0-9]:[0-5][0-9]\.[0-9]{3}"  # hours: as webvtt-py reads them
# An optional id (not a NOTE/STYLE/REGION head, and not digits then ":" as a timing starts, so a
# timing line is told from an id in three characters), the timing (settings are ignored),
# then lines of text. ``[^\n]`` loops are the regular expression engine's fastest; the rest is
# checked on the captured parts (arrows, tags, blank text) by the caller.
_VTT_CUE_TEXT = (
    rf"(?:(?![0-9]+:|NOTE|STYLE|REGION)[^\n]+\n)?({_FIXED_VTT_TIME}) --> "
    rf"({_FIXED_VTT_TIME})(?:[ \t][^\n]*)?\n((?:[^\n]+\n)+)\n+"
)
# What webvtt-py strips from each line of cue text: from a "<" to the next ">" on the line.
_CUE_TAG = re.compile(r"<[^>\n]*>")
# Hours of up to 6 digits: srt's float milliseconds stay exact (the library reads any number).
_FIXED_SRT_TIME = r"[0-9]{1,6}:[0-5][0-9]:[0-5][0-9],[0-9]{3}"
# The number, the timing, then lines of text that cannot be read as a cue number or a timestamp
# (they do not start with a digit or "-"), without blank lines.
_SRT_CUE_TEXT = (
    rf"([0-9]{{1,9}})\n({_FIXED_SRT_TIME}) --> ({_FIXED_SRT_TIME})\n"
    r"((?:[^\S\n]*[^\s0-9-][^\n]*\n)+)\n+"
)


def _run_of(cue: str) -> re.Pattern[str]:
    """1 to _RUN_CUES cues in a row, without capturing groups: they make matching twice as slow."""
    without_captures = cue.replace("(", "(?:").replace("(?:?", "(?")
    return re.compile(rf"(?:{without_captures}){{1,{_RUN_CUES}}}")


_VTT_CUE, _VTT_RUN = re.compile(_VTT_CUE_TEXT), _run_of(_VTT_CUE_TEXT)
_SRT_CUE, _SRT_RUN = re.compile(_SRT_CUE_TEXT), _run_of(_SRT_CUE_TEXT)
# What ends the cue before it when reading line by line: a cue number, then a timing line.
# (Only its start matters: line by line, any line with "-->" after a number ends the cue.)
_SRT_CUE_HEAD = re.compile(rf"[0-9]{{1,9}}\n{_FIXED_SRT_TIME} --> ")


class CueSink(Protocol):
    """Where the parsers put what they read."""

    @property
    def cues(self) -> int:
        """How many cues were taken in so far."""
        ...

    def cue(self, line: int, start_ms: int, end_ms: int, text: str) -> None:
        """One cue: the line of its timing, its times in milliseconds, its text (markup removed, lines by "\n")."""

    def plain_cues(self, starts: list[str], ends: list[str], texts: list[str], last_line: int) -> bool:
        """A run of well-formed cues, to take all at once or decline (then they come one by one to ``cue``).

        ``starts`` and ``ends`` are ``[h…h:]mm:ss.ttt`` (or ``hh:mm:ss,ttt``) timestamps of ASCII digits
        (``fixed_ms`` reads them), ``texts`` the cues' texts (none blank, each line ended by "\n"),
        ``last_line`` the line of the last cue's timing. Returns whether the run was taken.
        """

    def error(self, message: str, *, line: int | None = None) -> None:
        """A problem of the file at ``line``; reading goes on."""

    def warn(self, message: str) -> None:
        """Something worth saying that is not a problem."""


class _CueParser(ABC):
    """Lines are fed in order, one by one (``feed``) or as whole blocks (``feed_block``), and ``finish`` ends.

    ``feed_block`` has exactly the effect of feeding the block's lines one by one: runs of plain cues
    are offered to the sink all at once (``CueSink.plain_cues``) and everything else, and any run the
    sink declines, goes line by line through ``feed``. ``at`` is the number of the last line taken in.
    """

    at = 0
    # A run of plain cues (see _VTT_RUN), and where one may start given what was read before.
    _run: re.Pattern[str]

    def __init__(self, sink: CueSink) -> None:
        self._sink = sink

    @abstractmethod
    def feed(self, number: int, line: str) -> None:
        """Take in one line (its number, its text without the line end)."""

    def _feed_lines(self, number: int, block: str, start: int, end: int) -> int:
        """Feed the lines of ``block[start:end]`` (whole lines) one by one; returns the next line number."""
        for line in block[start:end].split("\n")[:-1]:
            self.at = number
            self.feed(number, line)
            number += 1
        return number

    @abstractmethod
    def _run_may_start(self) -> bool:
        """Whether a run of plain cues may start here, given what was read before."""

    @abstractmethod
    def _take_run(self, block: str, start: int, end: int, first: int) -> None:
        """Take in ``block[start:end]``, a match of ``_run`` whose first line is ``first``."""

    @abstractmethod
    def finish(self) -> None:
        """The end of the text: take in what is still gathered."""

    def feed_block(self, first: int, block: str) -> None:
        """Feed the lines of ``block`` (whole lines, each ended by "\n"), the first being ``first``."""
        number, pos, size = first, 0, len(block)
        while pos < size:
            if self._run_may_start():
                run = self._run.match(block, pos)
                if run is not None:
                    end = run.end()
                    self._take_run(block, pos, end, number)
                    number += block.count("\n", pos, end)
                    self.at = number - 1
                    pos = end
                    continue
            end = block.index("\n", pos) + 1
            number = self._feed_lines(number, block, pos, end)
            pos = end


class VttCues(_CueParser):
    """WebVTT, one block at a time (header, NOTE/STYLE/REGION blocks, cues)."""

    _run = _VTT_RUN

    def __init__(self, sink: CueSink) -> None:
        super().__init__(sink)
        self._in_header = True
        self._block: list[str] = []
        self._block_line = 0
        self._block_chars = 0

    def _run_may_start(self) -> bool:
        return not self._in_header and not self._block  # between blocks

    def _take_run(self, block: str, start: int, end: int, first: int) -> None:
        """All the cues at once if that is exact, else line by line."""
        cues = _VTT_CUE.findall(block, start, end)
        starts, ends, texts = (list(column) for column in zip(*cues, strict=True))
        if block.find("<", start, end) >= 0:  # the caption text is without its tags
            texts = [_CUE_TAG.sub("", text) if "<" in text else text for text in texts]
        last_start = _cue_start(block, start, end)
        timing_line = (
            first
            + block.count("\n", start, last_start)
            + (0 if block.startswith(starts[-1] + " -->", last_start) else 1)
        )  # else the cue has an id
        if (
            block.count("-->", start, end) != len(cues)  # an arrow in an id, settings or text
            or end - start > MAX_CUE_CHARS  # a cue that may be too long (checked line by line)
            or not all(map(str.strip, texts))  # a cue without text
            or not self._sink.plain_cues(starts, ends, texts, timing_line)
        ):
            self._feed_lines(first, block, start, end)

    def feed(self, number: int, line: str) -> None:
        if number == 1:
            if not _VTT_HEADER.match(line):
                hint = (
                    " It looks like SRT subtitles: rename it to .srt."
                    if _SRT_INDEX.match(line) or _SRT_TIMING.match(line)
                    else ""
                )
                raise TextProblem(
                    f"Line 1: a WebVTT file must start with the line 'WEBVTT', but "
                    f"it starts with '{clip(line)}'.{hint}",
                    line=1,
                    byte_offset=None,
                )
            return
        if self._in_header:
            if not line:
                self._in_header = False
            elif "-->" in line:
                self._sink.error(
                    f"Line {number}: a blank line is needed between the WEBVTT header and the first cue.", line=number
                )
                self._in_header = False
                self._start(number, line)
            return
        if not line:
            self._flush()
            return
        if "-->" in line and self._block and (len(self._block) > 1 or "-->" in self._block[0]):
            self._sink.error(
                f"Line {number}: a new cue starts without a blank line before it (or the cue text contains '-->').",
                line=number,
            )
            self._flush()
        self._start(number, line)

    def _start(self, number: int, line: str) -> None:
        if not self._block:
            self._block_line = number
            self._block_chars = 0
        self._block.append(line)
        self._block_chars += len(line)
        if self._block_chars > MAX_CUE_CHARS:
            raise TextProblem(
                f"Line {self._block_line}: this block is longer than "
                f"{MAX_CUE_CHARS:,} characters without a blank line; it is not a "
                "WebVTT cue.",
                line=self._block_line,
                byte_offset=None,
            )

    def finish(self) -> None:
        self._flush()

    def _flush(self) -> None:
        block, first = self._block, self._block_line
        self._block = []
        if not block:
            return
        head = block[0]
        if head == "NOTE" or head.startswith(("NOTE ", "NOTE\t")):
            return
        if head.rstrip() in ("STYLE", "REGION"):
            if self._sink.cues:
                self._sink.error(f"Line {first}: a {head.rstrip()} block must come before the first cue.", line=first)
            return
        timing_at = 0 if "-->" in head else 1 if len(block) > 1 and "-->" in block[1] else None
        if timing_at is None:
            self._sink.error(
                f"Line {first}: this block has no cue timing line (like "
                "'00:00:01.000 --> 00:00:04.000'); every cue needs one on its first "
                "or second line.",
                line=first,
            )
            return
        line_no = first + timing_at
        timing = _VTT_TIMING.match(block[timing_at].strip())
        if timing is None:
            hint = " WebVTT puts a '.' before the milliseconds, not ','." if "," in block[timing_at] else ""
            self._sink.error(
                f"Line {line_no}: invalid cue timing '{clip(block[timing_at])}'; "
                "write it as hh:mm:ss.ttt --> hh:mm:ss.ttt (hours optional), e.g. "
                f"'00:01:02.500 --> 00:01:04.000'.{hint}",
                line=line_no,
            )
            return
        # Cue settings (position, alignment) do not matter for training: parse without them.
        lines = [*block[:timing_at], f"{timing.group(1)} --> {timing.group(2)}", *block[timing_at + 1 :]]
        try:
            caption = webvtt.vtt.parse_item(lines, strict=True, seen_cue=True)
        except MalformedCaptionError as exc:
            self._sink.error(f"Line {line_no}: {exc}; minutes and seconds must be below 60.", line=line_no)
            return
        except Exception as exc:
            self._sink.error(f"Line {line_no}: this cue cannot be parsed ({exc}).", line=line_no)
            return
        if not isinstance(caption, webvtt.Caption):
            self._sink.error(f"Line {line_no}: this cue cannot be parsed.", line=line_no)
            return
        self._sink.cue(line_no, caption.start_time.in_milliseconds(), caption.end_time.in_milliseconds(), caption.text)


class SrtCues(_CueParser):
    """SubRip: lines are gathered up to the next cue boundary, then parsed by ``srt``."""

    _run = _SRT_RUN

    def __init__(self, sink: CueSink) -> None:
        super().__init__(sink)
        self._lines: list[tuple[int, str]] = []
        self._chars = 0
        self._previous_index: int | None = None
        self._warned_index = False

    def _run_may_start(self) -> bool:
        # The gathered cue (if any) ends here if a plain cue follows: its number, then its timing.
        return not self._lines or not self._lines[-1][1].strip()

    def _take_run(self, block: str, start: int, end: int, first: int) -> None:
        """All the cues at once if that is exact, else line by line.

        The last cue is taken only if a cue's number and timing follow it; else it stays
        gathered, as reading line by line would leave it: what comes next tells whether its text
        goes on.
        """
        cues = _SRT_CUE.findall(block, start, end)
        indexes, starts, ends, texts = (list(column) for column in zip(*cues, strict=True))
        if (
            block.count("-->", start, end) != len(cues)  # an arrow in a cue's text
            or self._chars + end - start + 9 > MAX_CUE_CHARS
        ):  # + 9: the next cue's number
            self._feed_lines(first, block, start, end)
            return
        self._flush()  # the cue gathered before (the first cue's timing line would flush it)
        taken, rest = len(cues), end
        if _SRT_CUE_HEAD.match(block, end) is None:
            taken, rest = taken - 1, _cue_start(block, start, end)
        if taken:
            numbers = list(map(int, indexes[:taken]))
            timing_line = first + block.count("\n", start, _cue_start(block, start, rest)) + 1
            if not (
                self._warned_index
                or (
                    (self._previous_index is None or numbers[0] == self._previous_index + 1)
                    and numbers == list(range(numbers[0], numbers[0] + taken))
                )
            ) or not self._sink.plain_cues(starts[:taken], ends[:taken], texts[:taken], timing_line):
                self._feed_lines(first, block, start, end)
                return
            self._previous_index = numbers[-1]
        lines = block[rest:end].split("\n")[:-1]
        number = first + block.count("\n", start, rest)
        self._lines = list(zip(range(number, number + len(lines)), lines, strict=True))
        self._chars = sum(map(len, lines))

    def feed(self, number: int, line: str) -> None:
        if "-->" in line:
            cut = self._boundary()
            if cut is not None and cut > 0:
                rest = self._lines[cut:]
                self._lines = self._lines[:cut]
                self._flush()
                self._lines = rest
                self._chars = sum(len(text) for _, text in rest)
        self._lines.append((number, line))
        self._chars += len(line)
        if self._chars > MAX_CUE_CHARS:
            raise TextProblem(
                f"Line {self._lines[0][0]}: more than {MAX_CUE_CHARS:,} characters "
                "without a new cue; this is not an SRT cue.",
                line=self._lines[0][0],
                byte_offset=None,
            )

    def _boundary(self) -> int | None:
        """Where the cue whose timing line comes next begins in the gathered lines, if known."""
        lines = self._lines
        if not lines or not lines[-1][1].strip():
            return len(lines)
        if _SRT_INDEX.match(lines[-1][1]) and (len(lines) == 1 or not lines[-2][1].strip()):
            return len(lines) - 1
        return None

    def finish(self) -> None:
        self._flush()

    def _flush(self) -> None:
        lines, self._lines, self._chars = self._lines, [], 0
        while lines and not lines[0][1].strip():
            lines.pop(0)
        if not lines:
            return
        first = lines[0][0]
        text = "\n".join(line for _, line in lines) + "\n"
        try:
            subtitles = list(srt.parse(text))
        except srt.SRTParseError as exc:
            self._bad_cue(lines, text, exc.expected_start, exc.unmatched_content)
            return
        except Exception as exc:
            self._sink.error(f"Line {first}: this cue cannot be parsed ({exc}).", line=first)
            return
        timing_line = next((n for n, line in lines if "-->" in line), first)
        timing_text = next((line for _, line in lines if "-->" in line), "")
        for subtitle in subtitles:
            self._check_index(timing_line, subtitle.index)
        if not _SRT_TIMING.match(timing_text):
            self._sink.error(
                f"Line {timing_line}: invalid cue timing '{clip(timing_text)}'; write "
                "it as hh:mm:ss,mmm --> hh:mm:ss,mmm with minutes and seconds below "
                "60, e.g. '00:01:02,500 --> 00:01:04,000'.",
                line=timing_line,
            )
            return
        for subtitle in subtitles:
            self._sink.cue(timing_line, _ms(subtitle.start), _ms(subtitle.end), subtitle.content)

    def _bad_cue(self, lines: list[tuple[int, str]], text: str, start: int, unmatched: str) -> None:
        start += len(unmatched) - len(unmatched.lstrip())
        line = lines[0][0] + text.count("\n", 0, start)
        found = text[start:].split("\n", 1)[0]
        hint = " The file looks like WebVTT: rename it to .vtt." if found.startswith("WEBVTT") else ""
        self._sink.error(
            f"Line {line}: not a valid SRT cue at '{clip(found)}'; a cue is a "
            "number, a 'hh:mm:ss,mmm --> hh:mm:ss,mmm' line, then the text, and "
            f"cues are separated by a blank line.{hint}",
            line=line,
        )

    def _check_index(self, line: int, index: int | None) -> None:
        if (
            index is not None
            and self._previous_index is not None
            and index != self._previous_index + 1
            and not self._warned_index
        ):
            self._warned_index = True
            self._sink.warn(
                f"Line {line}: cue number {index} follows {self._previous_index}; cue numbers are usually consecutive."
            )
        self._previous_index = index


def _ms(value: timedelta) -> int:
    return round(value.total_seconds() * 1000)


def _cue_start(block: str, start: int, end: int) -> int:
    """Where the last cue of ``block[start:end]`` starts: cues have no blank line in them."""
    while end - start > 1 and block[end - 2] == "\n":  # the blank lines after the cue
        end -= 1
    blank = block.rfind("\n\n", start, end - 1)
    return start if blank < 0 else blank + 2


def fixed_ms(timestamp: str) -> int:
    """Milliseconds of a ``[h…h:]mm:ss.ttt`` (or ``,ttt``) timestamp of ASCII digits."""
    return (
        int(timestamp[:-10] or 0) * 3_600_000
        + int(timestamp[-9:-7]) * 60_000
        + int(timestamp[-6:-4]) * 1000
        + int(timestamp[-3:])
    )


def clip(text: str, limit: int = 60) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
