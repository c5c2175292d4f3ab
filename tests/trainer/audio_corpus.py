"""A wide corpus of real audio encodings, made at test time with espeak-ng, ffmpeg and sox.

Every case is the same ~2.5 s of synthesised speech, encoded one way: sample formats, codecs,
channel counts, sample rates, container variants (streamed, fragmented, RF64, tags, extra chunks,
cover art, several tracks). Some files are written byte by byte here where no encoder makes them
(odd-sized WAV chunks, an APEv2 tag). :func:`make` builds one case's file once per directory; a
case whose encoder this FFmpeg build lacks is reported by :class:`MissingEncoder` so a test can skip
exactly that case.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SPEECH = "Upload audio and transcripts, then train the model."


class MissingEncoder(Exception):
    """The machine's FFmpeg or sox cannot make this case."""


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is required to make the audio corpus (apt-get install {name})")
    return path


@cache
def _encoders() -> frozenset[str]:
    listing = subprocess.run([tool("ffmpeg"), "-hide_banner", "-encoders"], capture_output=True, text=True, check=True)
    return frozenset(line.split()[1] for line in listing.stdout.splitlines()[10:] if len(line.split()) > 1)


def _run(*args: str | Path, stdout: Path | None = None) -> None:
    if stdout is None:
        subprocess.run([str(a) for a in args], check=True, capture_output=True, timeout=60)
        return
    with stdout.open("wb") as out:  # a pipe: FFmpeg cannot seek back to fill in sizes
        subprocess.run([str(a) for a in args], check=True, stdout=out, stderr=subprocess.PIPE, timeout=60)


def _ffmpeg(source: Path, out: Path, *options: str, inputs: tuple[str, ...] = ()) -> None:
    _run(tool("ffmpeg"), "-nostdin", "-v", "error", "-y", "-i", source, *inputs, *options, out)


@dataclass(frozen=True)
class Case:
    name: str  # file name, extension included
    make: Callable[[Path, Path], None]  # (speech wav, output path)
    encoders: tuple[str, ...] = ()  # FFmpeg encoders it needs
    tools: tuple[str, ...] = ()  # other programs it needs

    @property
    def ext(self) -> str:
        return Path(self.name).suffix


def ff(name: str, *options: str, encoders: tuple[str, ...] = ()) -> Case:
    return Case(name, lambda src, out: _ffmpeg(src, out, *options), encoders)


def piped(name: str, fmt: str, *options: str, encoders: tuple[str, ...] = ()) -> Case:
    """Written by FFmpeg to a pipe: the header cannot state the length."""

    def make(src: Path, out: Path) -> None:
        _run(tool("ffmpeg"), "-nostdin", "-v", "error", "-i", src, *options, "-f", fmt, "pipe:1", stdout=out)

    return Case(name, make, encoders)


def with_picture(name: str, *options: str, encoders: tuple[str, ...] = ()) -> Case:
    """The audio plus a 1.8 MB PNG of noise (it does not compress) as cover art: an attached picture stream."""

    def make(src: Path, out: Path) -> None:
        cover = out.with_name(out.stem + "-cover.png")
        noise = "nullsrc=s=1400x1400,geq=lum='random(1)*255':cb=128:cr=128"
        _run(
            tool("ffmpeg"), "-v", "error", "-y", "-f", "lavfi", "-i", noise, "-frames:v", "1", "-pix_fmt", "gray", cover
        )
        _ffmpeg(src, out, "-map", "0:a", "-map", "1:v", *options, inputs=("-i", str(cover)))
        if out.stat().st_size < cover.stat().st_size:
            raise RuntimeError(f"{out.name}: the muxer left the cover art out")

    return Case(name, make, encoders)


def with_video(name: str, *options: str, encoders: tuple[str, ...] = ()) -> Case:
    def make(src: Path, out: Path) -> None:
        video = ("-f", "lavfi", "-i", "testsrc=s=160x120:r=10:d=3")
        _ffmpeg(src, out, "-map", "1:v", "-map", "0:a", "-shortest", *options, inputs=video)

    return Case(name, make, encoders)


def _riff_chunk(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def _wav_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    chunks, at = [], 12
    while at + 8 <= len(data):
        tag, size = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        chunks.append((tag, data[at + 8 : at + 8 + size]))
        at += 8 + size + size % 2
    return chunks


def _rewrite_wav(out: Path, edit: Callable[[list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]]) -> None:
    body = b"WAVE" + b"".join(_riff_chunk(t, b) for t, b in edit(_wav_chunks(out.read_bytes())))
    out.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def wav_extra_chunks(name: str) -> Case:
    """LIST/INFO, a 'bext' and an odd-sized custom chunk (pad byte) before ``data``; a chunk after it."""

    def make(src: Path, out: Path) -> None:
        _ffmpeg(src, out, "-c:a", "pcm_s16le", "-metadata", "title=Ward round", "-metadata", "artist=Dr. X")

        def edit(chunks: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
            fmt = [c for c in chunks if c[0] == b"fmt "]
            data = [c for c in chunks if c[0] == b"data"]
            rest = [c for c in chunks if c[0] not in (b"fmt ", b"data")]
            odd = (b"xtra", b"odd-sized chunk!!")  # 17 bytes: a pad byte follows
            after = (b"id3 ", b"ID3\x03\x00\x00\x00\x00\x00\x00")
            return [*fmt, *rest, (b"bext", bytes(602)), odd, *data, after]

        _rewrite_wav(out, edit)

    return Case(name, make)


def wav_odd_data(name: str) -> Case:
    """8-bit mono with an odd number of samples: the ``data`` chunk is followed by a pad byte, then a chunk."""

    def make(src: Path, out: Path) -> None:
        _ffmpeg(src, out, "-c:a", "pcm_u8", "-ar", "11025")

        def edit(chunks: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
            odd = [(tag, body[: len(body) - 1 + len(body) % 2] if tag == b"data" else body) for tag, body in chunks]
            return [*odd, (b"LIST", b"INFOICMT" + struct.pack("<I", 5) + b"note\0\0")]

        _rewrite_wav(out, edit)

    return Case(name, make)


def _apev2(items: dict[str, str]) -> bytes:
    body = b"".join(struct.pack("<II", len(v.encode()), 0) + k.encode() + b"\0" + v.encode() for k, v in items.items())

    def frame(flags: int) -> bytes:
        return b"APETAGEX" + struct.pack("<IIII", 2000, len(body) + 32, len(items), flags) + bytes(8)

    return frame(0xA0000000) + body + frame(0x80000000)


def mp3_apev2(name: str) -> Case:
    """CBR MP3, then an APEv2 tag (header, items, footer), then an ID3v1 tag: what foobar2000/mp3gain write."""

    def make(src: Path, out: Path) -> None:
        _ffmpeg(src, out, "-c:a", "libmp3lame", "-b:a", "64k", "-id3v2_version", "0")
        id3v1 = b"TAG" + b"Ward round".ljust(30, b"\0") + bytes(30 + 30 + 4 + 30) + b"\xff"
        out.write_bytes(out.read_bytes() + _apev2({"Title": "Ward round", "REPLAYGAIN_TRACK_GAIN": "-3.2 dB"}) + id3v1)

    return Case(name, make, ("libmp3lame",))


def sox_flac_8bit(name: str) -> Case:
    def make(src: Path, out: Path) -> None:
        _run(tool("sox"), src, "-b", "8", out)

    return Case(name, make)


def sox_wav(name: str, *options: str) -> Case:
    def make(src: Path, out: Path) -> None:
        _run(tool("sox"), src, *options, out)

    return Case(name, make)


def sox_merged(name: str, channels: int) -> Case:
    """``channels`` copies of the speech as one WAV, as sox writes it: no channel mask (an unknown layout)."""

    def make(src: Path, out: Path) -> None:
        _run(tool("sox"), "-M", *[src] * channels, out)

    return Case(name, make)


def lame_free_format(name: str, kbps: int) -> Case:
    """A free-format MP3 (bit-rate index 0, any rate): only the lame program writes them."""

    def make(src: Path, out: Path) -> None:
        wav = out.with_suffix(".44k.wav")
        _run(tool("sox"), src, "-r", "44100", "-c", "2", wav)
        _run(tool("lame"), "--quiet", "--freeformat", "-b", str(kbps), wav, out)

    return Case(name, make, tools=("lame",))


LAME = ("libmp3lame",)
_BIG_TAG = "x" * 60_000

CASES: list[Case] = [
    # WAV: sample formats and codecs
    ff("pcm_u8.wav", "-c:a", "pcm_u8"),
    ff("pcm_s16.wav", "-c:a", "pcm_s16le"),
    ff("pcm_s24.wav", "-c:a", "pcm_s24le"),
    ff("pcm_s32.wav", "-c:a", "pcm_s32le"),
    ff("pcm_f32.wav", "-c:a", "pcm_f32le"),
    ff("pcm_f64.wav", "-c:a", "pcm_f64le"),
    ff("mulaw_8k.wav", "-c:a", "pcm_mulaw", "-ar", "8000"),
    ff("alaw_8k.wav", "-c:a", "pcm_alaw", "-ar", "8000"),
    ff("ima_adpcm.wav", "-c:a", "adpcm_ima_wav"),
    ff("ima_adpcm_stereo.wav", "-c:a", "adpcm_ima_wav", "-ac", "2"),
    ff("ms_adpcm.wav", "-c:a", "adpcm_ms"),
    ff("gsm_ms_8k.wav", "-c:a", "libgsm_ms", "-ar", "8000", encoders=("libgsm_ms",)),
    ff("mp3_in_wav.wav", "-c:a", "libmp3lame", "-f", "wav", encoders=LAME),
    ff("g722_in_wav.wav", "-c:a", "g722", "-ar", "16000", encoders=("g722",)),
    ff("g726_8k.wav", "-c:a", "g726", "-ar", "8000", "-b:a", "32k", encoders=("g726",)),
    # WAV: layouts and rates (24-bit, float and 6 channels are WAVE_FORMAT_EXTENSIBLE)
    ff("stereo_44k.wav", "-c:a", "pcm_s16le", "-ac", "2", "-ar", "44100"),
    ff("6ch_48k.wav", "-c:a", "pcm_s16le", "-ac", "6", "-ar", "48000"),
    ff("6ch_s24_96k.wav", "-c:a", "pcm_s24le", "-ac", "6", "-ar", "96000"),
    ff("s16_8k.wav", "-c:a", "pcm_s16le", "-ar", "8000"),
    ff("s16_11k.wav", "-c:a", "pcm_s16le", "-ar", "11025"),
    ff("s16_96k.wav", "-c:a", "pcm_s16le", "-ar", "96000"),
    sox_wav("sox_extensible_s24_stereo.wav", "-b", "24", "-c", "2"),
    sox_wav("sox_f32.wav", "-e", "floating-point", "-b", "32"),
    sox_merged("sox_3ch_no_mask.wav", 3),
    sox_merged("sox_16ch_no_mask.wav", 16),
    # WAV: container variants
    piped("streamed.wav", "wav", "-c:a", "pcm_s16le"),
    ff("rf64.wav", "-c:a", "pcm_s16le", "-rf64", "always"),
    ff("bwf_bext.wav", "-c:a", "pcm_s24le", "-write_bext", "1", "-metadata", "description=ward"),
    wav_extra_chunks("extra_chunks.wav"),
    wav_odd_data("odd_data_chunk.wav"),
    ff("w64_named.wav", "-c:a", "pcm_s16le", "-f", "w64"),
    ff("aiff_named.wav", "-c:a", "pcm_s16be", "-f", "aiff"),
    # MP3
    ff("cbr_128k_stereo.mp3", "-c:a", "libmp3lame", "-b:a", "128k", "-ac", "2", "-ar", "44100", encoders=LAME),
    ff("vbr_xing.mp3", "-c:a", "libmp3lame", "-q:a", "4", encoders=LAME),
    ff("vbr_no_xing.mp3", "-c:a", "libmp3lame", "-q:a", "4", "-write_xing", "0", encoders=LAME),
    ff("cbr_no_xing.mp3", "-c:a", "libmp3lame", "-b:a", "64k", "-write_xing", "0", encoders=LAME),
    ff("joint_stereo.mp3", "-c:a", "libmp3lame", "-ac", "2", "-joint_stereo", "1", encoders=LAME),
    ff("plain_stereo.mp3", "-c:a", "libmp3lame", "-ac", "2", "-joint_stereo", "0", encoders=LAME),
    ff("mono_48k.mp3", "-c:a", "libmp3lame", "-ar", "48000", encoders=LAME),
    ff("mpeg2_22k.mp3", "-c:a", "libmp3lame", "-ar", "22050", encoders=LAME),
    ff("mpeg2_16k.mp3", "-c:a", "libmp3lame", "-ar", "16000", encoders=LAME),
    ff("mpeg25_8k.mp3", "-c:a", "libmp3lame", "-ar", "8000", encoders=LAME),
    ff(
        "mpeg25_11k_vbr_no_xing.mp3",
        "-c:a",
        "libmp3lame",
        "-ar",
        "11025",
        "-q:a",
        "6",
        "-write_xing",
        "0",
        encoders=LAME,
    ),
    ff(
        "id3v2_3_and_v1.mp3",
        "-c:a",
        "libmp3lame",
        "-id3v2_version",
        "3",
        "-write_id3v1",
        "1",
        "-metadata",
        "title=Ward round",
        encoders=LAME,
    ),
    ff(
        "id3v2_4_big.mp3", "-c:a", "libmp3lame", "-id3v2_version", "4", "-metadata", f"lyrics={_BIG_TAG}", encoders=LAME
    ),
    with_picture("id3v2_cover.mp3", "-c:a", "libmp3lame", "-c:v", "copy", "-id3v2_version", "3", encoders=LAME),
    mp3_apev2("apev2_and_id3v1.mp3"),
    lame_free_format("free_format_80k.mp3", 80),
    ff("shine_cbr.mp3", "-c:a", "libshine", "-ac", "2", "-ar", "44100", encoders=("libshine",)),
    ff("mp2_named.mp3", "-c:a", "mp2", "-f", "mp2", encoders=("mp2",)),
    ff("mp2_48k_stereo_named.mp3", "-c:a", "mp2", "-ar", "48000", "-ac", "2", "-f", "mp2", encoders=("mp2",)),
    # M4A
    ff("aac_lc.m4a", "-c:a", "aac"),
    ff("aac_faststart.m4a", "-c:a", "aac", "-movflags", "+faststart"),
    ff("aac_fragmented.m4a", "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov"),
    ff("aac_fragmented_default_base.m4a", "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov+default_base_moof"),
    ff("aac_fragments_of_1s.m4a", "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov", "-frag_duration", "1000000"),
    piped("aac_fragmented_piped.m4a", "mp4", "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov"),
    ff("aac_8k_mono.m4a", "-c:a", "aac", "-ar", "8000"),
    ff("aac_96k_stereo.m4a", "-c:a", "aac", "-ar", "96000", "-ac", "2"),
    ff("aac_6ch.m4a", "-c:a", "aac", "-ac", "6", "-ar", "48000"),
    ff("he_aac.m4a", "-c:a", "libfdk_aac", "-profile:a", "aac_he", encoders=("libfdk_aac",)),
    ff("alac_16.m4a", "-c:a", "alac"),
    ff("alac_24_stereo.m4a", "-c:a", "alac", "-sample_fmt", "s32p", "-ac", "2", "-ar", "48000"),
    ff("opus_in_mp4.m4a", "-c:a", "libopus", "-b:a", "32k", "-f", "mp4", encoders=("libopus",)),
    ff("mp3_in_mp4.m4a", "-c:a", "libmp3lame", "-f", "mp4", encoders=LAME),
    ff("flac_in_mp4.m4a", "-c:a", "flac", "-f", "mp4", "-strict", "-2"),
    ff("ac3_in_mp4.m4a", "-c:a", "ac3", "-f", "mp4", encoders=("ac3",)),
    with_picture("aac_cover.m4a", "-c:a", "aac", "-c:v", "copy", "-disposition:v", "attached_pic"),
    with_video("aac_with_video.m4a", "-c:a", "aac", "-c:v", "mpeg4", "-f", "mp4", encoders=("mpeg4",)),
    ff("two_audio_tracks.m4a", "-map", "0:a", "-map", "0:a", "-c:a", "aac"),
    ff("adts_named.m4a", "-c:a", "aac", "-f", "adts"),
    # FLAC
    sox_flac_8bit("flac_8bit.flac"),
    ff("flac_16.flac", "-c:a", "flac"),
    ff("flac_24_stereo.flac", "-c:a", "flac", "-sample_fmt", "s32", "-bits_per_raw_sample", "24", "-ac", "2"),
    ff("flac_6ch.flac", "-c:a", "flac", "-ac", "6", "-ar", "48000"),
    ff("flac_192k.flac", "-c:a", "flac", "-ar", "192000", "-sample_fmt", "s32", "-bits_per_raw_sample", "24"),
    piped("flac_streamed.flac", "flac", "-c:a", "flac"),
    with_picture(
        "flac_cover_big_tags.flac",
        "-c:a",
        "flac",
        "-c:v",
        "copy",
        "-disposition:v",
        "attached_pic",
        "-metadata",
        f"comment={_BIG_TAG}",
    ),
    ff("ogg_flac_named.flac", "-c:a", "flac", "-f", "ogg"),
]


def make(case: Case, speech: Path, directory: Path) -> Path:
    """The file of ``case`` in ``directory``, made once; MissingEncoder if an encoder or program it needs is missing."""
    missing = [e for e in case.encoders if e not in _encoders()]
    if missing:
        raise MissingEncoder(f"this FFmpeg has no {', '.join(missing)} encoder")
    absent = [t for t in case.tools if shutil.which(t) is None]
    if absent:
        raise MissingEncoder(f"{', '.join(absent)} is not installed")
    out = directory / case.name
    if not out.exists():
        case.make(speech, out)
    return out


def speech_wav(directory: Path) -> Path:
    """~2.5 s of synthesised speech, 22.05 kHz mono 16-bit."""
    out = directory / "speech-source.wav"
    if not out.exists():
        _run(tool("espeak-ng"), "-w", out, SPEECH)
    return out
