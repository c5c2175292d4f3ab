"""Lines of a UTF-8 text stream, read incrementally, with the exact byte offset of any bad byte.

Shared by the validator (transcripts, manifests) and the trainer (subtitles): both read text the same way.

A 10 GB transcript is never held in memory: bytes are read in chunks, decoded with an incremental
UTF-8 decoder and cut into lines; only the current chunk and one partial line are kept (a line is
capped). Anything that is not UTF-8 (Latin-1, UTF-16, binary) stops reading with a TextProblem
that says where and what it probably is. A UTF-8 byte-order mark is accepted and skipped.

Rules that want speed take whole runs of lines at once (``Utf8Lines.blocks``) and work on them
with C-speed string methods and regular expressions instead of one Python call per line.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO

CHUNK_BYTES = 1 << 20
MAX_LINE_CHARS = 1 << 20

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "UTF-32 (little-endian)"),
    (codecs.BOM_UTF32_BE, "UTF-32 (big-endian)"),
    (codecs.BOM_UTF16_LE, "UTF-16 (little-endian)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (big-endian)"),
)


class TextProblem(Exception):
    """The bytes cannot be read as UTF-8 text lines; reading stops here."""

    def __init__(self, message: str, *, line: int | None, byte_offset: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.byte_offset = byte_offset


def _read(stream: BinaryIO, count: int) -> bytes:
    return stream.read(count) or b""


class Utf8Lines:
    """Iterate ``(line_number, text)`` over a UTF-8 byte stream; line numbers start at 1.

    Lines end at LF, CRLF or CR, the terminator is not part of the text, and a final line without
    a terminator is still a line. After iteration, ``bom``, ``lines`` and ``bytes_read`` describe
    what was read. Raises TextProblem for bytes that are not UTF-8, for NUL bytes (binary data or
    UTF-16) and for a line longer than ``max_line_chars``; failures of the stream itself raise
    whatever ``read`` raises (``read(stream, count)`` gives the next up to ``count`` bytes, b"" at the end).
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        max_line_chars: int = MAX_LINE_CHARS,
        read: Callable[[BinaryIO, int], bytes] = _read,
    ) -> None:
        self._stream = stream
        self._read = read
        self._chunk_bytes = chunk_bytes
        self._max_line_chars = max_line_chars
        self.bom = False
        self.lines = 0
        self.bytes_read = 0

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for first, block in self.blocks():
            for number, line in enumerate(block.split("\n")[:-1], first):
                self.lines = number
                yield number, line

    def blocks(self) -> Iterator[tuple[int, str]]:
        """Iterate ``(first_line_number, text)`` over runs of whole lines, in order.

        ``text`` holds complete lines, each ended by "\n" (CRLF and CR are turned into LF), so
        ``text.split("\n")[:-1]`` gives exactly the lines ``__iter__`` yields. Each read of the
        stream is decoded as a whole before any of its lines is handed out, which is what makes
        the findings before an encoding problem the same whatever the consumer does per line.
        ``lines`` counts the lines handed out so far (a consumer that stops inside a block may set
        it to the line it stopped at). Same errors as ``__iter__``.
        """
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        partial = ""  # text of the line being read, not yet terminated
        offset = 0  # absolute byte offset of the next chunk
        first = True
        while True:
            chunk = self._read(self._stream, self._chunk_bytes)
            final = not chunk
            if first:
                first = False
                # A stream may return fewer bytes than asked: get enough to see any byte-order mark.
                while 0 < len(chunk) < 4:
                    more = self._read(self._stream, self._chunk_bytes)
                    if not more:
                        break
                    chunk += more
                chunk, skipped = self._skip_bom(chunk)
                offset += skipped
            pending = decoder.getstate()[0]
            text_start = offset - len(pending)  # byte offset where the decoded text begins
            try:
                text = decoder.decode(chunk, final)
            except UnicodeDecodeError as exc:
                raise self._not_utf8(pending + chunk, exc, text_start, partial) from None
            offset += len(chunk)
            self.bytes_read = offset
            if "\x00" in text:
                raise self._nul(text, text_start, partial)
            if text:
                text = partial + text
                # A CR at the end of a chunk may be the first half of a CRLF: keep it for later.
                searched = len(text) - 1 if not final and text.endswith("\r") else len(text)
                cut = max(text.rfind("\n", 0, searched), text.rfind("\r", 0, searched)) + 1
                partial = text[cut:]
                if cut:
                    whole = text[:cut]
                    if "\r" in whole:
                        whole = whole.replace("\r\n", "\n").replace("\r", "\n")
                    number = self.lines + 1
                    self.lines += whole.count("\n")
                    yield number, whole
                if len(partial) > self._max_line_chars:
                    raise TextProblem(
                        f"Line {self.lines + 1} is longer than {self._max_line_chars:,} characters; "
                        "this does not look like a text file with lines. Put each sentence or "
                        "cue on its own line.",
                        line=self.lines + 1,
                        byte_offset=None,
                    )
            if final:
                break
        if partial:
            self.lines += 1
            yield self.lines, partial.rstrip("\r") + "\n"

    @staticmethod
    def _split(text: str) -> list[str]:
        if "\r" not in text:
            return text.split("\n")
        return _LINE_BREAK.split(text)

    def _skip_bom(self, chunk: bytes) -> tuple[bytes, int]:
        for bom, name in _BOMS:
            if chunk.startswith(bom):
                raise TextProblem(
                    f"The file is encoded as {name}, as its byte-order mark shows; only UTF-8 is "
                    "accepted. Save it as UTF-8 and upload it again.",
                    line=1,
                    byte_offset=0,
                )
        if chunk.startswith(codecs.BOM_UTF8):
            self.bom = True
            return chunk[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
        return chunk, 0

    def _not_utf8(self, data: bytes, exc: UnicodeDecodeError, text_start: int, partial: str) -> TextProblem:
        good = data[: exc.start].decode("utf-8", errors="replace")
        line, column = self._position(partial + good)
        bad = data[exc.start : exc.start + 1]
        byte_offset = text_start + exc.start
        hint = ""
        if exc.end == len(data) and "end of data" in exc.reason:
            hint = (
                " The file ends in the middle of a character, so it was probably cut short "
                "(an interrupted upload or save)."
            )
        elif bad and bad[0] >= 0x80:
            as_cp1252 = bad.decode("cp1252", errors="replace")
            if as_cp1252 != "\ufffd":
                hint = (
                    f" In Windows-1252/Latin-1 that byte is '{as_cp1252}', so the file is "
                    "probably saved in that encoding."
                )
        return TextProblem(
            f"The file is not valid UTF-8: byte 0x{bad.hex().upper() or '??'} at byte offset "
            f"{byte_offset} (line {line}, column {column}) cannot be decoded.{hint} "
            "Save the file as UTF-8 and upload it again.",
            line=line,
            byte_offset=byte_offset,
        )

    def _nul(self, text: str, text_start: int, partial: str) -> TextProblem:
        index = text.index("\x00")
        byte_offset = text_start + len(text[:index].encode("utf-8"))
        line, column = self._position(partial + text[:index])
        looks_utf16 = text.count("\x00") * 3 >= min(len(text), 4096)
        what = (
            "it looks like UTF-16 text without a byte-order mark; save it as UTF-8"
            if looks_utf16
            else "this looks like a binary file, not text; upload the text file"
        )
        return TextProblem(
            f"The file contains a NUL byte at byte offset {byte_offset} (line {line}, column {column}): {what}.",
            line=line,
            byte_offset=byte_offset,
        )

    def _position(self, text_before: str) -> tuple[int, int]:
        """Line and column (1-based) just after ``text_before``, which continues the current line."""
        breaks = self._split(text_before)
        return self.lines + len(breaks), len(breaks[-1]) + 1
