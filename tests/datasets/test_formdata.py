"""The incremental multipart/form-data reader: any chunking gives the same events, nothing is buffered whole."""

import os

import httpx
import pytest

from voxtrain_datasets.formdata import Field, FileData, FileEnd, FileStart, FormError, read_form

BOUNDARY = "----voxtrain-test-boundary"
CTYPE = f"multipart/form-data; boundary={BOUNDARY}"


def encoded(data: dict, files: list) -> tuple[str, bytes]:
    req = httpx.Request("POST", "http://x/", data=data, files=files)
    return req.headers["content-type"], req.read()


def raw_part(headers: str, body: bytes) -> bytes:
    return f"--{BOUNDARY}\r\n{headers}\r\n\r\n".encode() + body + b"\r\n"


async def chunks_of(body: bytes, size: int):
    for i in range(0, len(body), size):
        yield body[i : i + size]


async def events(ctype: str, body: bytes, size: int) -> list:
    out: list = []
    async for e in read_form(ctype, chunks_of(body, size)):
        if isinstance(e, FileData) and out and isinstance(out[-1], FileData):
            out[-1] = FileData(bytes(out[-1].data) + bytes(e.data))  # join pieces for comparison
        else:
            out.append(FileData(bytes(e.data)) if isinstance(e, FileData) else e)
    return out


@pytest.mark.parametrize("chunk", [1, 7, 64, 65536, 10**9])
async def test_any_chunking_gives_the_same_events(chunk: int) -> None:
    big = os.urandom(200_000)
    ctype, body = encoded(
        {"type": "AUDIO"}, [("files", ("a.wav", big, "audio/wav")), ("files", ("b.wav", b"", "audio/wav"))]
    )
    assert await events(ctype, body, chunk) == [
        Field("type", "AUDIO"),
        FileStart("files", "a.wav", "audio/wav"),
        FileData(big),
        FileEnd(),
        FileStart("files", "b.wav", "audio/wav"),
        FileEnd(),
    ]


async def test_file_names_arrive_as_sent() -> None:
    body = (
        raw_part('Content-Disposition: form-data; name="f"; filename="Über \\"q\\" ../x.txt"', b"hi")
        + raw_part('Content-Disposition: form-data; name="f"; filename="a\x01b.txt"', b"")
        + f"--{BOUNDARY}--\r\n".encode()
    )
    got = await events(CTYPE, body, 5)
    starts = [e.file_name for e in got if isinstance(e, FileStart)]
    assert starts == ['Über "q" ../x.txt', "a\x01b.txt"]
    assert got[0].content_type is None


async def test_a_body_cut_short_is_an_error() -> None:
    ctype, body = encoded({}, [("files", ("a.txt", b"hello world", "text/plain"))])
    with pytest.raises(FormError, match="ended before"):
        await events(ctype, body[:-20], 8)


@pytest.mark.parametrize("ctype", [None, "application/json", "multipart/form-data"])
async def test_only_multipart_form_data_with_a_boundary(ctype) -> None:
    with pytest.raises(FormError):
        await events(ctype, b"", 8)


async def test_text_fields_are_capped() -> None:
    ctype, body = encoded({"type": "x" * 10_000}, [("files", ("a.txt", b"1", "text/plain"))])
    with pytest.raises(FormError, match="longer than"):
        await events(ctype, body, 1024)


async def test_parts_need_a_disposition() -> None:
    body = raw_part("Content-Type: text/plain", b"x") + f"--{BOUNDARY}--\r\n".encode()
    with pytest.raises(FormError, match="Content-Disposition"):
        await events(CTYPE, body, 64)
