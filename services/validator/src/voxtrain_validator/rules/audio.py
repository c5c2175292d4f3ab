"""AUDIO datasets: decode every packet with FFmpeg (PyAV) and check the file is what it claims.

What is checked, and how:

* the real container, found from the bytes alone (FFmpeg is never told the file name), must be
  the one the extension names;
* every packet of the first audio stream is decoded, so damage anywhere is found, in bounded
  memory (one packet and one frame at a time, FFmpeg's I/O buffer, nothing accumulated);
* truncation, which FFmpeg mostly passes over in silence, is found by comparing what was decoded
  with what the file's own header promises: the WAV ``data`` size, the FLAC STREAMINFO sample
  count, the MP3 Xing/Info frame count, the MP4 sample table;
* suspicious but usable files (low sample rate, very short, silent) pass with warnings.
* audio longer than ``MAX_DURATION_HOURS`` is refused: before decoding when the header states the
  length exactly, or when the size shows it (a streamed WAV; an MP3 without a length header whose
  frames, sampled across the file, all have one bit rate), else once that much has been decoded;
* an M4A whose index lists more than ``MAX_MP4_PACKETS`` packets is refused before FFmpeg opens it
  (it would hold the whole index in memory), and a fragmented one, whose index lists none up front, once
  that many are decoded; a smaller plain one is opened only while its index fits the memory budget the
  process's concurrent checks share (:mod:`.memory`), and a fragmented one while what its size could index
  does (at most the whole budget: a big one is checked alone).

Limits: uncompressed PCM has no redundancy, so flipped bits inside WAV audio data are not
detectable by anyone; an MP3 without a Xing/Info header that was cut at a frame boundary looks
exactly like a shorter MP3.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import av
import numpy as np

from voxtrain_shared.vocab import ErrorCode

from .audio_headers import (
    FlacInfo,
    WavLayout,
    describe_magic,
    mp3_bit_rate_across,
    mp3_first_frame,
    mp3_has_length_header,
    mp3_is_free_format,
    mp4_audio_packets,
    read_flac_info,
    read_wav_layout,
)
from .memory import MemoryBudget
from .outcome import Outcome, Report, SourceReadError, clock, failed, plural
from .source import GuardedStream, read_at, stream_size

CODE = ErrorCode.INVALID_AUDIO_FORMAT

LOW_SAMPLE_RATE_HZ = 16_000
SHORT_AUDIO_SECONDS = 1.0
SILENCE_PEAK = 10 ** (-60 / 20)  # -60 dBFS
# A jump in timestamps larger than this between consecutive frames is a gap in the audio.
GAP_SECONDS = 0.002
# Shortfall against a header's duration that is tolerated where the header is not sample-exact.
MP3_TOLERANCE_SECONDS = 0.1
# FFmpeg's I/O buffer: the most the decoder reads from the stream at once.
IO_BUFFER_BYTES = 256 * 1024
# Work limits against files crafted to keep a worker busy (see _Budget).
MAX_DURATION_HOURS = 400  # a 10 GB WAV of 8 kHz mono 8-bit telephone audio is ~350 hours
# A length worked out from the file's size (a streamed WAV, a CBR MP3 without a length header) counts bytes that
# may not all be audio (tags, trailing chunks): refused up front only when this much over the limit.
SIZE_ESTIMATE_MARGIN = 1.01
# A VBR MP3 without a length header is timed by the bit rate of 4 MiB of frames read at 256 places across it: an
# estimate (speech and silence differ in bit rate), refused up front only when this much over the limit; one
# nearer it is decoded, and the decoding budget stops it at the limit.
VBR_ESTIMATE_MARGIN = 1.25
# The lowest bit rate of an MPEG audio frame (MPEG-2/2.5): an MP3 smaller than the limit at this rate cannot be
# too long, and its frames are not sampled.
MIN_MPEG_BIT_RATE = 8000
MAX_REREAD_BYTES = 64 * 1024 * 1024
# FFmpeg's MP4 demuxer reads a file's whole sample table into memory when it opens it, in the validator and in
# every training worker: ~75 bytes a packet measured (1.3 GB for the 15.6M packets of a 10 GiB AAC file at
# 256 kb/s, 92 h at 48 kHz; bench/trainer/SIZE_LIMITS.md). Past this many the file is refused before it is opened.
MAX_MP4_PACKETS = 16_000_000
# What one packet of that index is reserved at in the process's memory budget (``memory.MemoryBudget``): the ~75 B
# measured, rounded up.
MP4_INDEX_BYTES_PER_PACKET = 80
# A fragmented M4A lists no packets before it is opened: it is reserved at the packets its size could hold, one per
# this many bytes (an AAC packet of speech is hundreds), up to MAX_MP4_PACKETS (where decoding stops it) and at most
# the whole budget, so that a big one is checked alone rather than next to another that takes the pod over its limit.
MIN_MP4_PACKET_BYTES = 64

_MP4_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"


@dataclass(frozen=True, slots=True)
class _Kind:
    label: str  # how a person names it
    formats: frozenset[str]  # FFmpeg demuxer names that are this kind


KINDS: dict[str, _Kind] = {
    "wav": _Kind("WAV", frozenset({"wav"})),
    "mp3": _Kind("MP3", frozenset({"mp3"})),
    "m4a": _Kind("M4A", frozenset({_MP4_FAMILY})),
    "flac": _Kind("FLAC", frozenset({"flac"})),
}
_EXTENSION_OF_FORMAT = {fmt: ext for ext, kind in KINDS.items() for fmt in kind.formats}

# How a person names what FFmpeg found.
_FOUND: dict[str, str] = {
    "wav": "a WAV file",
    "mp3": "an MP3 stream",
    _MP4_FAMILY: "an MP4/M4A file",
    "flac": "a FLAC file",
    "ogg": "an Ogg file",
    "aac": "a raw AAC (ADTS) stream",
    "matroska,webm": "a Matroska/WebM file",
    "aiff": "an AIFF file",
    "w64": "a Sony Wave64 file",
    "caf": "a Core Audio (CAF) file",
    "asf": "a Windows Media (ASF/WMA) file",
    "amr": "an AMR voice recording",
    "avi": "an AVI video",
    "mpeg": "an MPEG program stream",
    "mpegts": "an MPEG transport stream",
}


def validate_audio(
    stream: BinaryIO, extension: str, memory: MemoryBudget | None = None, abandoned: threading.Event | None = None
) -> Outcome:
    """Decode the whole file in ``stream`` (readable, seekable) and judge it as an AUDIO dataset.

    ``extension`` is the uploaded file's extension (".wav", "mp3", any case). Content problems
    become a failed Outcome with code ``invalid_audio_format``; a failure of the stream itself
    raises SourceReadError. Synchronous and thread-safe; memory stays bounded whatever the file's
    size, except an M4A's index, which FFmpeg holds whole: with ``memory`` (the budget the process's
    concurrent checks share) the check waits until the index fits, and a file whose index alone
    exceeds the budget is refused (WaitAbandoned when ``abandoned`` is set while it waits).
    """
    ext = extension.lower().lstrip(".")
    kind = KINDS.get(ext)
    if kind is None:
        return failed(CODE, f"'.{ext}' is not an audio type that can be uploaded; use .wav, .mp3, .m4a or .flac.")
    size = stream_size(stream)
    if size == 0:
        return failed(
            CODE, f"The file is empty (0 bytes). Upload the {kind.label} file again.", metadata={"size_bytes": 0}
        )
    head = read_at(stream, 0, 512)
    wav = read_wav_layout(stream, size) if ext == "wav" else None
    flac = read_flac_info(stream) if ext == "flac" else None
    mp3_exact = mp3_has_length_header(stream) if ext == "mp3" else False
    too_long = _too_long_for_its_size(stream, ext, size, wav, mp3_exact)
    if too_long is not None:
        return too_long

    packets = mp4_audio_packets(stream, size) if ext == "m4a" else None
    if packets is not None and packets > MAX_MP4_PACKETS:
        return failed(
            CODE,
            f"This M4A file's index lists {packets:,} audio packets; more than {MAX_MP4_PACKETS:,} (about "
            f"{MAX_MP4_PACKETS * 1024 / 48000 / 3600:.0f} hours of AAC at 48 kHz) cannot be opened in the memory a "
            "validation or a training has, because the whole index is held in memory. Split the recording into "
            "shorter files and upload those.",
            metadata={"size_bytes": size, "packets": packets},
        )
    index_bytes = (packets or 0) * MP4_INDEX_BYTES_PER_PACKET
    if ext == "m4a" and not packets:  # fragmented (an empty table): what its size could hold, at most all
        index_bytes = min(size // MIN_MP4_PACKET_BYTES, MAX_MP4_PACKETS) * MP4_INDEX_BYTES_PER_PACKET
        index_bytes = min(index_bytes, memory.budget_bytes) if memory is not None else index_bytes
    elif memory is not None and index_bytes > memory.budget_bytes:
        return failed(
            CODE,
            f"This M4A file's index lists {packets:,} audio packets, which take about {index_bytes / 2**20:,.0f} MiB "
            f"of memory to open: more than the {memory.budget_bytes / 2**20:,.0f} MiB a validation may use. Split "
            "the recording into shorter files and upload those.",
            metadata={"size_bytes": size, "packets": packets},
        )
    with memory.hold(index_bytes, abandoned) if memory is not None and index_bytes else contextlib.nullcontext():
        return _open_and_judge(stream, ext, kind, size, head, wav, flac, mp3_exact)


def _too_long_for_its_size(
    stream: BinaryIO, ext: str, size: int, wav: WavLayout | None, mp3_exact: bool
) -> Outcome | None:
    """Refuse, before anything is decoded, audio whose header does not state its length but whose size shows it is
    longer than the limit: a streamed WAV (its bytes at its sample format's rate) and an MP3 without a length header
    big enough to be too long even at the lowest bit rate, timed by the frames at places across the file (a
    constant bit rate gives its length as FFmpeg estimates it; a variable one an estimate, refused only when well
    over). Anything else is stopped by the decoding budget once that much is decoded."""
    seconds, basis, margin = 0.0, "", SIZE_ESTIMATE_MARGIN
    rate = wav.bytes_per_second if wav is not None else None
    if wav is not None and wav.declared_data_size is None and wav.data_offset is not None and rate:
        seconds, basis = (size - wav.data_offset) / rate, f"its sample format ({rate:,} bytes a second)"
    elif (
        ext == "mp3"
        and not mp3_exact
        and size * 8 / MIN_MPEG_BIT_RATE > MAX_DURATION_HOURS * 3600
        and (first := mp3_first_frame(stream)) is not None
        and (sampled := mp3_bit_rate_across(stream, size, *first)) is not None
    ):
        start, frame = first
        if sampled.constant:
            seconds = (size - start) * 8 / frame.bit_rate
            basis = f"its constant bit rate ({frame.bit_rate // 1000} kb/s)"
        else:
            seconds, margin = (size - start) * 8 / sampled.bits_per_second, VBR_ESTIMATE_MARGIN
            kbps = sampled.bits_per_second / 1000
            basis = f"its variable bit rate (about {kbps:.0f} kb/s where sampled across the file)"
    if seconds <= MAX_DURATION_HOURS * 3600 * margin:
        return None
    return failed(
        CODE,
        f"The audio is about {clock(seconds)} long, as its size and {basis} give: longer than "
        f"{MAX_DURATION_HOURS:g} hours; split it into shorter files.",
        metadata={"size_bytes": size, "duration_seconds": round(seconds, 3)},
    )


def _open_and_judge(
    stream: BinaryIO,
    ext: str,
    kind: _Kind,
    size: int,
    head: bytes,
    wav: WavLayout | None,
    flac: FlacInfo | None,
    mp3_exact: bool,
) -> Outcome:
    try:
        stream.seek(0)
    except Exception as exc:  # the caller's stream, not the content
        raise SourceReadError(f"cannot seek the stream: {exc}") from exc
    guarded = GuardedStream(stream)
    try:
        container = av.open(guarded, mode="r", buffer_size=IO_BUFFER_BYTES)
    except Exception as exc:
        guarded.raise_if_failed()
        message = _FREE_FORMAT if ext == "mp3" and mp3_is_free_format(stream) else None
        return failed(CODE, message or _unreadable_message(ext, kind, head, exc), metadata={"size_bytes": size})

    try:
        with container:
            outcome = _judge(container, ext, kind, size, wav, flac, mp3_exact, guarded)
    except Exception as exc:
        guarded.raise_if_failed()
        return failed(
            CODE,
            f"The {kind.label} file could not be decoded: {_ffmpeg_reason(exc)}. "
            "It is probably damaged; export or encode it again from the original.",
            metadata={"size_bytes": size},
        )
    guarded.raise_if_failed()
    return outcome


def _judge(
    container: Any,
    ext: str,
    kind: _Kind,
    size: int,
    wav: WavLayout | None,
    flac: FlacInfo | None,
    mp3_exact: bool,
    source: GuardedStream,
) -> Outcome:
    format_name = container.format.name
    found = _describe_found(container.format)
    has_audio = bool(container.streams.audio)
    if format_name not in kind.formats:
        return failed(
            CODE,
            _mismatch_message(ext, kind, format_name, found, has_audio),
            metadata={"size_bytes": size, "detected_format": format_name},
        )
    if not has_audio:
        other = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
        return failed(
            CODE,
            f"This {kind.label} file contains no audio stream (found: {other}). Upload a file with a recording in it.",
            metadata={"size_bytes": size, "detected_format": format_name},
        )

    report = Report()
    audio = container.streams.audio[0]
    if len(container.streams.audio) > 1:
        report.warn(f"The file has {len(container.streams.audio)} audio streams; only the first is used.")
    if container.streams.video:
        report.warn("The file also contains video; only the audio is used.")

    stated = _stated_seconds(container, audio, ext, size, wav, flac, mp3_exact)
    if stated is not None and stated > MAX_DURATION_HOURS * 3600:
        # Refused before decoding: the budget below would stop at the same length, but only after hours of work.
        return failed(
            CODE,
            f"The audio is {clock(stated)} long, as its header states: longer than {MAX_DURATION_HOURS:g} hours; "
            "split it into shorter files.",
            metadata={"size_bytes": size, "detected_format": format_name, "duration_seconds": round(stated, 3)},
        )

    if wav is not None:
        _check_wav_layout(wav, size, report)

    budget = _Budget(source, size, max_packets=MAX_MP4_PACKETS if ext == "m4a" else None)
    decoded = _decode_all(container, audio, report, budget, gaps_are_errors=(ext == "flac"))
    rate = decoded.sample_rate or audio.codec_context.sample_rate or 0
    duration = decoded.samples / rate if rate else 0.0

    # A header that promises more audio than was decoded means the file is cut short, unless
    # damaged audio went missing in the middle (a gap), which is already reported as damage.
    summary: str | None = decoded.stopped
    if summary is None and not (decoded.gaps and decoded.damaged):
        summary = _check_promised_length(container, audio, ext, flac, mp3_exact, decoded, duration, report)
    if summary is None and decoded.damaged:
        summary = (
            f"The {kind.label} file is damaged: {plural(decoded.damaged, 'part')} of the audio "
            f"could not be decoded (the first at {clock(decoded.first_problem_seconds or 0)}). "
            "Export or encode it again from the original recording."
        )
    if decoded.samples == 0:
        report.error(
            "The file contains no audio: nothing could be decoded from it (duration 0 s). "
            "Upload a file with a recording in it."
        )

    codec = audio.codec_context
    channels = decoded.channels or codec.channels or 0
    metadata: dict[str, Any] = {
        "container": ext,
        "detected_format": format_name,
        "codec": codec.codec.canonical_name if codec.codec else codec.name,
        "codec_long_name": codec.codec.long_name if codec.codec else None,
        "sample_rate": rate or None,
        "channels": channels or None,
        "bit_depth": _bit_depth(ext, codec, decoded, wav, flac),
        "duration_seconds": round(duration, 3),
        "samples": decoded.samples,
        "bit_rate": container.bit_rate or None,
        "size_bytes": size,
        "silent": not decoded.audible,
    }
    if not report.failed:
        _warn_suspicious(report, rate, duration, channels, decoded.audible)
    return report.outcome(CODE, metadata, summary)


def _stated_seconds(
    container: Any, audio: Any, ext: str, size: int, wav: WavLayout | None, flac: FlacInfo | None, mp3_exact: bool
) -> float | None:
    """The length the file's own header states exactly (WAV data size, FLAC STREAMINFO, the MP4 index, an MP3
    Xing/Info frame), or None where FFmpeg would only estimate it (a streamed WAV, an MP3 without such a frame)."""
    if wav is not None:
        rate = wav.bytes_per_second
        if wav.declared_data_size is None or wav.data_offset is None or not rate:
            return None
        return min(wav.declared_data_size, size - wav.data_offset) / rate  # a cut-short file holds less
    if flac is not None:
        return flac.total_samples / flac.sample_rate if flac.total_samples and flac.sample_rate else None
    if ext == "m4a" and audio.duration and audio.time_base:
        return float(audio.duration * audio.time_base)
    if ext == "mp3" and mp3_exact and container.duration:
        return float(container.duration / av.time_base)
    return None


def _check_promised_length(
    container: Any,
    audio: Any,
    ext: str,
    flac: FlacInfo | None,
    mp3_exact: bool,
    decoded: _Decoded,
    duration: float,
    report: Report,
) -> str | None:
    """Compare decoded audio with the length the file's own header states; the message if short."""
    message: str | None = None
    if flac is not None and flac.total_samples and decoded.samples < flac.total_samples:
        message = (
            f"The FLAC file is cut short: its header says "
            f"{clock(flac.total_samples / flac.sample_rate)} of audio ({flac.total_samples} "
            f"samples) but only {clock(duration)} ({decoded.samples} samples) could be decoded. "
            "Upload the complete file or encode it again from the original."
        )
    elif ext == "mp3" and mp3_exact and container.duration:
        expected = container.duration / av.time_base
        if duration < expected - MP3_TOLERANCE_SECONDS:
            message = (
                f"The MP3 file is cut short: its header says {clock(expected)} of audio but "
                f"only {clock(duration)} could be decoded. Upload the complete file."
            )
    elif ext == "m4a" and audio.frames and decoded.packets < audio.frames:
        expected_s = float(audio.duration * audio.time_base) if audio.duration else None
        said = f" ({clock(expected_s)})" if expected_s else ""
        message = (
            f"The M4A file is cut short: its index lists {audio.frames} audio packets{said} "
            f"but only {decoded.packets} ({clock(duration)}) are in the file. The upload or "
            "the recording was interrupted; upload the complete file."
        )
    if message is not None:
        report.error(message, byte_offset=decoded.first_problem_offset)
    return message


@dataclass(slots=True)
class _Decoded:
    samples: int = 0
    packets: int = 0
    sample_rate: int = 0
    channels: int = 0
    sample_format: str | None = None
    audible: bool = False  # some sample reached SILENCE_PEAK
    stopped: str | None = None  # why decoding was abandoned before the end
    first_problem_offset: int | None = None
    first_problem_seconds: float | None = None
    damaged: int = 0  # packets that failed to decode, plus (FLAC) gaps where frames were dropped
    gaps: list[tuple[float, float, int | None]] = field(default_factory=list)

    def damage(self, byte_offset: int | None, seconds: float | None) -> None:
        self.damaged += 1
        if self.first_problem_seconds is None:
            self.first_problem_offset = byte_offset
            self.first_problem_seconds = seconds


class _Budget:
    """Stops decoding a file crafted to make the decoder work without end.

    A sound file is read about once, and its audio is not absurdly long; a container whose index
    points at the same bytes over and over, or a stream of tiny frames that each expand to a long
    run of samples, would otherwise keep a worker busy for hours.
    """

    def __init__(self, source: GuardedStream, size: int, max_packets: int | None = None) -> None:
        self._source = source
        self._max_bytes = 3 * size + MAX_REREAD_BYTES
        # A fragmented M4A has no sample table to count before it is opened, but FFmpeg indexes every packet it
        # reads all the same (~40 B each, bench/validator/RESULTS.md): its packets are counted as they come.
        self._max_packets = max_packets

    def exceeded(self, seconds_decoded: float, packets: int = 0) -> str | None:
        if self._source.bytes_read > self._max_bytes:
            return (
                f"The file is malformed: decoding it re-reads the same data over and over "
                f"({self._source.bytes_read} bytes read so far); export it again."
            )
        if seconds_decoded > MAX_DURATION_HOURS * 3600:
            return f"The audio is longer than {MAX_DURATION_HOURS:g} hours; split it into shorter files."
        if self._max_packets is not None and packets > self._max_packets:
            return (
                f"This M4A file holds more than {self._max_packets:,} audio packets: FFmpeg keeps an index entry for "
                "every packet it reads, more than the memory a validation or a training has. Split the recording "
                "into shorter files and upload those."
            )
        return None


def _decode_all(container: Any, audio: Any, report: Report, budget: _Budget, *, gaps_are_errors: bool) -> _Decoded:
    """Decode every packet of ``audio``; damaged packets and demuxing errors go to ``report``."""
    out = _Decoded()
    seconds_per_tick = float(audio.time_base or 1)
    next_start: float | None = None  # where the next frame should start, in seconds
    packets = container.demux(audio)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except Exception as exc:
            report.error(
                f"The file is damaged after {clock(next_start or 0.0)}: "
                f"{_ffmpeg_reason(exc)}; the rest of it cannot be read."
            )
            break
        if packet.size:
            out.packets += 1
            if out.packets % 32 == 0:
                stop = budget.exceeded(out.samples / out.sample_rate if out.sample_rate else 0.0, out.packets)
                if stop:
                    report.error(stop)
                    out.stopped = stop
                    break
        try:
            frames = packet.decode()
        except Exception as exc:
            where = packet.pts * seconds_per_tick if packet.pts is not None else next_start
            at = f" at {clock(where)}" if where is not None else ""
            report.error(f"Damaged audio{at} ({_ffmpeg_reason(exc)}).", byte_offset=packet.pos)
            out.damage(packet.pos, where)
            continue
        for frame in frames:
            samples, rate = frame.samples, frame.sample_rate
            if not out.sample_rate:
                out.sample_rate = rate
                out.channels = frame.layout.nb_channels
                out.sample_format = frame.format.name
            if frame.pts is not None and rate:
                start = frame.pts * seconds_per_tick
                if next_start is not None and start - next_start > GAP_SECONDS:
                    out.gaps.append((next_start, start, packet.pos))
                    if gaps_are_errors:
                        report.error(
                            f"Audio is missing between {clock(next_start)} and "
                            f"{clock(start)}: damaged frames were skipped.",
                            byte_offset=packet.pos,
                        )
                        out.damage(packet.pos, next_start)
                next_start = start + samples / rate
            out.samples += samples
            if not out.audible:
                # Only silence is of interest: stop measuring once the file is clearly not silent.
                out.audible = _peak(frame) >= SILENCE_PEAK
    if out.gaps and not gaps_are_errors and not out.damaged:
        first = out.gaps[0]
        report.warn(
            f"The audio's timestamps jump {plural(len(out.gaps), 'time')} "
            f"(first from {clock(first[0])} to {clock(first[1])}); "
            "parts of the recording may be missing."
        )
    return out


def _peak(frame: Any) -> float:
    """Peak absolute sample value of ``frame`` as a fraction of full scale."""
    data = frame.to_ndarray()
    if data.size == 0:
        return 0.0
    high, low = data.max(), data.min()
    kind = data.dtype.kind
    if kind == "f":
        return float(max(abs(float(high)), abs(float(low))))
    if kind == "u":  # unsigned: silence is the middle of the range
        mid = (int(np.iinfo(data.dtype).max) + 1) // 2
        return max(int(high) - mid, mid - int(low)) / mid
    full = -int(np.iinfo(data.dtype).min)
    return max(int(high), -int(low)) / full


def _check_wav_layout(wav: WavLayout, size: int, report: Report) -> None:
    if wav.data_offset is None:
        report.error(
            f"The WAV file has no audio data: it ends after its header ({size} bytes). "
            "The upload or the recording was interrupted; upload the complete file.",
            byte_offset=size,
        )
        return
    available = size - wav.data_offset
    if wav.declared_data_size is None:
        report.warn(
            "The WAV header does not state the length of the audio (it was written as a "
            "stream); the length was taken from the file size."
        )
        return
    if available < wav.declared_data_size:
        rate = wav.bytes_per_second or 0
        said = f"{clock(wav.declared_data_size / rate)} of audio" if rate else "more audio"
        has = f"{clock(available / rate)}" if rate else f"{available} bytes"
        report.error(
            f"The WAV file is cut short: its header says {said} ({wav.declared_data_size} bytes) but "
            f"the file ends after {has} ({wav.declared_data_size - available} bytes missing). "
            "The upload or the recording was interrupted; upload the complete file.",
            byte_offset=size,
        )


def _bit_depth(ext: str, codec: Any, decoded: _Decoded, wav: WavLayout | None, flac: FlacInfo | None) -> int | None:
    """Bits per sample where the format has such a thing (not for MP3/AAC, which are lossy)."""
    if flac is not None:
        return flac.bits_per_sample
    if wav is not None and wav.bits_per_sample:
        return wav.bits_per_sample
    name = codec.codec.canonical_name if codec.codec else codec.name
    if name.startswith("pcm_"):
        digits = "".join(ch for ch in name if ch.isdigit())
        return int(digits) if digits else 8
    if name == "alac" and decoded.sample_format:
        return av.AudioFormat(decoded.sample_format).bits
    return None


def _warn_suspicious(report: Report, rate: int, duration: float, channels: int, audible: bool) -> None:
    if rate and rate < LOW_SAMPLE_RATE_HZ:
        report.warn(
            f"The sample rate is {rate} Hz (telephone quality). It is accepted, but "
            "recognition works best at 16000 Hz or more; upload the original recording "
            "if you have it at a higher rate."
        )
    if 0 < duration < SHORT_AUDIO_SECONDS:
        report.warn(f"The audio is only {duration:.2f} s long; such a short clip carries very little speech.")
    if channels > 2:
        report.warn(f"The audio has {channels} channels; they are mixed down to one.")
    if duration > 0 and not audible:
        report.warn("The audio is silent (no sample reaches -60 dBFS); check that the right file was uploaded.")


def _describe_found(fmt: Any) -> str:
    name = fmt.name
    if name in _FOUND:
        return _FOUND[name]
    if name.endswith("_pipe"):
        return f"a {name[: -len('_pipe')].upper()} image"
    if name.startswith("image2"):
        return f"an image ({fmt.long_name})"
    return f"{fmt.long_name} data"


def _mismatch_message(ext: str, kind: _Kind, format_name: str, found: str, has_audio: bool) -> str:
    real_ext = _EXTENSION_OF_FORMAT.get(format_name)
    if real_ext is not None:
        return f"This file is {found} but is named .{ext} — rename it to .{real_ext} or re-encode it as {kind.label}."
    if not has_audio:
        return f"This file is {found}, not audio, but is named .{ext} — upload the audio recording itself."
    return (
        f"This file is {found} but is named .{ext}; that format is not accepted. Convert it "
        f"to {kind.label} (for example: ffmpeg -i INPUT output.{ext}) and upload that."
    )


def _unreadable_message(ext: str, kind: _Kind, head: bytes, exc: BaseException) -> str:
    reason = _ffmpeg_reason(exc)
    looks = describe_magic(head)
    if looks == "a text file":
        return f"This file is a text file, not audio, but is named .{ext} — upload the audio recording itself."
    if looks is not None and looks.startswith(("a PNG", "a JPEG", "a GIF", "a PDF", "a ZIP", "a gzip")):
        return f"This file is {looks}, not audio, but is named .{ext} — upload the audio recording itself."
    if looks == "an MP4/M4A file":
        return (
            "This M4A file cannot be opened: its index (the 'moov' box) is missing or damaged, "
            "which happens when an upload or a recording is interrupted. Upload the complete "
            f"file, or export it again ({reason})."
        )
    if looks is not None:
        return (
            f"This file looks like {looks} but no audio could be read from it: it is damaged "
            f"or incomplete ({reason}). Upload the complete {kind.label} file again."
        )
    return (
        f"This file is not {kind.label} audio: no known audio format was recognised in it "
        f"({reason}). Check that you uploaded the right file."
    )


_FREE_FORMAT = (
    "This MP3 is in free format (its frames state no standard bit rate, as `lame --freeformat` writes them), "
    "which cannot be decoded here. Encode it again from the original recording at a standard bit rate (any "
    "encoder's default), or decode it with `lame --decode` and upload the WAV."
)


def _ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's own wording of an error, without errno noise."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(reason).rstrip(".")
