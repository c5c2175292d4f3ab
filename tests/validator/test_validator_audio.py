"""validate_audio on real speech in every accepted format, and on files damaged in known ways."""

from __future__ import annotations

import io
import random
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from voxtrain_validator.rules import Outcome, SourceReadError, validate_audio
from voxtrain_validator.rules.audio import IO_BUFFER_BYTES

CODE = "invalid_audio_format"


def check(path: Path, extension: str | None = None) -> Outcome:
    with path.open("rb") as stream:
        return validate_audio(stream, extension or path.suffix)


def only_message(outcome: Outcome) -> str:
    assert not outcome.passed and outcome.code == CODE
    assert len(outcome.details) == 1 and outcome.details[0].message == outcome.message
    return outcome.message or ""


def wav_data_offset(data: bytes) -> int:
    return data.index(b"data") + 8


def flip_middle(data: bytes, count: int = 64) -> tuple[bytes, int]:
    middle = len(data) // 2
    damaged = bytearray(data)
    for i in range(middle, middle + count):
        damaged[i] ^= 0xFF
    return bytes(damaged), middle


# ------------------------------------------------------------------ good files


@pytest.mark.parametrize(
    ("name", "codec", "bit_depth"),
    [
        ("speech.wav", "pcm_s16le", 16),
        ("speech.mp3", "mp3", None),
        ("speech.m4a", "aac", None),
        ("speech_faststart.m4a", "aac", None),
        ("speech.flac", "flac", 16),
    ],
)
def test_good_speech_passes_with_what_it_found(media, name, codec, bit_depth):
    outcome = check(media[name])

    assert outcome.passed, outcome.message
    assert outcome.code is None and outcome.details == () and outcome.warnings == ()
    meta = outcome.metadata
    assert meta["container"] == Path(name).suffix[1:]
    assert meta["codec"] == codec
    assert meta["sample_rate"] == 22050  # espeak-ng's rate, kept by every encoder here
    assert meta["channels"] == 1
    assert meta["bit_depth"] == bit_depth
    assert meta["size_bytes"] == media[name].stat().st_size
    reference = check(media["speech.wav"]).metadata["duration_seconds"]
    assert abs(meta["duration_seconds"] - reference) < 0.05  # AAC adds encoder priming only
    assert meta["silent"] is False


def test_24_bit_stereo_is_reported_as_such(media):
    wav = check(media["speech_24bit_stereo.wav"])
    flac = check(media["speech_24bit.flac"])

    assert wav.passed and flac.passed
    for meta in (wav.metadata, flac.metadata):
        assert (meta["sample_rate"], meta["channels"], meta["bit_depth"]) == (48000, 2, 24)
    assert wav.metadata["codec"] == "pcm_s24le"


def test_extension_case_and_dot_do_not_matter(media):
    assert check(media["speech.mp3"], "MP3").passed
    assert check(media["speech.mp3"], ".Mp3").passed


# ------------------------------------------------------------------ suspicious but usable


def test_8khz_audio_passes_with_a_warning(media):
    outcome = check(media["speech_8k.wav"])

    assert outcome.passed
    assert outcome.metadata["sample_rate"] == 8000
    assert len(outcome.warnings) == 1 and "8000 Hz" in outcome.warnings[0]


def test_very_short_audio_passes_with_a_warning(media):
    outcome = check(media["short.wav"])

    assert outcome.passed
    assert outcome.metadata["duration_seconds"] == pytest.approx(0.3, abs=0.001)
    assert outcome.warnings == ("The audio is only 0.30 s long; such a short clip carries very little speech.",)


def test_silent_audio_passes_with_a_warning(media):
    outcome = check(media["silence.wav"])

    assert outcome.passed and outcome.metadata["silent"] is True
    assert outcome.warnings == (
        "The audio is silent (no sample reaches -60 dBFS); check that the right file was uploaded.",
    )


# ------------------------------------------------------------------ empty and zero-length


@pytest.mark.parametrize("extension", [".wav", ".mp3", ".m4a", ".flac"])
def test_empty_file_fails(extension):
    outcome = validate_audio(io.BytesIO(b""), extension)

    label = extension[1:].upper()
    assert only_message(outcome) == f"The file is empty (0 bytes). Upload the {label} file again."
    assert outcome.metadata == {"size_bytes": 0}


def test_wav_with_zero_samples_fails(media):
    data = media.bytes("speech.wav")
    header = bytearray(data[: wav_data_offset(data)])
    header[-4:] = struct.pack("<I", 0)  # data chunk of 0 bytes, and nothing after it
    header[4:8] = struct.pack("<I", len(header) - 8)

    outcome = validate_audio(io.BytesIO(bytes(header)), "wav")

    assert only_message(outcome).startswith("The file contains no audio: nothing could be decoded")
    assert outcome.metadata["duration_seconds"] == 0


def test_unsupported_extension_fails():
    outcome = validate_audio(io.BytesIO(b"OggS"), ".ogg")

    assert only_message(outcome) == ("'.ogg' is not an audio type that can be uploaded; use .wav, .mp3, .m4a or .flac.")


# ------------------------------------------------------------------ cut short


def test_truncated_wav_fails_with_where_it_ends(media):
    data = media.bytes("speech.wav")
    cut = len(data) * 6 // 10
    declared = len(data) - wav_data_offset(data)

    outcome = validate_audio(io.BytesIO(data[:cut]), "wav")

    message = only_message(outcome)
    assert message.startswith("The WAV file is cut short: its header says 0:")
    assert f"({declared} bytes)" in message and f"({len(data) - cut} bytes missing)" in message
    assert outcome.details[0].byte_offset == cut
    expected_seconds = (cut - wav_data_offset(data)) // 2 / 22050
    assert outcome.metadata["duration_seconds"] == pytest.approx(expected_seconds, abs=0.001)


def test_wav_header_only_fails_as_cut_short_and_empty(media):
    data = media.bytes("speech.wav")
    header = data[: wav_data_offset(data)]

    outcome = validate_audio(io.BytesIO(header), "wav")

    assert not outcome.passed and outcome.code == CODE
    first, second = outcome.details
    assert first.message.startswith("The WAV file is cut short") and first.byte_offset == len(header)
    assert second.message.startswith("The file contains no audio")
    assert outcome.message == first.message + " (and 1 more problem)"


def test_truncated_mp3_with_length_header_fails(media):
    data = media.bytes("speech.mp3")

    outcome = validate_audio(io.BytesIO(data[: len(data) * 6 // 10]), "mp3")

    assert not outcome.passed and outcome.code == CODE
    assert outcome.message.startswith("The MP3 file is cut short: its header says 0:")
    assert outcome.message.endswith("could be decoded. Upload the complete file.")


def test_truncated_flac_fails_against_streaminfo(media):
    data = media.bytes("speech.flac")

    outcome = validate_audio(io.BytesIO(data[: len(data) * 6 // 10]), "flac")

    assert not outcome.passed and outcome.code == CODE
    assert outcome.message.startswith("The FLAC file is cut short: its header says 0:")
    total = check(media["speech.flac"]).metadata["samples"]
    assert f"({total} samples)" in outcome.message
    assert all(f.byte_offset is None or f.byte_offset <= len(data) * 6 // 10 for f in outcome.details)


def test_truncated_m4a_with_index_at_the_end_cannot_be_opened(media):
    data = media.bytes("speech.m4a")

    outcome = validate_audio(io.BytesIO(data[: len(data) * 6 // 10]), "m4a")

    assert only_message(outcome).startswith(
        "This M4A file cannot be opened: its index (the 'moov' box) is missing or damaged"
    )


def test_truncated_m4a_with_index_first_fails_with_packet_counts(media):
    data = media.bytes("speech_faststart.m4a")
    cut = len(data) * 6 // 10

    outcome = validate_audio(io.BytesIO(data[:cut]), "m4a")

    assert not outcome.passed and outcome.code == CODE
    assert outcome.message.startswith("The M4A file is cut short: its index lists ")
    assert all(f.byte_offset is None or f.byte_offset < cut for f in outcome.details)


@pytest.mark.parametrize(
    ("name", "keep", "expected"),
    [
        (
            "speech.mp3",
            64,
            "This file looks like an MP3 file (it starts with an ID3 tag) but no audio could be read from it",
        ),
        ("speech.flac", 64, "This file looks like a FLAC file but no audio could be read from it"),
        ("speech.m4a", 1024, "This M4A file cannot be opened: its index (the 'moov' box) is missing"),
    ],
)
def test_header_only_files_fail(media, name, keep, expected):
    outcome = validate_audio(io.BytesIO(media.bytes(name)[:keep]), Path(name).suffix)

    assert only_message(outcome).startswith(expected)


# ------------------------------------------------------------------ damaged in the middle


@pytest.mark.parametrize("name", ["speech.mp3", "speech.m4a"])
def test_flipped_bytes_in_compressed_audio_fail_with_byte_offsets(media, name):
    data, flipped_at = flip_middle(media.bytes(name))

    outcome = validate_audio(io.BytesIO(data), Path(name).suffix)

    assert not outcome.passed and outcome.code == CODE
    label = Path(name).suffix[1:].upper()
    assert outcome.message.startswith(f"The {label} file is damaged: ")
    assert outcome.message.endswith("Export or encode it again from the original recording.")
    offsets = [f.byte_offset for f in outcome.details]
    assert offsets and all(o is not None for o in offsets)
    # The first damaged packet holds some of the flipped bytes; MP3's bit reservoir makes the
    # next frame or two fail too, so the others follow closely.
    assert flipped_at - 2048 <= offsets[0] <= flipped_at + 64, (flipped_at, offsets)
    assert all(offsets[0] <= o <= flipped_at + 4096 for o in offsets), (flipped_at, offsets)
    assert all(f.message.startswith("Damaged audio at 0:") for f in outcome.details)


def test_flipped_bytes_in_flac_fail_as_missing_audio(media):
    data, flipped_at = flip_middle(media.bytes("speech.flac"))

    outcome = validate_audio(io.BytesIO(data), "flac")

    assert not outcome.passed and outcome.code == CODE
    assert outcome.message.startswith("The FLAC file is damaged: ")
    gap = outcome.details[0]
    assert gap.message.startswith("Audio is missing between 0:") and "damaged frames were skipped" in gap.message
    assert flipped_at - 16384 <= gap.byte_offset <= flipped_at + 16384


def test_flipped_bytes_in_pcm_wav_cannot_be_detected(media):
    # Any byte is a valid PCM sample: neither we nor `ffmpeg -v error` can tell. Documented limit.
    data, _ = flip_middle(media.bytes("speech.wav"))

    assert validate_audio(io.BytesIO(data), "wav").passed


@pytest.mark.parametrize("name", ["speech.wav", "speech.mp3", "speech.m4a", "speech.flac", "speech_faststart.m4a"])
def test_random_damage_never_crashes(media, name):
    data = media.bytes(name)
    rng = random.Random(name)
    for _ in range(12):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 40)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        cut = rng.choice([len(damaged), rng.randrange(1, len(damaged))])

        outcome = validate_audio(io.BytesIO(bytes(damaged[:cut])), Path(name).suffix)

        assert isinstance(outcome, Outcome)
        assert outcome.passed or (outcome.code == CODE and outcome.message and outcome.details)


# ------------------------------------------------------------------ not what the name says


@pytest.mark.parametrize(
    ("name", "extension", "expected"),
    [
        (
            "speech.mp3",
            "wav",
            "This file is an MP3 stream but is named .wav — rename it to .mp3 or re-encode it as WAV.",
        ),
        ("speech.wav", "mp3", "This file is a WAV file but is named .mp3 — rename it to .wav or re-encode it as MP3."),
        (
            "speech.flac",
            "m4a",
            "This file is a FLAC file but is named .m4a — rename it to .flac or re-encode it as M4A.",
        ),
        (
            "speech.m4a",
            "flac",
            "This file is an MP4/M4A file but is named .flac — rename it to .m4a or re-encode it as FLAC.",
        ),
        (
            "image.png",
            "m4a",
            "This file is a PNG image, not audio, but is named .m4a — upload the audio recording itself.",
        ),
        (
            "speech.ogg",
            "flac",
            "This file is an Ogg file but is named .flac; that format is not "
            "accepted. Convert it to FLAC (for example: ffmpeg -i INPUT "
            "output.flac) and upload that.",
        ),
    ],
)
def test_real_format_must_match_the_extension(media, name, extension, expected):
    outcome = check(media[name], extension)

    assert only_message(outcome) == expected


def test_text_named_as_audio_fails():
    outcome = validate_audio(io.BytesIO(b"hello, this is not a recording\n" * 10), "wav")

    assert only_message(outcome) == (
        "This file is a text file, not audio, but is named .wav — upload the audio recording itself."
    )


def test_random_bytes_are_not_audio():
    noise = random.Random(7).randbytes(50_000)

    outcome = validate_audio(io.BytesIO(noise), "mp3")

    assert not outcome.passed and outcome.code == CODE


# ------------------------------------------------------------------ the stream, not the content


class FailingStream(io.RawIOBase):
    """Reads fine up to ``fail_at`` bytes, then the store goes away."""

    def __init__(self, data: bytes, fail_at: int) -> None:
        self._inner = io.BytesIO(data)
        self._fail_at = fail_at

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def readinto(self, buffer) -> int:
        if self._inner.tell() + len(buffer) > self._fail_at:
            raise ConnectionResetError("connection reset by peer")
        return self._inner.readinto(buffer)


@pytest.mark.parametrize("fail_at", [0, 5_000, 60_000])
def test_a_failing_stream_raises_instead_of_blaming_the_file(media, fail_at):
    stream = FailingStream(media.bytes("speech.wav"), fail_at)

    with pytest.raises(SourceReadError) as raised:
        validate_audio(stream, "wav")
    assert isinstance(raised.value.__cause__, ConnectionResetError)


class RecordingStream(io.BytesIO):
    """Remembers the largest single read, and whether anyone closed it."""

    largest_read = 0
    was_closed = False

    def read(self, size=-1):
        data = super().read(size)
        self.largest_read = max(self.largest_read, len(data))
        return data

    def close(self):
        self.was_closed = True
        super().close()


def test_reads_are_bounded_and_the_callers_stream_stays_open(media):
    stream = RecordingStream(media.bytes("speech.wav"))

    assert validate_audio(stream, "wav").passed
    assert stream.largest_read <= IO_BUFFER_BYTES
    assert not stream.was_closed


def test_concurrent_validations_agree_with_sequential_ones(media):
    names = ["speech.wav", "speech.mp3", "speech.m4a", "speech.flac", "speech_8k.wav", "image.png"] * 2
    sequential = [check(media[n], "m4a" if n == "image.png" else None) for n in names]

    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda n: check(media[n], "m4a" if n == "image.png" else None), names))

    assert concurrent == sequential


# ------------------------------------------------------------------ work limits


def test_audio_longer_than_the_limit_is_refused_once_decoded_when_nothing_states_its_length(media, monkeypatch):
    from voxtrain_validator.rules import audio

    hours = decoded_seconds(media["speech_vbr_no_header.mp3"]) / 1.1 / 3600  # 10 %: within the estimate's margin
    monkeypatch.setattr(audio, "MAX_DURATION_HOURS", hours)

    outcome = check(media["speech_vbr_no_header.mp3"])  # VBR without a Xing frame: only decoding tells

    assert not outcome.passed and outcome.code == CODE
    assert outcome.message == f"The audio is longer than {hours:g} hours; split it into shorter files."


def test_a_streamed_wav_longer_than_the_limit_is_refused_from_its_size_before_decoding(media, monkeypatch):
    from voxtrain_validator.rules import audio

    monkeypatch.setattr(audio, "MAX_DURATION_HOURS", 0.0005)  # 1.8 seconds
    streamed = bytearray(media.bytes("speech.wav"))  # as a streaming writer leaves it: the data size unknown
    streamed[wav_data_offset(bytes(streamed)) - 4 : wav_data_offset(bytes(streamed))] = b"\xff\xff\xff\xff"
    seconds = (len(streamed) - wav_data_offset(bytes(streamed))) / 44100  # espeak-ng: 22.05 kHz 16-bit mono

    outcome = validate_audio(io.BytesIO(bytes(streamed)), "wav")

    assert not outcome.passed and outcome.code == CODE
    assert outcome.message.startswith("The audio is about 0:0")
    assert outcome.message.endswith(
        " long, as its size and its sample format (44,100 bytes a second) give: longer than 0.0005 hours; "
        "split it into shorter files."
    )
    assert outcome.metadata["duration_seconds"] == pytest.approx(seconds, abs=0.001)
    assert "samples" not in outcome.metadata  # nothing was decoded


def test_a_pcm_wavs_length_goes_by_its_sample_format_not_a_wrong_byte_rate_in_its_header(media, monkeypatch):
    from voxtrain_validator.rules import audio

    monkeypatch.setattr(audio, "MAX_DURATION_HOURS", 0.0005)  # 1.8 seconds
    data = bytearray(media.bytes("speech.wav"))  # espeak-ng: 22.05 kHz 16-bit mono, 44,100 bytes a second
    fmt = data.index(b"fmt ") + 8
    data[fmt + 8 : fmt + 12] = (4 * 44100).to_bytes(4, "little")  # a writer's wrong byte rate: a quarter the length
    seconds = (len(data) - wav_data_offset(bytes(data))) / 44100

    outcome = validate_audio(io.BytesIO(bytes(data)), "wav")

    assert not outcome.passed and outcome.metadata["duration_seconds"] == pytest.approx(seconds, abs=0.001)


@pytest.mark.parametrize(
    ("name", "kbps"),
    [("speech_cbr_no_header.mp3", 128), ("speech_cbr_mpeg2.mp3", 32), ("speech_cbr_mpeg25.mp3", 8)],
)
def test_a_cbr_mp3_without_a_length_header_longer_than_the_limit_is_refused_from_its_size(
    media, monkeypatch, name, kbps
):
    import av

    from voxtrain_validator.rules import audio

    with av.open(str(media[name])) as container:
        decoded = float(container.duration / av.time_base)  # FFmpeg's own estimate for such a file
    monkeypatch.setattr(audio, "MAX_DURATION_HOURS", 0.0002)  # 0.72 seconds

    outcome = check(media[name])

    assert not outcome.passed and outcome.code == CODE
    assert outcome.message.endswith(
        f" long, as its size and its constant bit rate ({kbps} kb/s) give: longer than 0.0002 hours; "
        "split it into shorter files."
    )
    assert outcome.metadata["duration_seconds"] == pytest.approx(decoded, rel=0.02)
    assert "samples" not in outcome.metadata


def test_a_cbr_mp3_without_a_length_header_under_the_limit_is_decoded(media, monkeypatch):
    from voxtrain_validator.rules import audio

    monkeypatch.setattr(audio, "MAX_DURATION_HOURS", 1.0)

    outcome = check(media["speech_cbr_no_header.mp3"])

    assert outcome.passed and outcome.metadata["samples"] > 0


@pytest.mark.parametrize(
    ("header", "bit_rate", "sample_rate", "length"),
    [
        (b"\xff\xfb\x90\x64", 128_000, 44100, 417),  # MPEG-1 layer III
        (b"\xff\xfb\x92\x64", 128_000, 44100, 418),  # the same, padded
        (b"\xff\xf3\x48\xc4", 32_000, 16000, 144),  # MPEG-2 layer III: half the samples per frame
        (b"\xff\xe3\x18\xc4", 8_000, 8000, 72),  # MPEG-2.5 layer III
        (b"\xff\xfd\x90\x00", 160_000, 44100, 522),  # MPEG-1 layer II
        (b"\xff\xff\x40\x00", 128_000, 44100, 136),  # MPEG-1 layer I: 4-byte slots
    ],
)
def test_mpeg_frame_headers_give_their_bit_rate_and_length(header, bit_rate, sample_rate, length):
    from voxtrain_validator.rules.audio_headers import mpeg_frame

    frame = mpeg_frame(header)

    assert frame is not None
    assert (frame.bit_rate, frame.sample_rate, frame.length) == (bit_rate, sample_rate, length)


@pytest.mark.parametrize(
    "header", [b"\xff\xfb\x00\x64", b"\xff\xfb\xf0\x64", b"\xff\xfb\x9c\x64", b"\xff\xeb\x90\x64", b"ID3\x04"]
)
def test_what_is_not_a_frame_header_is_none(header):
    from voxtrain_validator.rules.audio_headers import mpeg_frame

    assert mpeg_frame(header) is None  # free format, bad bit rate, bad sample rate, reserved version, a tag


@pytest.mark.parametrize(
    "name", ["speech_cbr_no_header.mp3", "speech_cbr_mpeg2.mp3", "speech_cbr_mpeg25.mp3", "speech_vbr_no_header.mp3"]
)
def test_frames_walked_by_their_headers_are_ffmpegs_packets(media, name):
    import av

    from voxtrain_validator.rules.audio_headers import mp3_first_frame, mpeg_frame

    data = media.bytes(name)
    with media[name].open("rb") as stream:
        first = mp3_first_frame(stream)
    assert first is not None
    at, frames = first[0], 0
    while (frame := mpeg_frame(data[at : at + 4])) is not None:
        at, frames = at + frame.length, frames + 1
    with av.open(str(media[name])) as container:
        packets = sum(1 for packet in container.demux(audio=0) if packet.size)

    assert at == len(data) and frames == packets


def decoded_seconds(source: Path | io.BytesIO) -> float:
    """How long the audio in ``source`` (a file or its bytes) is, by decoding it."""
    import av

    with av.open(str(source) if isinstance(source, Path) else source) as container:
        return sum(frame.samples for frame in container.decode(audio=0)) / container.streams.audio[0].rate


@pytest.mark.parametrize(
    ("name", "constant"),
    [
        ("speech_cbr_no_header.mp3", True),
        ("speech_cbr_mpeg2.mp3", True),
        ("speech_cbr_mpeg25.mp3", True),
        ("speech_vbr_no_header.mp3", False),
    ],
)
def test_the_bit_rate_is_read_from_frames_across_the_file(media, name, constant):
    from voxtrain_validator.rules.audio_headers import mp3_bit_rate_across, mp3_first_frame

    size = media[name].stat().st_size
    with media[name].open("rb") as stream:
        first = mp3_first_frame(stream)
        assert first is not None
        sampled = mp3_bit_rate_across(stream, size, *first)

    assert sampled is not None and sampled.constant is constant
    true_rate = (size - first[0]) * 8 / decoded_seconds(media[name])  # what the whole file averages
    assert sampled.bits_per_second == pytest.approx(true_rate, rel=0.15)


def test_data_between_the_frames_of_an_mp3_leaves_its_bit_rate_unknown(media):
    from voxtrain_validator.rules.audio_headers import mp3_bit_rate_across, mp3_first_frame

    data = media.bytes("speech_cbr_no_header.mp3")
    junk = data[: len(data) // 2] + bytes(len(data)) + data[len(data) // 2 :]  # half the file is zeros

    stream = io.BytesIO(junk)
    first = mp3_first_frame(stream)
    assert first is not None
    assert mp3_bit_rate_across(stream, len(junk), *first) is None


def test_a_vbr_mp3_without_a_length_header_well_over_the_limit_is_refused_from_its_sampled_bit_rate(media, monkeypatch):
    from voxtrain_validator.rules import audio

    seconds = decoded_seconds(media["speech_vbr_no_header.mp3"])
    monkeypatch.setattr(audio, "MAX_DURATION_HOURS", seconds / 1.6 / 3600)  # the file is 1.6 times the limit

    outcome = check(media["speech_vbr_no_header.mp3"])

    assert not outcome.passed and outcome.code == CODE
    assert "as its size and its variable bit rate (about " in outcome.message
    assert outcome.message.endswith(
        " kb/s where sampled across the file) give: longer than "
        f"{audio.MAX_DURATION_HOURS:g} hours; split it into shorter files."
    )
    assert outcome.metadata["duration_seconds"] == pytest.approx(seconds, rel=0.15)
    assert "samples" not in outcome.metadata  # refused before decoding


def test_a_vbr_mp3_without_a_length_header_near_the_limit_is_decoded_not_refused_on_an_estimate(media, monkeypatch):
    from voxtrain_validator.rules import audio

    seconds = decoded_seconds(media["speech_vbr_no_header.mp3"])
    monkeypatch.setattr(audio, "MAX_DURATION_HOURS", seconds / 0.95 / 3600)  # 5 % under the limit

    outcome = check(media["speech_vbr_no_header.mp3"])

    assert outcome.passed and outcome.metadata["samples"] > 0


@pytest.mark.parametrize("name", ["speech.wav", "speech.mp3", "speech.m4a", "speech.flac"])
def test_audio_whose_header_states_more_than_the_limit_is_refused_before_decoding(media, monkeypatch, name):
    from voxtrain_validator.rules import audio

    monkeypatch.setattr(audio, "MAX_DURATION_HOURS", 0.0005)  # 1.8 seconds

    outcome = check(media[name])

    assert not outcome.passed and outcome.code == CODE
    assert outcome.message is not None and outcome.message.startswith("The audio is ")
    assert outcome.message.endswith(", as its header states: longer than 0.0005 hours; split it into shorter files.")
    assert outcome.metadata["duration_seconds"] > 1.8
    assert "samples" not in outcome.metadata  # nothing was decoded


def test_audio_whose_header_states_less_than_the_limit_is_decoded(media, monkeypatch):
    from voxtrain_validator.rules import audio

    monkeypatch.setattr(audio, "MAX_DURATION_HOURS", 1.0)

    assert check(media["speech.mp3"]).passed


def test_a_file_that_makes_the_decoder_reread_is_refused(media, monkeypatch):
    from voxtrain_validator.rules import audio

    size = media["speech.mp3"].stat().st_size
    monkeypatch.setattr(audio, "MAX_REREAD_BYTES", -3 * size)  # anything read counts as too much

    outcome = check(media["speech.mp3"])

    assert not outcome.passed and outcome.code == CODE
    assert outcome.message.startswith("The file is malformed: decoding it re-reads the same data")


@pytest.mark.parametrize("name", ["speech.m4a", "speech_faststart.m4a"])
def test_the_mp4_packet_count_is_read_from_the_index_wherever_it_is(media, name):
    import av

    from voxtrain_validator.rules.audio_headers import mp4_audio_packets

    with av.open(str(media[name])) as container:
        expected = container.streams.audio[0].frames
    with media[name].open("rb") as stream:
        assert mp4_audio_packets(stream, media[name].stat().st_size) == expected > 0


@pytest.mark.parametrize("name", ["speech.wav", "speech.mp3", "speech.flac", "image.png"])
def test_files_that_are_not_mp4_have_no_packet_count(media, name):
    from voxtrain_validator.rules.audio_headers import mp4_audio_packets

    with media[name].open("rb") as stream:
        assert mp4_audio_packets(stream, media[name].stat().st_size) is None


def test_an_m4a_whose_index_lists_too_many_packets_is_refused_before_it_is_opened(media, monkeypatch):
    from voxtrain_validator.rules import audio

    monkeypatch.setattr(audio, "MAX_MP4_PACKETS", 10)

    outcome = check(media["speech.m4a"])

    assert not outcome.passed and outcome.code == CODE
    assert outcome.message is not None and "index lists" in outcome.message
    assert "more than 10 (about 0 hours" in outcome.message
    assert outcome.message.endswith("Split the recording into shorter files and upload those.")
    assert outcome.metadata["packets"] > 10 and "samples" not in outcome.metadata
