"""A file of each accepted type at the spec's size limit (10 GB), through the services: upload → 4 or a refusal.

One command per scenario (the shared servers from ``VOXTRAIN_TEST_*`` when set, else the local dev stack)::

    uv run python bench/e2e/bench_size_limits.py --scenario txt            # a 10 GiB .txt transcript
    uv run python bench/e2e/bench_size_limits.py --scenario vtt            # a 10 GiB .vtt transcript, no audio
    uv run python bench/e2e/bench_size_limits.py --scenario srt
    uv run python bench/e2e/bench_size_limits.py --scenario wav            # a 10 GiB RF64 .wav + manifest + text
    uv run python bench/e2e/bench_size_limits.py --scenario mp3            # likewise .mp3, .flac, .m4a
    uv run python bench/e2e/bench_size_limits.py --scenario manifest       # a 10 GiB .jsonl + a small recording
    uv run python bench/e2e/bench_size_limits.py --scenario txt --size 200MB   # a small rehearsal

"The limit" is the datasets service's ``max_file_bytes`` (10 GiB, the spec's "10GB"); ``--size`` overrides it.
The services, tenant, credits and the follow-up to 4/5 are those of ``bench_big_training.py`` (imported, not
copied). Inputs are generated while they are streamed to ``POST /v1/models/{id}/datasets`` (never held in memory),
except where the format needs a seekable output (FLAC's STREAMINFO, MP4's index): those are written to the run's
directory first, streamed, and removed as soon as they are sent.

- **txt**: ``bench_big_training.text_chunks`` (Zipf-drawn words of the base dictionary, domain sentences).
- **vtt** / **srt**: the same text, two lines to a cue, one cue a second.
- **wav** (alias **audio**): ``--audio-rate`` Hz mono 16-bit WAV (RF64: a RIFF header cannot say more than
  4 GiB) of white noise at -40 dBFS with espeak-ng sentences placed at ``--segments`` offsets spread over the whole
  recording; ``segments.jsonl`` names each by ``offset``/``duration`` with its text, ``notes.txt`` carries the
  domain text.
- **mp3** / **m4a** / **flac**: the same content, 48 kHz stereo, as MP3 at 320 kb/s CBR (encoded blocks of
  28.8 s repeated frame by frame while sent), AAC-LC at 256 kb/s in an MP4 (ADTS blocks repeated into one
  ``ffmpeg -c copy`` remux) and 24-bit FLAC (encoded by one ffmpeg run, so that frame numbers run on); each as
  large as fits in the limit (MP3 to the frame, the others within 0.3 %). ``--mp3-bitrate 32k`` makes the MP3
  745 h long, over the 400 h a recording may last; ``--aac-bitrate 128k`` likewise an M4A of 31M packets.
- **test**: a small ``notes.txt`` to train on, then a ``.txt`` TEST dataset at the limit (the same generated text as
  **txt**), then Train.
- **manifest**: a 10 GiB ``segments.jsonl`` whose lines name the cues of a small espeak-ng recording
  (``--manifest-minutes``, MP3, uploaded with it) by offset/duration with their text, each line moved by a tenth
  of a millisecond (none repeats another), plus ``notes.txt``.

Besides the figures of ``run_scenario`` (upload, validation, training, stage seconds, the worker's peak RSS, the
model's size) it records the run metrics' notes and pairing, the disk: the trainer's work directory's peak size
and the peak fall of free space on the work directory's file system, and the ``uptime`` load. The run's bucket,
services and work directories are removed after it. Results: ``bench/results/size_limits.json`` (one entry per
scenario; other scenarios' last runs stay).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.datasets.bench_upload import endpoints, status_kb  # noqa: E402
from bench.e2e.bench_big_training import (  # noqa: E402
    ESPEAK_RATE,
    Scenario,
    System,
    _espeak,
    domain_sentences,
    file_chunks,
    recording,
    report,
    run_scenario,
    text_chunks,
    worker_budget_mb,
)
from voxtrain_shared.settings import DatasetsSettings  # noqa: E402

RESULTS = REPO / "bench" / "results" / "size_limits.json"
LIMIT = DatasetsSettings.model_fields["max_file_bytes"].default
LINES_PER_CUE = 2


def parse_size(text: str) -> int:
    units = {"GIB": 1024**3, "MIB": 1024**2, "GB": 1000**3, "MB": 1000**2, "KB": 1000, "B": 1}
    t = text.strip().upper()
    for unit, factor in units.items():
        if t.endswith(unit):
            return int(float(t[: -len(unit)]) * factor)
    return int(t)


# ------------------------------------------------------------------ generated inputs


def _vtt_stamp(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.000"


def _srt_stamp(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d},000"


def subtitle_chunks(size: int, seed: int, kind: str) -> Iterator[bytes]:
    """Exactly ``size`` bytes of a VTT or SRT file: ``text_chunks``' lines, two to a cue, one cue a second.

    The last cue is padded with words (or, when too little room is left for one, the file ends with blank
    lines) so that the length is exact."""
    head = b"WEBVTT\n\n" if kind == "vtt" else b""
    stamp = _vtt_stamp if kind == "vtt" else _srt_stamp
    sent, cue = len(head), 0
    yield head
    reserve = 200  # room kept for the closing cue
    pending: list[str] = []
    for block in text_chunks(size * 2, seed):  # more text than needed: stops at ``size``
        lines = block.decode().splitlines()
        out: list[bytes] = []
        for i in range(0, len(lines), LINES_PER_CUE):
            pending = lines[i : i + LINES_PER_CUE]
            cue += 1
            index = f"{cue}\n" if kind == "srt" else ""
            piece = (f"{index}{stamp(cue - 1)} --> {stamp(cue)}\n" + "\n".join(pending) + "\n\n").encode()
            if sent + len(piece) > size - reserve:
                cue -= 1  # not written: the closing cue takes its number (SRT numbers run on)
                break
            out.append(piece)
            sent += len(piece)
        else:
            yield b"".join(out)
            continue
        yield b"".join(out)
        break
    cue += 1
    index = f"{cue}\n" if kind == "srt" else ""
    closing = f"{index}{stamp(cue - 1)} --> {stamp(cue)}\n".encode()
    room = size - sent - len(closing) - 2
    filler = (b"end " * (room // 4 + 1))[: max(room, 0)].rstrip(b" ")
    tail = closing + filler + b"\n\n"
    tail += b"\n" * (size - sent - len(tail))
    assert sent + len(tail) == size, (sent, len(tail), size)
    yield tail


def _speech(rate: int, count: int) -> list[tuple[str, bytes]]:
    """``count`` espeak-ng domain sentences as 16-bit mono PCM at ``rate``."""
    return [(text, samples.astype("<i2").tobytes()) for text, samples in _speech_waves(rate, count)]


def _speech_waves(rate: int, count: int) -> list[tuple[str, np.ndarray]]:
    """``count`` espeak-ng domain sentences as int16-scaled float mono samples at ``rate``."""
    pool = domain_sentences()
    out = []
    for k in range(count):
        text = pool[k % len(pool)]
        pcm = np.frombuffer(_espeak((text, "en-us+m3", 160)), dtype="<i2")
        at = np.arange(0, len(pcm) * rate / ESPEAK_RATE) * ESPEAK_RATE / rate
        out.append((text, np.interp(at, np.arange(len(pcm)), pcm)))
    return out


def _rf64_header(data_bytes: int, rate: int) -> bytes:
    """An RF64 WAV header (EBU Tech 3306) of 16-bit mono PCM: a RIFF size field cannot say more than 4 GiB."""
    ds64 = b"ds64" + (28).to_bytes(4, "little") + (data_bytes + 72).to_bytes(8, "little")
    ds64 += data_bytes.to_bytes(8, "little") + (data_bytes // 2).to_bytes(8, "little") + (0).to_bytes(4, "little")
    fmt = b"fmt " + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    fmt += rate.to_bytes(4, "little") + (rate * 2).to_bytes(4, "little") + (2).to_bytes(2, "little")
    fmt += (16).to_bytes(2, "little")
    return b"RF64" + b"\xff\xff\xff\xff" + b"WAVE" + ds64 + fmt + b"data" + b"\xff\xff\xff\xff"


def wav_recording(size: int, rate: int, seed: int, speech: int) -> tuple[list[dict[str, Any]], Iterator[bytes]]:
    """Exactly ``size`` bytes of RF64 WAV (16-bit mono at ``rate``), made while it is sent: white noise at
    -40 dBFS with ``speech`` espeak-ng sentences spread evenly over the whole recording.

    Returns ``(segments, chunks)``, ``segments`` one ``{offset, duration, text}`` per sentence (known before the
    first byte, so that the manifest can go first)."""
    header = _rf64_header(size - 80, rate)
    assert len(header) == 80 and size % 2 == 0
    samples = (size - 80) // 2
    seconds = samples / rate
    spoken = _speech(rate, speech)
    offsets = [int(x) for x in np.linspace(5, seconds - 60, speech)]
    segments = [
        {"offset": o, "duration": round(len(pcm) / 2 / rate + 0.2, 3), "text": text}
        for o, (text, pcm) in zip(offsets, spoken, strict=True)
    ]
    noise = (np.random.default_rng(seed).standard_normal(rate * 30) * 327).astype("<i2").tobytes()

    def chunks() -> Iterator[bytes]:
        yield header
        written = 0  # bytes of audio data
        for offset, (_, pcm) in [*zip(offsets, spoken, strict=True), (None, ("", b""))]:
            end = size - 80 if offset is None else offset * rate * 2
            while written < end:
                piece = noise[: min(len(noise), end - written)]
                written += len(piece)
                yield piece
            yield pcm
            written += len(pcm)

    return segments, chunks()


# Compressed recordings (mp3, m4a, flac) are made of blocks of BLOCK_SAMPLES at 48 kHz stereo: 28.8 s, a whole
# number of MP3 (1152), AAC (1024) and FLAC (4608) frames. Each block is white noise at -40 dBFS; a few blocks
# carry a sentence starting SPEECH_AT s into the block. A block is encoded once and repeated.
RATE_48K = 48_000
BLOCK_SAMPLES = 1_382_400
SPEECH_AT = 5.0
MP3_FRAME_BYTES_PER_KBPS = 3  # an MPEG-1 Layer III frame at 48 kHz: 144 * bit rate / 48000 bytes (never padded)
# The formats: (ffmpeg encoder arguments of one block, elementary stream format, bytes per PCM sample).
ENCODINGS = {
    "mp3": (["-c:a", "libmp3lame", "-b:a", "320k", "-write_xing", "0", "-id3v2_version", "0"], "mp3", 2),
    "m4a": (["-c:a", "aac", "-b:a", "256k"], "adts", 2),
    "flac": (["-c:a", "flac"], "flac", 3),
}


@dataclass
class Blocks:
    """The PCM (and, but for FLAC, the encoded bytes) of the noise block and of each speech block."""

    kind: str
    noise_pcm: bytes
    speech_pcm: list[bytes]
    texts: list[str]
    sentence_seconds: list[float]
    noise: bytes = b""
    speech: list[bytes] = field(default_factory=list)

    def layout(self, blocks: int, block_seconds: float) -> tuple[list[int], list[dict[str, Any]]]:
        """Where the speech blocks go among ``blocks`` (spread evenly) and the manifest segments they make."""
        at = [int(x) for x in np.linspace(0, blocks - 1, len(self.speech_pcm))]
        segments = [
            {"offset": round(i * block_seconds + SPEECH_AT - 0.2, 3), "duration": round(s + 0.5, 3), "text": t}
            for i, s, t in zip(at, self.sentence_seconds, self.texts, strict=True)
        ]
        return at, segments


def _pcm_block(noise: np.ndarray, sentence: np.ndarray | None, width: int) -> bytes:
    """One block of interleaved stereo PCM of ``width`` bytes a sample: noise, plus a sentence on both channels."""
    block = noise.copy()
    if sentence is not None:
        start = int(SPEECH_AT * RATE_48K)
        block[start : start + len(sentence)] += sentence[:, None]
    if width == 2:
        return np.clip(block, -32768, 32767).astype("<i2").tobytes()
    full = np.clip(block * 256, -(2**23), 2**23 - 1).astype("<i4")
    return full.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # little-endian 24-bit


def _encode(pcm: bytes, kind: str, bitrate: str | None = None) -> bytes:
    args, fmt, width = ENCODINGS[kind]
    if bitrate is not None:  # another bitrate than the format's own
        at = args.index("-b:a") + 1
        args = [*args[:at], bitrate, *args[at + 1 :]]
    raw = ["-f", "s16le" if width == 2 else "s24le", "-ar", str(RATE_48K), "-ac", "2", "-i", "-"]
    out = subprocess.run(["ffmpeg", "-v", "error", *raw, *args, "-f", fmt, "-"], input=pcm, capture_output=True)
    if out.returncode:
        raise RuntimeError(f"ffmpeg {kind}: {out.stderr.decode()[-500:]}")
    return out.stdout


def make_blocks(kind: str, seed: int, speech: int, bitrate: str | None = None) -> Blocks:
    width = ENCODINGS[kind][2]
    noise = np.random.default_rng(seed).standard_normal((BLOCK_SAMPLES, 2)) * 327.67  # -40 dBFS
    waves = _speech_waves(RATE_48K, speech)
    blocks = Blocks(
        kind,
        _pcm_block(noise, None, width),
        [_pcm_block(noise, w, width) for _, w in waves],
        [t for t, _ in waves],
        [len(w) / RATE_48K for _, w in waves],
    )
    if kind != "flac":  # FLAC frames carry their own sample numbers: the whole file is encoded in one go
        blocks.noise = _encode(blocks.noise_pcm, kind, bitrate)
        blocks.speech = [_encode(p, kind, bitrate) for p in blocks.speech_pcm]
    return blocks


def adts_frames(data: bytes) -> list[int]:
    """The lengths of the ADTS frames in ``data`` (each self-contained: a stream of them may be concatenated)."""
    lengths, at = [], 0
    while at < len(data):
        assert data[at] == 0xFF and data[at + 1] & 0xF0 == 0xF0, f"no ADTS sync at {at}"
        lengths.append(((data[at + 3] & 3) << 11) | (data[at + 4] << 3) | (data[at + 5] >> 5))
        at += lengths[-1]
    return lengths


def mp3_recording(size: int, blocks: Blocks, kbps: int) -> tuple[int, list[dict[str, Any]], Iterator[bytes]]:
    """MPEG-1 Layer III at ``kbps``, 48 kHz stereo (CBR, no Xing/ID3 header) of at most ``size`` bytes, made by
    repeating the encoded blocks' frames while sent (each block starts with a frame whose bit reservoir is empty,
    and the MP3 demuxer times frames by their count, so the concatenation is one continuous stream).

    ``(bytes, segments, chunks)``."""
    frame = MP3_FRAME_BYTES_PER_KBPS * kbps
    per_block = len(blocks.noise)
    assert per_block % frame == 0 and all(len(s) == per_block for s in blocks.speech)
    block_seconds = per_block // frame * 1152 / RATE_48K
    whole, rest = divmod(size, per_block)
    at, segments = blocks.layout(whole, block_seconds)
    tail = blocks.noise[: rest // frame * frame]
    speech = dict(zip(at, blocks.speech, strict=True))

    def chunks() -> Iterator[bytes]:
        for i in range(whole):
            yield speech.get(i, blocks.noise)
        yield tail

    return whole * per_block + len(tail), segments, chunks()


def _spool(path: Path) -> Iterator[bytes]:
    """The file's bytes, then the file is removed (a generated recording lives on disk only while uploaded)."""
    try:
        yield from file_chunks(path)
    finally:
        path.unlink(missing_ok=True)


def _ffmpeg_from(chunks: Iterator[bytes], args: list[str], out: Path) -> None:
    """Run ffmpeg reading ``chunks`` on its standard input and writing ``out`` (a seekable file)."""
    proc = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-y", *args, str(out)], stdin=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.wait():
        raise RuntimeError(f"ffmpeg: {err[-1000:]}")


def m4a_recording(size: int, blocks: Blocks, directory: Path) -> tuple[int, list[dict[str, Any]], Iterator[bytes]]:
    """AAC-LC at 256 kb/s, 48 kHz stereo in an MP4 (.m4a) of at most ``size`` bytes: the blocks' ADTS frames
    repeated into ffmpeg, which remuxes them (``-c copy``) into an MP4 on disk (its index, the moov box, is
    written at the end, so the output must be seekable); the file is streamed and removed as it is sent."""
    frames = adts_frames(blocks.noise)
    assert all(len(adts_frames(s)) == len(frames) for s in blocks.speech)
    block_seconds = len(frames) * 1024 / RATE_48K
    # In the MP4 a frame costs its payload (the 7-byte ADTS header dropped) and 4 bytes of the sample-size table;
    # chunk offsets and the rest of the index stay well under the 1 MB kept free (checked after writing).
    per_block = len(blocks.noise) - 7 * len(frames) + 4 * len(frames)
    whole = (size - 1_000_000) // per_block
    at, segments = blocks.layout(whole, block_seconds)
    speech = dict(zip(at, blocks.speech, strict=True))
    out = directory / "long.m4a"
    adts = (speech.get(i, blocks.noise) for i in range(whole))
    _ffmpeg_from(adts, ["-f", "aac", "-i", "-", "-c", "copy", "-f", "ipod"], out)
    written = out.stat().st_size
    if written > size:
        out.unlink()
        raise RuntimeError(f"the M4A came out at {written:,} B, over {size:,}: keep more room for the index")
    return written, segments, _spool(out)


def flac_recording(size: int, blocks: Blocks, directory: Path) -> tuple[int, list[dict[str, Any]], Iterator[bytes]]:
    """FLAC, 48 kHz stereo 24-bit, of at most ``size`` bytes: the blocks' PCM encoded by one ffmpeg run (so that
    frame numbers run on and the STREAMINFO header states the total sample count) into a file on disk, streamed
    and removed as it is sent. The number of blocks comes from the size of one encoded block (0.1 % kept free for
    frame headers growing with their numbers)."""
    per_block = len(_encode(blocks.noise_pcm, "flac"))
    whole = int(size * 0.999) // per_block
    at, segments = blocks.layout(whole, BLOCK_SAMPLES / RATE_48K)
    speech = dict(zip(at, blocks.speech_pcm, strict=True))
    out = directory / "long.flac"
    pcm = (speech.get(i, blocks.noise_pcm) for i in range(whole))
    _ffmpeg_from(pcm, ["-f", "s24le", "-ar", str(RATE_48K), "-ac", "2", "-i", "-", "-c:a", "flac"], out)
    written = out.stat().st_size
    if written > size:
        out.unlink()
        raise RuntimeError(f"the FLAC came out at {written:,} B, over {size:,}")
    return written, segments, _spool(out)


def manifest_lines(size: int, cues: list[tuple[float, float, str]], audio: str) -> Iterator[bytes]:
    """Exactly ``size`` bytes of JSON lines, each naming a segment of ``audio`` by offset/duration with its text:
    the cues in turn, each round with an offset and a duration moved by a tenth of a millisecond more (no line
    repeats another). The last line is padded with spaces inside its object."""
    parts = [
        (f'{{"audio": "{audio}", "offset": ', s - 0.2, ', "duration": ', e - s + 0.2, f', "text": {json.dumps(t)}}}\n')
        for s, e, t in cues
    ]
    sent, j = 0, 0
    room = size - 400  # kept for the closing line
    while True:
        shift, stretch = j % 2000 * 0.0001, j // 2000 % 2000 * 0.0001
        lines = [f"{a}{max(o + shift, 0.0):.4f}{b}{d + stretch:.4f}{c}" for a, o, b, d, c in parts]
        block = "".join(lines)
        if sent + len(block) > room:  # the last round: as many of its lines as fit
            fit = []
            for line in lines:
                if sent + len(line) > room:
                    break
                fit.append(line)
                sent += len(line)
            block = "".join(fit)
            break
        sent += len(block)
        j += 1
        yield block.encode()  # ASCII only: json.dumps escapes the rest
    start, end, text = cues[0]
    last = f'"audio": "{audio}", "offset": {start:.4f}, "duration": {end - start:.4f}, "text": {json.dumps(text)}}}\n'
    closing = "{" + " " * (size - sent - len(last) - 1) + last
    assert sent + len(closing) == size, (sent, len(closing), size)
    yield (block + closing).encode()


def vtt_cues(path: Path) -> list[tuple[float, float, str]]:
    """``(start, end, text)`` of the cues of a VTT file written by ``bench_big_training.recording``."""

    def seconds(stamp: str) -> float:
        h, m, s = stamp.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    cues = []
    for block in path.read_text(encoding="utf-8").split("\n\n")[1:]:
        lines = block.strip().splitlines()
        if len(lines) >= 2 and " --> " in lines[0]:
            a, b = lines[0].split(" --> ")
            cues.append((seconds(a), seconds(b), " ".join(lines[1:])))
    return cues


# ------------------------------------------------------------------ measuring the disk


class DiskSampler(threading.Thread):
    """Peak size of a directory tree and the peak fall of free space on its file system, every ``every`` s."""

    def __init__(self, directory: Path, every: float = 5.0, min_free: int = 0, on_low: Any = None) -> None:
        super().__init__(daemon=True)
        self.directory, self.every = directory, every
        self.guard, self.on_low, self.tripped = min_free, on_low, False
        self.free_start = shutil.disk_usage(directory).free
        self.min_free = self.free_start
        self.peak_tree = 0
        self._halt = threading.Event()

    def _tree(self) -> int:
        total = 0
        for root, _, files in os.walk(self.directory):
            for f in files:
                with contextlib.suppress(OSError):  # removed while walking
                    total += os.lstat(os.path.join(root, f)).st_size
        return total

    def run(self) -> None:
        while not self._halt.wait(self.every):
            free = shutil.disk_usage(self.directory).free
            self.min_free = min(self.min_free, free)
            if free < self.guard and not self.tripped and self.on_low is not None:
                self.tripped = True  # the shared machine's disk comes first: the run is stopped, and says so
                print(
                    f"  free disk {free / 1e9:.1f} GB under the guard {self.guard / 1e9:.1f} GB: stopping", flush=True
                )
                self.on_low()
            self.peak_tree = max(self.peak_tree, self._tree())

    def stop(self) -> dict[str, float]:
        self._halt.set()
        self.join(30)
        return {
            "trainer_work_dir_peak_gb": round(self.peak_tree / 1e9, 2),
            "free_space_fall_peak_gb": round((self.free_start - self.min_free) / 1e9, 2),
            "free_space_at_start_gb": round(self.free_start / 1e9, 2),
            "stopped_by_disk_guard": self.tripped,
        }


# ------------------------------------------------------------------ scenarios


AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "m4a": "audio/mp4", "flac": "audio/flac"}


def scenario(args: argparse.Namespace, work: Path) -> Scenario:
    size = args.size
    if args.scenario == "txt":
        return Scenario(
            f"size limit txt {size:,} B",
            [("corpus.txt", "text/plain", size, text_chunks(size, args.seed))],
            {"kind": "txt", "file_bytes": size},
        )
    if args.scenario in ("vtt", "srt"):
        ctype = "text/vtt" if args.scenario == "vtt" else "application/x-subrip"
        return Scenario(
            f"size limit {args.scenario} {size:,} B",
            [(f"captions.{args.scenario}", ctype, size, subtitle_chunks(size, args.seed, args.scenario))],
            {"kind": args.scenario, "file_bytes": size},
        )
    notes = "\n".join(domain_sentences()).encode() + b"\n"
    text = ("notes.txt", "text/plain", len(notes), iter([notes]))
    if args.scenario == "test":  # a small transcript to train on, and a TEST text at the limit to evaluate on
        return Scenario(
            f"size limit test txt {size:,} B",
            [text],
            {"kind": "test", "file_bytes": size},
            [("heldout.txt", "text/plain", size, text_chunks(size, args.seed + 1))],
        )
    if args.scenario == "manifest":
        started = time.perf_counter()
        mp3, vtt, _ = recording(args.manifest_minutes, work / "recording", args.seed)
        cues = vtt_cues(vtt)[:-1]  # the last cue ends at the recording's end: no room to move it
        small = mp3.read_bytes()
        described = {
            "kind": "manifest",
            "file_bytes": size,
            "recording": {"file": "talk.mp3", "bytes": len(small), "minutes": args.manifest_minutes, "cues": len(cues)},
            "generation_seconds": round(time.perf_counter() - started, 1),
        }
        return Scenario(
            f"size limit manifest {size:,} B",
            [
                text,
                ("talk.mp3", "audio/mpeg", len(small), iter([small])),
                ("segments.jsonl", "application/jsonl", size, manifest_lines(size, cues, "talk.mp3")),
            ],
            described,
        )
    kind = "wav" if args.scenario in ("wav", "audio") else args.scenario
    started = time.perf_counter()
    if kind == "wav":
        segments, audio = wav_recording(size, args.audio_rate, args.seed, args.segments)
        written = size
        form = {"audio_rate": args.audio_rate, "audio_hours": round((size - 80) / 2 / args.audio_rate / 3600, 2)}
    else:
        bitrate = {"m4a": args.aac_bitrate, "mp3": args.mp3_bitrate}.get(kind)
        blocks = make_blocks(kind, args.seed, args.segments, bitrate)
        if kind == "mp3":
            written, segments, audio = mp3_recording(size, blocks, int(args.mp3_bitrate.rstrip("k")))
        elif kind == "m4a":
            written, segments, audio = m4a_recording(size, blocks, work)
        else:
            written, segments, audio = flac_recording(size, blocks, work)
        encodings = {"mp3": f"MP3 {bitrate}b/s CBR", "m4a": f"AAC-LC {bitrate} in MP4", "flac": "FLAC 24-bit"}
        form = {
            "encoding": encodings[kind] + ", 48 kHz stereo",
            "last_segment_end_hours": round((segments[-1]["offset"] + segments[-1]["duration"]) / 3600, 2),
        }
    manifest = "".join(json.dumps({"audio": f"long.{kind}", **s}) + "\n" for s in segments).encode()
    name = kind  # another bitrate than the default is recorded apart
    if kind == "m4a" and args.aac_bitrate != "256k":
        name = f"m4a-{args.aac_bitrate}"
    elif kind == "mp3" and args.mp3_bitrate != "320k":
        name = f"mp3-{args.mp3_bitrate}"
    return Scenario(
        f"size limit {name} {written:,} B",
        [
            text,
            ("segments.jsonl", "application/jsonl", len(manifest), iter([manifest])),
            (f"long.{kind}", AUDIO_TYPES[kind], written, audio),
        ],
        {
            "kind": name,
            "file_bytes": written,
            "limit_bytes": size,
            "generation_seconds": round(time.perf_counter() - started, 1),
            "manifest_segments": len(segments),
            **form,
        },
    )


def service_peaks(system: System) -> dict[str, float | None]:
    """Peak RSS (``VmHWM``) of each service process of this run: the validator decodes in its own process."""
    peaks: dict[str, float | None] = {}
    for name, proc in system.procs.items():
        try:
            peaks[name] = round(status_kb(proc.pid, "VmHWM") / 1024, 1)
        except (OSError, KeyError):  # the process is gone (the disk guard killed the trainer)
            peaks[name] = None
    return peaks


def metrics_detail(system: System, model_id: str) -> dict[str, Any]:
    """What the run metrics say was read, capped, paired and skipped (the notes the model card repeats)."""
    headers = system.token("bigbench")
    view = httpx.get(f"{system.url('models')}/v1/models/{model_id}", headers=headers, timeout=60).json()
    listing = httpx.get(f"{system.url('datasets')}/v1/models/{model_id}/datasets", headers=headers, timeout=60)
    metrics = (view.get("run") or {}).get("metrics") or {}
    data = metrics.get("data") or {}
    return {
        "datasets": [
            {k: d.get(k) for k in ("file_name", "type", "status", "size_bytes", "errors", "validation")}
            for d in listing.json().get("datasets", [])
        ],
        "notes": data.get("notes"),
        "audio_skipped": (data.get("audio_skipped") or [])[:20],
        "pairing": data.get("pairing"),
        "lm_pruning": (metrics.get("lm") or {}).get("pruning"),
        "status": view.get("status"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scenario",
        choices=("txt", "vtt", "srt", "wav", "mp3", "flac", "m4a", "manifest", "audio", "test"),
        required=True,
    )
    parser.add_argument("--size", type=parse_size, default=LIMIT, help=f"file size (default the limit, {LIMIT:,} B)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--audio-rate", type=int, default=16000)
    parser.add_argument("--segments", type=int, default=12, help="spoken sentences in the long recording")
    parser.add_argument("--aac-bitrate", default="256k", help="the m4a scenario's AAC bitrate (another is kept apart)")
    parser.add_argument("--mp3-bitrate", default="320k", help="the mp3 scenario's bitrate (another is kept apart)")
    parser.add_argument("--manifest-minutes", type=float, default=5.0, help="the manifest scenario's recording")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds from upload to 4 or 5")
    parser.add_argument("--max-worker-rss-mb", type=float, default=7_000, help="cancel a run past this (guard)")
    parser.add_argument("--min-free-gb", type=float, default=4.0, help="kill the trainer when free disk falls under")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    budget_mb = worker_budget_mb()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    load_before = os.getloadavg()
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="sizelimit-"))
    (work / "trainer-work").mkdir()
    extra = {
        "models": {"VOXTRAIN_CREDITS__FREE_ALLOWANCE": str(10**12)},
        "trainer": {"VOXTRAIN_WORK_DIR": str(work / "trainer-work")},
    }
    system = System(endpoints(), work, extra)
    disk = DiskSampler(
        work / "trainer-work", min_free=int(args.min_free_gb * 1e9), on_low=lambda: system.procs["trainer"].kill()
    )
    try:
        sc = scenario(args, work)
        system.start()
        print(f"services up (run {system.run_id}, logs in {work}); {uptime_before}", flush=True)
        disk.start()
        result = run_scenario(system, sc, args.timeout, args.max_worker_rss_mb, budget_mb)
        result["disk"] = disk.stop()
        result["service_peak_rss_mb"] = service_peaks(system)
        if result.get("outcome") != "upload_refused":
            try:
                result["detail"] = metrics_detail(system, result["model_id"])
            except (httpx.HTTPError, ValueError) as exc:  # the figures above are kept whatever this does
                result["detail"] = {"error": repr(exc)}
        record(args, result, uptime_before, load_before)
    finally:
        if disk.is_alive():
            disk.stop()
        system.stop()
        shutil.rmtree(work / "trainer-work", ignore_errors=True)
        shutil.rmtree(work / "recording", ignore_errors=True)
        for generated in work.glob("long.*"):  # left over when a run stopped before its upload
            generated.unlink(missing_ok=True)


def record(args: argparse.Namespace, result: dict[str, Any], uptime_before: str, load: tuple[float, ...]) -> None:
    report(result)
    print(f"  disk                   {result.get('disk')}")
    print(f"  detail                 {json.dumps(result.get('detail'))[:3000]}")
    result |= {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "uptime_before": uptime_before,
        "load_average_before": [round(x, 2) for x in load],
        "uptime_after": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }
    runs = json.loads(args.out.read_text(encoding="utf-8")).get("runs", {}) if args.out.exists() else {}
    runs[result["kind"] if args.size == LIMIT else f"{result['kind']}@{args.size}"] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs}, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out}; {result['uptime_after']}", flush=True)


if __name__ == "__main__":
    main()
