"""A tar.gz archive produced as a stream of chunks, with a SHA-256 manifest as its last member.

Contract of :func:`tar_gz`: yields the gzip-compressed bytes of a POSIX (pax) tar archive whose members are
``root/<name>`` for each :class:`Member`, in order, followed by ``root/SHA256SUMS`` (``sha256sum -c`` format,
names relative to ``root``). A member's bytes are read from its ``chunks()`` only while it is written, so at no
time is more than one chunk (plus the compressor's window) held in memory, whatever the archive's size. A member
whose source gives another number of bytes than its declared ``size`` raises :class:`ValueError` (the stream
ends there; the truncated archive fails gzip's check on the receiving side).
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

MANIFEST = "SHA256SUMS"
BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE


@dataclass(frozen=True)
class Member:
    """One file of the archive: its path under the root, its size in bytes and how to read it."""

    name: str
    size: int
    chunks: Callable[[], Iterator[bytes]]


def from_bytes(name: str, data: bytes) -> Member:
    """A member whose content is already in memory (small generated files)."""
    return Member(name, len(data), lambda: iter((data,)))


def _header(path: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(path)
    info.size, info.mtime, info.mode, info.type = size, mtime, 0o644, tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def tar_gz(root: str, members: Iterable[Member], *, mtime: int, level: int = 6) -> Iterator[bytes]:
    """The archive's compressed bytes, chunk by chunk (see module contract)."""
    gz = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: a gzip header and trailer
    written = 0
    sums: list[str] = []

    def put(data: bytes) -> bytes:
        nonlocal written
        written += len(data)
        return gz.compress(data)

    def member(m: Member) -> Iterator[bytes]:
        yield put(_header(f"{root}/{m.name}", m.size, mtime))
        digest, n = hashlib.sha256(), 0
        for chunk in m.chunks():
            n += len(chunk)
            if n > m.size:
                break
            digest.update(chunk)
            yield put(chunk)
        if n != m.size:
            raise ValueError(f"{m.name}: expected {m.size} bytes, the source gave {'more' if n > m.size else n}")
        yield put(b"\0" * (-m.size % BLOCK))
        sums.append(f"{digest.hexdigest()}  {m.name}\n")

    for m in members:
        yield from (out for out in member(m) if out)
    yield from (out for out in member(from_bytes(MANIFEST, "".join(sums).encode())) if out)
    end = b"\0" * (2 * BLOCK)
    yield put(end + b"\0" * (-(written + len(end)) % RECORD)) + gz.flush()
