"""Lines of a UTF-8 text stream for the validator's rules: :mod:`voxtrain_shared.text_lines`, read through
:func:`source.read_chunk`, so a failure of the stream itself raises SourceReadError (not a finding)."""

from __future__ import annotations

from typing import BinaryIO

from voxtrain_shared.text_lines import CHUNK_BYTES, MAX_LINE_CHARS, TextProblem
from voxtrain_shared.text_lines import Utf8Lines as _Utf8Lines

from .source import read_chunk

__all__ = ["CHUNK_BYTES", "MAX_LINE_CHARS", "TextProblem", "Utf8Lines"]


class Utf8Lines(_Utf8Lines):
    """:class:`voxtrain_shared.text_lines.Utf8Lines` over :func:`source.read_chunk`."""

    def __init__(
        self, stream: BinaryIO, *, chunk_bytes: int = CHUNK_BYTES, max_line_chars: int = MAX_LINE_CHARS
    ) -> None:
        super().__init__(stream, chunk_bytes=chunk_bytes, max_line_chars=max_line_chars, read=read_chunk)
