"""Receiving one uploaded file from a multipart request, with the body size capped while it streams."""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from voxtrain_shared.errors import ApiError
from voxtrain_shared.vocab import ErrorCode

CHUNK = 1024 * 1024


def too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        ErrorCode.FILE_TOO_LARGE,
        f"Transcription takes request bodies up to {max_bytes // 2**20} MB. Send a shorter or more "
        "compressed recording.",
    )


def refuse_declared_size(request: Request, max_bytes: int) -> None:
    """Refuse a body whose declared length is over the cap, before any of it is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)


async def receive_file(request: Request, field: str, max_bytes: int) -> UploadFile:
    """The multipart field ``field`` as a spooled file; reading stops with 413 once ``max_bytes`` arrived.
    The caller closes the returned file."""
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > max_bytes:
            raise too_large(max_bytes)
        return message

    form = await Request(request.scope, capped).form(max_files=1, max_fields=1)
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        await form.close()
        raise ApiError(
            422, ErrorCode.VALIDATION_FAILED, f"Send the audio as a multipart/form-data file field named '{field}'."
        )
    return upload


async def save(upload: UploadFile, path: Path) -> Path:
    with path.open("wb") as out:
        while chunk := await upload.read(CHUNK):
            out.write(chunk)
    return path
