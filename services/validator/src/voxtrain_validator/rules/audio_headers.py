"""What the headers of WAV, FLAC, MP3 and MP4 files promise, read straight from the bytes.

The decoder tells us how much audio it could decode; these headers tell us how much there should
be. Comparing the two is how truncated and damaged files are found (FFmpeg quietly stops at the
end of a short file). Pure functions over bytes, plus small readers that fetch only the few header
bytes they need.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .source import read_at

# Streaming writers (ffmpeg or sox to a pipe) cannot go back to fill in sizes: they write
# 0xFFFFFFFF, 0, or a huge round number.
_STREAMED_SIZE_FLOOR = 0x7FFFF000
_MAX_CHUNKS = 1000
# WAVE format tags whose blocks each hold one sample of every channel: PCM, IEEE float, A-law, µ-law, extensible.
_FRAME_EXACT_TAGS = frozenset({0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE})


@dataclass(frozen=True, slots=True)
class WavLayout:
    """The ``fmt `` and ``data`` chunks of a RIFF/WAVE (or RF64/BW64) file."""

    format_tag: int | None
    channels: int | None
    sample_rate: int | None
    byte_rate: int | None
    block_align: int | None
    bits_per_sample: int | None
    data_offset: int | None  # None: no data chunk before the end of the file
    declared_data_size: int | None  # None: written by a streaming writer, length unknown

    @property
    def bytes_per_second(self) -> int | None:
        """What a second of the data takes: for sample-per-block codecs (PCM, float, A-law, µ-law, extensible) the
        sample rate × block align, which is what a decoder goes by; otherwise (ADPCM and other compressed data) the
        header's average byte rate. A writer's wrong byte rate does not make a PCM file longer or shorter."""
        if self.format_tag in _FRAME_EXACT_TAGS and self.sample_rate and self.block_align:
            return self.sample_rate * self.block_align
        return self.byte_rate or None


def read_wav_layout(stream: BinaryIO, size: int) -> WavLayout | None:
    """Walk the RIFF chunks up to ``data``; None if the bytes are not a RIFF/WAVE file."""
    head = read_at(stream, 0, 12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
        return None
    is_64 = head[:4] != b"RIFF"
    ds64_data_size: int | None = None
    fmt: tuple[int, int, int, int, int, int] | None = None
    pos = 12
    for _ in range(_MAX_CHUNKS):
        header = read_at(stream, pos, 8)
        if len(header) < 8:
            break
        chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
        if chunk_id == b"ds64":
            body = read_at(stream, pos + 8, 16)
            if len(body) == 16:
                ds64_data_size = int.from_bytes(body[8:16], "little")
        elif chunk_id == b"fmt ":
            body = read_at(stream, pos + 8, 16)
            if len(body) == 16:
                fmt = struct.unpack("<HHIIHH", body)
        elif chunk_id == b"data":
            return _layout(fmt, pos + 8, _declared_size(chunk_size, is_64, ds64_data_size, available=size - pos - 8))
        pos += 8 + chunk_size + (chunk_size & 1)
        if pos >= size:
            break
    return _layout(fmt, None, None)


def _declared_size(chunk_size: int, is_64: bool, ds64_data_size: int | None, available: int) -> int | None:
    """The data size the header states, or None where a streaming writer left a placeholder."""
    if is_64 and chunk_size == 0xFFFFFFFF:
        return ds64_data_size
    if chunk_size == 0xFFFFFFFF or (chunk_size == 0 and available > 0):
        return None
    # Some stream writers put a huge round number; a real size that big needs a file that big.
    if chunk_size >= _STREAMED_SIZE_FLOOR and available < _STREAMED_SIZE_FLOOR:
        return None
    return chunk_size


def _layout(
    fmt: tuple[int, int, int, int, int, int] | None, data_offset: int | None, declared: int | None
) -> WavLayout:
    tag, channels, rate, byte_rate, align, bits = fmt if fmt else (None,) * 6
    return WavLayout(tag, channels, rate, byte_rate, align, bits, data_offset, declared)


@dataclass(frozen=True, slots=True)
class FlacInfo:
    """The STREAMINFO block of a FLAC file."""

    sample_rate: int
    channels: int
    bits_per_sample: int
    total_samples: int  # 0: unknown (the encoder did not know the length)


def read_flac_info(stream: BinaryIO) -> FlacInfo | None:
    """STREAMINFO of a native FLAC file (an ID3v2 tag before it is skipped); None if absent."""
    start = id3v2_length(read_at(stream, 0, 10))
    block = read_at(stream, start, 4 + 4 + 34)
    if len(block) < 42 or block[:4] != b"fLaC" or (block[4] & 0x7F) != 0:
        return None
    packed = int.from_bytes(block[8 + 10 : 8 + 18], "big")
    return FlacInfo(
        sample_rate=packed >> 44,
        channels=((packed >> 41) & 0x7) + 1,
        bits_per_sample=((packed >> 36) & 0x1F) + 1,
        total_samples=packed & ((1 << 36) - 1),
    )


def id3v2_length(head: bytes) -> int:
    """Bytes taken by an ID3v2 tag at the start of ``head`` (0 if there is none)."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = 0
    for byte in head[6:10]:
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def mp3_has_length_header(stream: BinaryIO) -> bool:
    """True if the first MP3 frame is a Xing/Info/VBRI header, i.e. the file states its length.

    Without one, FFmpeg estimates the duration from the file size, so a shortfall of decoded audio
    proves nothing; with one, it is exact and a short file is truncated.
    """
    start = id3v2_length(read_at(stream, 0, 10))
    window = read_at(stream, start, 4096)
    sync = _first_frame_sync(window)
    if sync < 0:
        return False
    frame_start = window[sync : sync + 200]
    return b"Xing" in frame_start or b"Info" in frame_start or b"VBRI" in frame_start


def _first_frame_sync(data: bytes) -> int:
    index = data.find(b"\xff")
    while 0 <= index < len(data) - 1:
        if data[index + 1] & 0xE0 == 0xE0:
            return index
        index = data.find(b"\xff", index + 1)
    return -1


# MPEG audio frame headers (ISO 11172-3 / 13818-3): kb/s by bit-rate index, for (MPEG-1?, layer).
_BIT_RATES_KBPS: dict[tuple[bool, int], tuple[int, ...]] = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# Hz by sample-rate index, for the version bits (0: MPEG-2.5, 2: MPEG-2, 3: MPEG-1).
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
# Frames in a row that must chain (each header where the one before ends) before a sync is believed.
_CHAINED_FRAMES = 3
# Places across the file whose frames give its bit rate (and must all have the first frame's for it to be CBR), the
# bytes of frames walked at each, and the bytes read there (frames are at most 2,881 bytes: MPEG-2.5 layer II at
# 160 kb/s). The same bytes at each place, not the same frames: places are spread evenly by bytes, so seconds over
# bytes is the file's; a fixed count of frames would weigh loud stretches (more bytes a second) too much.
_RATE_PROBES = 256
_PROBE_SPAN = 16 * 1024
_PROBE_BYTES = _PROBE_SPAN + 8 * 1024


@dataclass(frozen=True, slots=True)
class MpegFrame:
    """What one MPEG audio frame header says."""

    stream_kind: tuple[int, int, int]  # version bits, layer bits, sample-rate index: the same through a stream
    bit_rate: int  # bits per second
    sample_rate: int
    length: int  # bytes of the frame, header included
    samples: int  # samples per channel the frame holds


@dataclass(frozen=True, slots=True)
class SampledBitRate:
    """What frames read at places across an MP3 say of its bit rate."""

    bits_per_second: float  # the frames' bits over their playing time
    constant: bool  # every frame read had the first frame's bit rate


def mpeg_frame(header: bytes) -> MpegFrame | None:
    """The frame a 4-byte MPEG audio header describes; None if the bytes are not one (or a free-format frame, whose
    length the header does not give)."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 0x3, (header[1] >> 1) & 0x3
    rate_index, sr_index, padding = header[2] >> 4, (header[2] >> 2) & 0x3, (header[2] >> 1) & 0x1
    if version == 1 or layer_bits == 0 or rate_index in (0, 15) or sr_index == 3:
        return None
    layer, mpeg1 = 4 - layer_bits, version == 3
    bit_rate = _BIT_RATES_KBPS[(mpeg1, layer)][rate_index - 1] * 1000
    sample_rate = _SAMPLE_RATES[version][sr_index]
    if layer == 1:
        length, samples = (12 * bit_rate // sample_rate + padding) * 4, 384
    else:
        half = layer == 3 and not mpeg1  # MPEG-2/2.5 layer III frames hold half the samples
        length, samples = (72 if half else 144) * bit_rate // sample_rate + padding, 576 if half else 1152
    return MpegFrame((version, layer_bits, sr_index), bit_rate, sample_rate, length, samples)


def mp3_is_free_format(stream: BinaryIO) -> bool:
    """Whether the first MPEG audio frame (after an ID3v2 tag) is free format, bit-rate index 0: FFmpeg reads none."""
    header = read_at(stream, id3v2_length(read_at(stream, 0, 10)), 4)
    return len(header) == 4 and header[0] == 0xFF and header[1] & 0xE0 == 0xE0 and header[2] >> 4 == 0


def _chained_frame(window: bytes) -> tuple[int, MpegFrame] | None:
    """The first frame in ``window`` followed by frames of the same stream where each one ends, with its offset."""
    at = _first_frame_sync(window)
    while at >= 0:
        first = mpeg_frame(window[at : at + 4])
        pos, chained = at, 0
        frame = first
        while frame is not None and first is not None and frame.stream_kind == first.stream_kind:
            chained += 1
            if chained == _CHAINED_FRAMES:
                return at, first
            pos += frame.length
            frame = mpeg_frame(window[pos : pos + 4])
        nxt = _first_frame_sync(window[at + 1 :])
        at = at + 1 + nxt if nxt >= 0 else -1
    return None


def mp3_first_frame(stream: BinaryIO) -> tuple[int, MpegFrame] | None:
    """Where an MP3's audio starts (after an ID3v2 tag) and its first frame; None if no frames chain there."""
    start = id3v2_length(read_at(stream, 0, 10))
    found = _chained_frame(read_at(stream, start, 16 * 1024))
    return (start + found[0], found[1]) if found else None


def mp3_bit_rate_across(stream: BinaryIO, size: int, start: int, first: MpegFrame) -> SampledBitRate | None:
    """The bit rate of the frames found at evenly spaced places across the file (16 KiB of them at each of 256), and
    whether all of them have ``first``'s; None if a place holds no frames of ``first``'s stream (other data
    between its frames: its length is known only once decoded)."""
    bits = seconds = 0.0
    constant = True
    for probe in range(1, _RATE_PROBES + 1):
        data = read_at(stream, start + max(0, size - start - _PROBE_BYTES) * probe // (_RATE_PROBES + 1), _PROBE_BYTES)
        found = _chained_frame(data)
        if found is None or found[1].stream_kind != first.stream_kind:
            return None
        at = begin = found[0]
        frame: MpegFrame | None = found[1]
        while frame is not None and frame.stream_kind == first.stream_kind and at + frame.length <= len(data):
            bits, seconds = bits + frame.length * 8, seconds + frame.samples / frame.sample_rate
            constant = constant and frame.bit_rate == first.bit_rate
            at += frame.length
            frame = mpeg_frame(data[at : at + 4]) if at - begin < _PROBE_SPAN else None
    return SampledBitRate(bits / seconds, constant) if seconds else None


# What the first bytes of a file say it is, for messages when FFmpeg cannot open it at all.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"RIFF", "a RIFF file"),
    (0, b"fLaC", "a FLAC file"),
    (0, b"ID3", "an MP3 file (it starts with an ID3 tag)"),
    (0, b"OggS", "an Ogg file"),
    (4, b"ftyp", "an MP4/M4A file"),
    (0, b"\x89PNG", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF8", "a GIF image"),
    (0, b"%PDF", "a PDF document"),
    (0, b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"\x1a\x45\xdf\xa3", "a Matroska/WebM file"),
    (0, b"FORM", "an AIFF file"),
)


def mp4_audio_packets(stream: BinaryIO, size: int) -> int | None:
    """The number of packets in the sample table (``stsz``/``stz2``) of the first sound track of an MP4/M4A,
    found by walking box headers only (a few small reads wherever the moov box is); None when there is no such
    table (not an MP4, damaged, or fragmented)."""
    moov = next((b for b in _boxes(stream, 0, size) if b[0] == b"moov"), None)
    if moov is None:
        return None
    for kind, start, end in _boxes(stream, moov[1], moov[2]):
        if kind != b"trak":
            continue
        mdia = _child(stream, (start, end), b"mdia")
        hdlr = _child(stream, mdia, b"hdlr") if mdia else None
        if hdlr is None or read_at(stream, hdlr[0] + 8, 4) != b"soun":
            continue
        minf = _child(stream, mdia, b"minf") if mdia else None
        stbl = _child(stream, minf, b"stbl") if minf else None
        if stbl is None:
            return None
        for name, at in ((b"stsz", 8), (b"stz2", 8)):
            table = _child(stream, stbl, name)
            if table is not None:
                count = read_at(stream, table[0] + at, 4)
                return int.from_bytes(count, "big") if len(count) == 4 else None
        return None
    return None


def _boxes(stream: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """``(type, payload start, end)`` of the ISO-BMFF boxes between ``start`` and ``end``."""
    at, seen = start, 0
    while at + 8 <= end and seen < _MAX_CHUNKS:
        head = read_at(stream, at, 16)
        if len(head) < 8:
            return
        box_size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if box_size == 1 and len(head) == 16:  # a 64-bit size follows
            box_size, header = struct.unpack(">Q", head[8:16])[0], 16
        elif box_size == 0:  # to the end of the enclosing box
            box_size = end - at
        if box_size < header:
            return
        yield kind, at + header, min(at + box_size, end)
        at += box_size
        seen += 1


def _child(stream: BinaryIO, parent: tuple[int, int], kind: bytes) -> tuple[int, int] | None:
    return next(((start, end) for k, start, end in _boxes(stream, *parent) if k == kind), None)


def describe_magic(head: bytes) -> str | None:
    """A person's name for what the first bytes look like, or None if nothing is recognised."""
    for offset, magic, what in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return what
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "an MPEG audio (MP3) stream"
    sample = head[:512]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return "a text file"
    return None
