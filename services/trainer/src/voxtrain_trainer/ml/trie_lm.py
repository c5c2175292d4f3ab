"""Read PocketSphinx's binary "trie" language model (``.lm.bin``) into arrays of n-grams.

Contract of :func:`read_trie_lm`: returns every n-gram the file stores, per order, as word-id
tuples in text order (oldest word first) with log10 probabilities and, below the highest order,
log10 backoff weights -- the values PocketSphinx itself scores with (n-grams of order >= 2 are
16-bit quantized in the file; their bin centres are returned). The n-grams include the "blank"
entries the format inserts to reach a longer n-gram whose shorter context was pruned (probability =
the backed-off one, backoff 0), so the model is the same distribution as the file's.
Raises ``ValueError`` for a file that is not a little-endian trie LM.

The format (learnt from PocketSphinx's ``lm_trie.c``/``lm_trie_quant.c``; our own reader): the
text ``Trie Language Model``, a byte with the order, one uint32 count per order; for order > 1 an
int32 then float32 quantization tables (per middle order a 2^16 probability table then a 2^16
backoff table, then the highest order's 2^16 probability table); ``count1 + 1`` unigram records
(float32 prob, float32 backoff, uint32 first child); then one bit-packed array per order >= 2, and
finally a uint32 byte count and the NUL-separated words. The trie is keyed by the *predicted* word
first, then the previous word, and so on: a record of order n holds its newest-but-(n-1) word id
(``bits(count1)`` bits), then for middle orders a 16-bit backoff code and a 16-bit probability code
and the index of its first child in the next order (``bits(count_{n+1})`` bits), for the highest
order a 16-bit probability code. Children of a record span up to the next record's first child;
the last record's end says how many records of the next order are really used (PocketSphinx's
writer may count a few more in the header than it fills -- why its own ARPA export fails).
Scores are in PocketSphinx's log base 1.0001.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

HEADER = b"Trie Language Model"
LOGMATH_TO_LOG10 = math.log10(1.0001)
QUANT_BITS = 16
_TABLE = 1 << QUANT_BITS


@dataclass
class TrieLevel:
    """The n-grams of one order: ``words[i]`` (oldest first), log10 ``prob[i]``, log10 ``bow[i]`` or None."""

    words: npt.NDArray[np.int32]
    prob: npt.NDArray[np.float64]
    bow: npt.NDArray[np.float64] | None


@dataclass
class TrieLM:
    """A whole binary LM: its vocabulary (id -> word) and one :class:`TrieLevel` per order."""

    vocab: list[str]
    levels: list[TrieLevel]

    @property
    def order(self) -> int:
        return len(self.levels)

    def counts(self) -> list[int]:
        return [len(level.prob) for level in self.levels]


def _bits(max_value: int) -> int:
    """Bits needed to store ``max_value`` (0 for 0), as the format sizes its fields."""
    return int(max_value).bit_length()


def _field(data: npt.NDArray[np.uint8], bit_offsets: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.int64]:
    """Unsigned little-endian bit fields of ``width`` (<= 32) bits starting at each of ``bit_offsets``."""
    start = bit_offsets >> 3
    value = np.zeros(len(bit_offsets), dtype=np.uint64)
    for k in range(5):  # 32 bits + a shift of up to 7 fit in 5 bytes
        value |= data[start + k].astype(np.uint64) << np.uint64(8 * k)
    value >>= (bit_offsets & 7).astype(np.uint64)
    return (value & np.uint64((1 << width) - 1)).astype(np.int64)


def _array_bytes(entries: int, total_bits: int) -> int:
    # one extra record for the last child end, rounded up to bytes, plus 8 bytes of read slack
    return ((1 + entries) * total_bits + 7) // 8 + 8


def read_trie_lm(path: Path) -> TrieLM:
    """Read a PocketSphinx trie binary LM (see module contract)."""
    raw = Path(path).read_bytes()
    if not raw.startswith(HEADER):
        raise ValueError(f"{Path(path).name}: not a PocketSphinx trie binary LM (header missing)")
    pos = len(HEADER)
    order = raw[pos]
    pos += 1
    if not 1 <= order <= 5:
        raise ValueError(f"{Path(path).name}: n-gram order {order} out of range")
    counts = list(struct.unpack_from(f"<{order}I", raw, pos))
    pos += 4 * order
    tables: list[npt.NDArray[np.float32]] = []
    if order > 1:
        n_values = (order - 2) * 2 * _TABLE + _TABLE
        pos += 4  # former quantization type
        tables = list(np.frombuffer(raw, dtype="<f4", count=n_values, offset=pos).reshape(-1, _TABLE))
        pos += 4 * n_values
    unigram_dtype = np.dtype([("prob", "<f4"), ("bow", "<f4"), ("next", "<u4")])
    unigrams = np.frombuffer(raw, dtype=unigram_dtype, count=counts[0] + 1, offset=pos)
    pos += unigram_dtype.itemsize * (counts[0] + 1)
    word_bits = _bits(counts[0])
    parents: npt.NDArray[np.int64] = unigrams["next"].astype(np.int64)  # child starts of the previous order
    paths = np.arange(counts[0], dtype=np.int32)[:, None]  # trie path (predicted word first) per record
    levels = [
        TrieLevel(
            paths.copy(),
            unigrams["prob"][:-1].astype(np.float64) * LOGMATH_TO_LOG10,
            unigrams["bow"][:-1].astype(np.float64) * LOGMATH_TO_LOG10 if order > 1 else None,
        )
    ]
    for n in range(2, order + 1):
        entries = counts[n - 1]
        middle = n < order
        next_bits = _bits(counts[n]) if middle else 0
        total_bits = word_bits + (2 * QUANT_BITS if middle else QUANT_BITS) + next_bits
        size = _array_bytes(entries, total_bits)
        data = np.frombuffer(raw, dtype=np.uint8, count=size, offset=pos)
        pos += size
        used = int(parents[-1])  # the header may count more records than were filled (see module contract)
        if used > entries:
            raise ValueError(f"{Path(path).name}: {used} {n}-grams linked, {entries} stored")
        offsets = np.arange(used + 1, dtype=np.int64) * total_bits
        words = _field(data, offsets[:-1], word_bits)
        owner = np.searchsorted(parents, np.arange(used), side="right") - 1
        paths = np.concatenate([paths[owner], words.astype(np.int32)[:, None]], axis=1)
        quant = offsets[:-1] + word_bits
        table = 2 * (n - 2)
        if middle:
            bow = tables[table + 1][_field(data, quant, QUANT_BITS)].astype(np.float64) * LOGMATH_TO_LOG10
            prob = tables[table][_field(data, quant + QUANT_BITS, QUANT_BITS)].astype(np.float64)
            parents = _field(data, offsets + word_bits + 2 * QUANT_BITS, next_bits)
        else:
            bow = None
            prob = tables[table][_field(data, quant, QUANT_BITS)].astype(np.float64)
        levels.append(TrieLevel(np.ascontiguousarray(paths[:, ::-1]), prob * LOGMATH_TO_LOG10, bow))
    (size,) = struct.unpack_from("<I", raw, pos)
    pos += 4
    vocab = [w.decode("utf-8") for w in raw[pos : pos + size].split(b"\0")[:-1]]
    if len(vocab) != counts[0]:
        raise ValueError(f"{Path(path).name}: {len(vocab)} words for {counts[0]} unigrams")
    return TrieLM(vocab, levels)
