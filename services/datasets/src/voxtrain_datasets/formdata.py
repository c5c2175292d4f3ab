"""Incremental ``multipart/form-data`` reading: a request body in, a flat stream of form events out.

Never holds a file: each chunk of the body is fed to python-multipart's low-level push parser and
the events it produced are handed on before the next chunk is read, so memory is bounded by one
chunk plus a small text field. Consumers see, in body order::

    Field(name, value) | FileStart(field, file_name, content_type) | FileData(data) … | FileEnd()

A part is a file when its Content-Disposition has a ``filename``; text fields are capped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 4096
MAX_PARTS = 100
MAX_HEADER_BYTES = 16 * 1024


class FormError(Exception):
    """The body is not a well-formed multipart/form-data form (or breaks a limit)."""


@dataclass(frozen=True)
class Field:
    name: str
    value: str


@dataclass(frozen=True)
class FileStart:
    field: str
    file_name: str  #: as sent: untrusted, unsanitised
    content_type: str | None


@dataclass(frozen=True)
class FileData:
    data: bytes | memoryview


@dataclass(frozen=True)
class FileEnd:
    pass


FormEvent = Field | FileStart | FileData | FileEnd


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data Content-Type (raises :class:`FormError`)."""
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data":
        raise FormError("Send the files as multipart/form-data.")
    boundary = params.get(b"boundary")
    if not boundary:
        raise FormError("The multipart/form-data Content-Type has no boundary.")
    return boundary


def _text(raw: bytes) -> str:
    """Header bytes as text: UTF-8 (what browsers send), undecodable bytes kept as escapes."""
    return raw.decode("utf-8", errors="surrogateescape")


class _Collector:
    """python-multipart callbacks that turn parser output into :data:`FormEvent` s."""

    def __init__(self) -> None:
        self.events: list[FormEvent] = []
        self.ended = False
        self.parts = 0
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._is_file = False
        self._field_name = ""
        self._field_value = bytearray()
        self._header_bytes = 0
        self.chunk: bytes | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise FormError(f"The form has more than {MAX_PARTS} parts.")
        self._headers.clear()
        self._header_bytes = 0
        self._field_value.clear()

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            raise FormError("A part's headers are too long.")

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._header_field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._header_value += data[start:end]

    def header_end(self) -> None:
        self._headers[bytes(self._header_field).decode("latin-1").strip().lower()] = bytes(self._header_value).strip()
        self._header_field.clear()
        self._header_value.clear()

    def headers_finished(self) -> None:
        # parse_options_header works on latin-1 text, which maps bytes 1:1; names are decoded after.
        disposition, params = parse_options_header(self._headers.get("content-disposition", b"").decode("latin-1"))
        if disposition != b"form-data" or b"name" not in params:
            raise FormError("Every part needs 'Content-Disposition: form-data; name=...'.")
        self._field_name = _text(params[b"name"])
        self._is_file = b"filename" in params
        if self._is_file:
            ctype = self._headers.get("content-type")
            self.events.append(
                FileStart(self._field_name, _text(params[b"filename"]), ctype.decode("latin-1") if ctype else None)
            )

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            # A view into the current chunk (immutable bytes) avoids a copy; anything else is copied.
            piece = memoryview(data)[start:end] if data is self.chunk else bytes(data[start:end])
            self.events.append(FileData(piece))
            return
        if len(self._field_value) + end - start > MAX_FIELD_BYTES:
            raise FormError(f"Form field {self._field_name!r} is longer than {MAX_FIELD_BYTES} bytes.")
        self._field_value += data[start:end]

    def part_end(self) -> None:
        if self._is_file:
            self.events.append(FileEnd())
        else:
            self.events.append(Field(self._field_name, _text(bytes(self._field_value))))

    def end(self) -> None:
        self.ended = True


async def read_form(content_type: str | None, body: AsyncIterator[bytes]) -> AsyncGenerator[FormEvent, None]:
    """The events of a multipart/form-data ``body``, as it arrives (raises :class:`FormError`)."""
    collector = _Collector()
    parser = MultipartParser(boundary_of(content_type), collector.callbacks(), max_header_size=MAX_HEADER_BYTES)
    async for chunk in body:
        if not chunk:
            continue
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)
        collector.chunk = chunk
        try:
            parser.write(chunk)
        except FormParserError as exc:
            raise FormError(f"Malformed multipart/form-data body: {exc}") from None
        events, collector.events = collector.events, []
        for event in events:
            yield event
        if collector.ended:
            break
    if not collector.ended:
        raise FormError("The multipart/form-data body ended before its closing boundary.")
