"""Sphinx parameter files: the 8-bit ``sendump`` and the float ``mixture_weights`` it stands for.

``sendump`` (PocketSphinx's semi-continuous/PTM mixture weights, written by SphinxTrain's
``mk_s2sendump -pocketsphinx yes``; SphinxTrain's ``python/cmusphinx/sendump.py`` reads it):

- a header of strings, each a little-endian uint32 length (counting the trailing NUL) then the
  bytes; the first is a title, a length of 0 ends the header. ``key value`` strings may set
  ``mixw_shift`` (default 10), ``cluster_bits`` (default 8), ``feature_count`` and
  ``cluster_count``;
- with ``cluster_count 0``: uint32 ``#codewords`` then uint32 ``#pdfs`` (senones);
- then, for each feature stream and each codeword, one byte per senone. A byte ``b`` stands for
  the weight ``1.0001 ** -(b << mixw_shift)`` (a negated log in base 1.0001, shifted down).

``mixture_weights`` (what ``bw``, ``map_adapt`` and ``mk_s2sendump`` read) is an s3 file: the line
``s3``, ``key value`` lines, ``endhdr`` padded so the data starts on a 4-byte boundary, the
byte-order word 0x11223344, then uint32 senones, streams, codewords, their product, and the
float32 weights in senone, stream, codeword order. ``bw`` refuses a ``chksum0 no`` header, so
none is written.

Contract: :func:`read_sendump` returns the float weights as an array ``(senones, streams,
codewords)``, each (senone, stream) row renormalised to sum to 1 (quantisation leaves it a
little under); ``mk_s2sendump`` renormalises the same way, so writing the array back and
re-quantising it with a negligible ``-mwfloor`` reproduces the original bytes exactly.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

BYTE_ORDER_MARK = 0x11223344
_LOG_BASE = 1.0001


def _read_string(handle: BinaryIO) -> bytes | None:
    raw = handle.read(4)
    if len(raw) < 4:
        raise ValueError("sendump: file ends inside the header")
    size = struct.unpack("<I", raw)[0]
    if size > 65536:
        raise ValueError("sendump: not a little-endian sendump (header string too long)")
    return None if size == 0 else handle.read(size).rstrip(b"\0")


def read_sendump(path: Path) -> np.ndarray:
    """Float mixture weights ``(senones, streams, codewords)`` of a PocketSphinx ``sendump``."""
    params = {"mixw_shift": 10, "cluster_bits": 8, "feature_count": 0, "cluster_count": 0}
    with Path(path).open("rb") as handle:
        _read_string(handle)  # title
        while (line := _read_string(handle)) is not None:
            key, _, value = line.decode("ascii", "replace").partition(" ")
            if key in params and value.strip().isdigit():
                params[key] = int(value)
        if params["cluster_count"] != 0 or params["cluster_bits"] != 8:
            raise ValueError(f"{Path(path).name}: clustered (cluster_count > 0) sendumps are not supported")
        n_codewords, n_senones = struct.unpack("<II", handle.read(8))
        n_streams = params["feature_count"]
        raw = np.fromfile(handle, dtype=np.uint8, count=n_streams * n_codewords * n_senones)
    if n_streams < 1 or raw.size != n_streams * n_codewords * n_senones:
        raise ValueError(f"{Path(path).name}: truncated sendump")
    logs = raw.reshape(n_streams, n_codewords, n_senones).astype(np.float64) * (1 << params["mixw_shift"])
    weights = np.power(_LOG_BASE, -logs).transpose(2, 0, 1)
    weights /= weights.sum(axis=2, keepdims=True)
    return weights.astype(np.float32)


def write_s3_array(path: Path, array: np.ndarray, attributes: dict[str, str] | None = None) -> Path:
    """Write a float array as an s3 parameter file (``mixture_weights`` for a 3-d array)."""
    head = "s3\n" + "".join(f"{k} {v}\n" for k, v in {"version": "1.0", **(attributes or {})}.items())
    pad = (-(len(head) + len("endhdr\n"))) % 4
    data = np.ascontiguousarray(array, dtype="<f4")
    with Path(path).open("wb") as handle:
        handle.write((head + " " * pad + "endhdr\n").encode("ascii"))
        handle.write(struct.pack("<I", BYTE_ORDER_MARK))
        handle.write(struct.pack(f"<{data.ndim}I", *data.shape))
        handle.write(struct.pack("<I", data.size))
        handle.write(data.tobytes())
    return Path(path)


def read_s3_array(path: Path, ndim: int) -> np.ndarray:
    """Read an s3 parameter file holding one ``ndim``-dimensional float array."""
    blob = Path(path).read_bytes()
    end = blob.find(b"endhdr\n")
    if not blob.startswith(b"s3\n") or end < 0:
        raise ValueError(f"{Path(path).name}: not an s3 parameter file")
    start = end + len("endhdr\n")
    (mark,) = struct.unpack_from("<I", blob, start)
    order = "<" if mark == BYTE_ORDER_MARK else ">"
    dims = struct.unpack_from(f"{order}{ndim}I", blob, start + 4)
    (count,) = struct.unpack_from(f"{order}I", blob, start + 4 + 4 * ndim)
    if count != int(np.prod(dims)):
        raise ValueError(f"{Path(path).name}: {count} values for a {dims} array")
    data = np.frombuffer(blob, dtype=f"{order}f4", count=count, offset=start + 8 + 4 * ndim)
    return data.reshape(dims).astype(np.float32)


def expand_sendump(sendump: Path, mixture_weights: Path) -> tuple[int, int, int]:
    """Write the float ``mixture_weights`` a ``sendump`` stands for; its shape."""
    weights = read_sendump(sendump)
    write_s3_array(mixture_weights, weights)
    n_senones, n_streams, n_codewords = weights.shape
    return n_senones, n_streams, n_codewords
