"""validate_transcript on good and bad VTT, SRT and TXT, and the incremental UTF-8 reader under it."""

from __future__ import annotations

import io
import random

import pytest

from voxtrain_validator.rules import Outcome, SourceReadError, validate_transcript
from voxtrain_validator.rules.text_stream import TextProblem, Utf8Lines
from voxtrain_validator.rules.words import _WORD, WordCounter, count_words, words_of

CODE = "invalid_transcript_format"

GOOD_VTT = """WEBVTT - call recordings

NOTE produced by hand

1
00:00:01.000 --> 00:00:04.000 align:start position:10%
Hello <v Bob>and welcome</v> to the
quarterly earnings call

00:00:04.500 --> 00:00:06.000
Revenue grew by twelve percent
"""

GOOD_SRT = """1
00:00:01,000 --> 00:00:04,000
Hello and welcome to the

quarterly earnings call

2
00:00:04,500 --> 00:00:06,000
Revenue grew by twelve percent
"""


def check(data: bytes | str, extension: str) -> Outcome:
    raw = data.encode() if isinstance(data, str) else data
    return validate_transcript(io.BytesIO(raw), extension)


def lines_of(outcome: Outcome) -> list[int | None]:
    assert not outcome.passed and outcome.code == CODE
    return [f.line for f in outcome.details]


# ------------------------------------------------------------------ good files


def test_good_vtt_passes_with_counts():
    outcome = check(GOOD_VTT, ".vtt")

    assert outcome.passed, outcome.message
    meta = outcome.metadata
    assert meta["format"] == "vtt" and meta["encoding"] == "utf-8" and meta["bom"] is False
    assert meta["cues"] == 2 and meta["lines"] == 11
    # tags are not words: "Hello and welcome to the quarterly earnings call" + 5 more
    assert meta["words"] == 13 and meta["vocabulary_size"] == 13
    assert meta["duration_seconds"] == 6.0
    assert outcome.warnings == (
        "The transcript has only 13 words; adapting a language model needs "
        "far more text (thousands of sentences) to make a difference.",
    )


def test_good_srt_with_a_blank_line_inside_a_cue_passes():
    outcome = check(GOOD_SRT, "srt")

    assert outcome.passed, outcome.message
    assert outcome.metadata["cues"] == 2 and outcome.metadata["words"] == 13


def test_good_txt_passes_with_counts():
    outcome = check("The cat sat.\n\nThe cat didn't sit, it ran!\n", "txt")

    assert outcome.passed
    meta = outcome.metadata
    assert (meta["lines"], meta["non_empty_lines"], meta["words"], meta["vocabulary_size"]) == (3, 2, 9, 7)


def test_a_utf8_bom_is_fine():
    outcome = check(b"\xef\xbb\xbf" + GOOD_VTT.encode(), "vtt")

    assert outcome.passed and outcome.metadata["bom"] is True and outcome.metadata["cues"] == 2


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_crlf_and_cr_line_ends_are_fine(newline):
    outcome = check(GOOD_SRT.replace("\n", newline), "srt")

    assert outcome.passed and outcome.metadata["cues"] == 2 and outcome.metadata["lines"] == 9


def test_many_words_no_warning():
    outcome = check("one two three four five six seven\n" * 10, "txt")

    assert outcome.passed and outcome.warnings == () and outcome.metadata["vocabulary_size"] == 7


# ------------------------------------------------------------------ encodings


def test_latin1_is_rejected_with_the_byte_offset():
    data = "Line one\nCafé crème\n".encode("latin-1")

    outcome = check(data, "txt")

    assert lines_of(outcome) == [2]
    assert outcome.details[0].byte_offset == 12 == data.index(b"\xe9")
    assert outcome.message == (
        "The file is not valid UTF-8: byte 0xE9 at byte offset 12 (line 2, column 4) cannot be "
        "decoded. In Windows-1252/Latin-1 that byte is 'é', so the file is probably saved in that "
        "encoding. Save the file as UTF-8 and upload it again."
    )


def test_latin1_in_a_vtt_cue_is_rejected_with_the_byte_offset():
    data = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nna\u00efve\n".encode("latin-1")

    outcome = check(data, "vtt")

    assert lines_of(outcome) == [4]
    assert outcome.details[0].byte_offset == data.index(b"\xef")


@pytest.mark.parametrize(
    ("encoding", "name"),
    [
        ("utf-16", "UTF-16 (little-endian)"),
        ("utf-16-be", None),
        ("utf-32", "UTF-32 (little-endian)"),
    ],
)
def test_utf16_and_utf32_are_rejected(encoding, name):
    data = "1\n00:00:01,000 --> 00:00:02,000\nhello\n".encode(encoding)
    if name is None:  # no byte-order mark: NUL bytes give it away
        outcome = check(data, "srt")
        assert outcome.details[0].byte_offset == 0
        assert "it looks like UTF-16 text without a byte-order mark" in outcome.message
    else:
        outcome = check(data, "srt")
        assert outcome.message == (
            f"The file is encoded as {name}, as its byte-order mark shows; "
            "only UTF-8 is accepted. Save it as UTF-8 and upload it again."
        )
        assert outcome.details[0].byte_offset == 0
    assert lines_of(outcome) == [1]


def test_binary_data_is_rejected_at_the_nul_byte():
    outcome = check(b"WEBVTT\nIHDR\x00\x00\x01", "vtt")

    assert lines_of(outcome) == [2]
    assert outcome.details[0].byte_offset == 11
    assert "this looks like a binary file, not text" in outcome.message


def test_a_file_cut_inside_a_character_says_so():
    data = "caf\u00e9".encode()[:-1]

    outcome = check(data, "txt")

    assert outcome.details[0].byte_offset == 3
    assert "The file ends in the middle of a character" in outcome.message


# ------------------------------------------------------------------ VTT structure


def test_missing_webvtt_header():
    outcome = check(GOOD_VTT.replace("WEBVTT - call recordings\n\n", ""), "vtt")

    assert lines_of(outcome) == [1]
    assert outcome.message == (
        "Line 1: a WebVTT file must start with the line 'WEBVTT', but it starts with 'NOTE produced by hand'."
    )


def test_srt_named_vtt_gets_a_hint():
    outcome = check(GOOD_SRT, "vtt")

    assert lines_of(outcome) == [1]
    assert outcome.message.endswith("It looks like SRT subtitles: rename it to .srt.")


def test_broken_vtt_timestamps_are_reported_by_line():
    text = (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:02.000\nfine\n\n"  # 3
        "00:00:61.000 --> 00:01:04.000\nbad seconds\n\n"  # 6
        "00:00:05,000 --> 00:00:06,000\ncommas\n\n"  # 9
        "0:00:07.000 --> 0:00:08.000\nshort hour\n\n"  # 12
        "00:00:09.000 -> 00:00:10.000\nbad arrow\n"
    )  # 15

    outcome = check(text, "vtt")

    assert lines_of(outcome) == [6, 9, 12, 15]
    assert outcome.details[0].message == (
        "Line 6: Invalid timestamp '00:00:61.000'; minutes and seconds must be below 60."
    )
    assert outcome.details[1].message.endswith("WebVTT puts a '.' before the milliseconds, not ','.")
    assert outcome.details[3].message.startswith("Line 15: this block has no cue timing line")
    assert outcome.message == outcome.details[0].message + " (and 3 more problems)"


def test_out_of_order_and_backwards_vtt_cues():
    text = (
        "WEBVTT\n\n"
        "00:00:05.000 --> 00:00:06.000\na\n\n"  # 3
        "00:00:01.000 --> 00:00:02.000\nb\n\n"  # 6
        "00:00:09.000 --> 00:00:08.000\nc\n"
    )  # 9

    outcome = check(text, "vtt")

    assert lines_of(outcome) == [6, 9]
    assert outcome.details[0].message == (
        "Line 6: the cue starts at 00:00:01.000, before the previous "
        "cue (line 3, at 00:00:05.000); cues must be in time order."
    )
    assert outcome.details[1].message == "Line 9: the cue ends (00:00:08.000) before it starts (00:00:09.000)."


def test_empty_vtt_cues():
    text = (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:02.000\n\n"  # 3: no text
        "id-2\n00:00:03.000 --> 00:00:04.000\n<b> </b>\n\n"  # 6: only tags
        "00:00:05.000 --> 00:00:06.000\nwords\n"
    )

    outcome = check(text, "vtt")

    assert lines_of(outcome) == [3, 6]
    assert outcome.details[0].message == "Line 3: the cue has no text. Remove it or add the words spoken."


def test_vtt_cue_without_blank_line_before_it():
    text = "WEBVTT\n00:00:01.000 --> 00:00:02.000\na\n00:00:03.000 --> 00:00:04.000\nb\n"

    outcome = check(text, "vtt")

    assert lines_of(outcome) == [2, 4]
    assert outcome.metadata["cues"] == 2


def test_vtt_without_cues():
    outcome = check("WEBVTT\n\nNOTE nothing here\n", "vtt")

    assert lines_of(outcome) == [None]
    assert outcome.message.startswith("The file has no cues")


def test_style_after_a_cue_is_rejected():
    text = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\na\n\nSTYLE\n::cue { color: red }\n"

    assert lines_of(check(text, "vtt")) == [6]


# ------------------------------------------------------------------ SRT structure


def test_broken_srt_timestamps():
    text = (
        "1\n00:00:01,000 --> 00:00:02,500\nok\n\n"  # 2
        "2\n00:00:61,000 --> 00:00:62,000\nbad secs\n\n"  # 6
        "3\n00:00:01 --> 00:00:02\nno millis\n\n"  # 10
        "4\n00:00:09,000 --> 00:00:08,000\nbackwards\n"
    )  # 14

    outcome = check(text, "srt")

    assert lines_of(outcome) == [6, 10, 14]
    assert outcome.details[0].message.startswith("Line 6: invalid cue timing '00:00:61,000 --> 00:00:62,000'")
    assert outcome.details[2].message == "Line 14: the cue ends (00:00:08.000) before it starts (00:00:09.000)."


def test_out_of_order_srt_cues():
    text = "1\n00:00:05,000 --> 00:00:06,000\na\n\n2\n00:00:01,000 --> 00:00:02,000\nb\n"

    assert lines_of(check(text, "srt")) == [6]


def test_empty_srt_cue():
    text = "1\n00:00:01,000 --> 00:00:02,000\n\n2\n00:00:03,000 --> 00:00:04,000\nok\n"

    outcome = check(text, "srt")

    assert lines_of(outcome) == [2]
    assert outcome.message == "Line 2: the cue has no text. Remove it or add the words spoken."


def test_garbage_before_the_first_srt_cue():
    text = "\nthis is not\na cue\n\n1\n00:00:05,000 --> 00:00:06,000\nok\n"

    outcome = check(text, "srt")

    assert lines_of(outcome) == [2]
    assert outcome.message.startswith("Line 2: not a valid SRT cue at 'this is not'")


def test_text_after_a_blank_line_inside_an_srt_cue_belongs_to_the_cue():
    # As in players and the srt library: only a number + timing line starts the next cue.
    text = "1\n00:00:01,000 --> 00:00:02,000\nok\n\nmore words\n\n2\n00:00:05,000 --> 00:00:06,000\nok\n"

    outcome = check(text, "srt")

    assert outcome.passed and outcome.metadata["cues"] == 2 and outcome.metadata["words"] == 4


def test_vtt_named_srt_gets_a_hint():
    outcome = check(GOOD_VTT, "srt")

    assert lines_of(outcome)[0] == 1
    assert outcome.message.startswith("Line 1: not a valid SRT cue at 'WEBVTT - call recordings'")
    assert "The file looks like WebVTT: rename it to .vtt." in outcome.message


def test_non_consecutive_srt_numbers_only_warn():
    text = "1\n00:00:01,000 --> 00:00:02,000\na\n\n7\n00:00:03,000 --> 00:00:04,000\nb\n"

    outcome = check(text, "srt")

    assert outcome.passed
    assert outcome.warnings[0] == "Line 6: cue number 7 follows 1; cue numbers are usually consecutive."


# ------------------------------------------------------------------ TXT and empties


@pytest.mark.parametrize("extension", ["txt", "vtt", "srt"])
def test_zero_byte_file(extension):
    outcome = check(b"", extension)

    assert lines_of(outcome) == [None]
    assert outcome.message == "The file is empty (0 bytes). Upload a transcript with text in it."


def test_txt_with_only_blank_lines():
    outcome = check("\n   \n\t\n", "txt")

    assert lines_of(outcome) == [None]
    assert outcome.message.startswith("The file has no text: every line is empty.")


def test_subtitles_in_a_txt_file_warn():
    outcome = check(GOOD_SRT, "txt")

    assert outcome.passed
    assert outcome.warnings[0].startswith("Line 2 looks like subtitle timing ('00:00:01,000 --> 00:00:04,000')")


def test_an_enormous_line_is_refused():
    outcome = check("a" * (1 << 20) + "b" * 1024, "txt")

    assert lines_of(outcome) == [1]
    assert outcome.message.startswith("Line 1 is longer than 1,048,576 characters")


def test_details_are_capped():
    text = "WEBVTT\n\n" + "".join(f"00:00:0{i % 10}.000 --> 00:00:00.500\nx\n\n" for i in range(120))

    outcome = check(text, "vtt")

    assert not outcome.passed
    assert len(outcome.details) == 50 and outcome.details_dropped > 0


def test_a_failing_stream_raises():
    class Broken(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 0:
                raise TimeoutError("read timed out")
            return super().read(5)

    with pytest.raises(SourceReadError):
        validate_transcript(Broken(GOOD_VTT.encode()), "vtt")


def test_unsupported_extension():
    outcome = check("hello", "docx")

    assert outcome.message == "'.docx' is not a transcript type that can be uploaded; use .vtt, .srt or .txt."


# ------------------------------------------------------------------ the incremental reader


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_lines_are_the_same_whatever_the_chunk_size(chunk):
    text = "héllo wörld\r\nsecond ünïcode €\rthird\n\nlast without newline 🎙"
    reader = Utf8Lines(io.BytesIO(text.encode()), chunk_bytes=chunk)

    assert [line for _, line in reader] == ["héllo wörld", "second ünïcode €", "third", "", "last without newline 🎙"]
    assert reader.lines == 5 and reader.bytes_read == len(text.encode())


@pytest.mark.parametrize("chunk", [1, 2, 64])
def test_a_bom_is_found_even_when_reads_are_tiny(chunk):
    reader = Utf8Lines(io.BytesIO(b"\xef\xbb\xbfWEBVTT\n\nhi\n"), chunk_bytes=chunk)

    assert [line for _, line in reader] == ["WEBVTT", "", "hi"]
    assert reader.bom is True


@pytest.mark.parametrize("chunk", [1, 3, 5, 1 << 20])
def test_bad_byte_offset_is_exact_whatever_the_chunk_size(chunk):
    good = "ünï\ncödé €\n".encode()
    data = good + b"ab\xffcd\n"

    with pytest.raises(TextProblem) as raised:
        list(Utf8Lines(io.BytesIO(data), chunk_bytes=chunk))

    assert raised.value.byte_offset == len(good) + 2
    assert raised.value.line == 3


def test_reads_never_exceed_the_chunk_size():
    sizes: list[int] = []

    class Recording(io.BytesIO):
        def read(self, size=-1):
            sizes.append(size)
            return super().read(size)

    data = ("word " * 20 + "\n").encode() * 20_000  # ~2 MB
    lines = list(Utf8Lines(Recording(data), chunk_bytes=64 * 1024))

    assert len(lines) == 20_000
    assert max(sizes) == 64 * 1024


@pytest.mark.parametrize("chunk", [1, 2, 5, 64, 1 << 20])
def test_blocks_hold_the_same_lines_as_line_by_line_reading(chunk):
    text = "héllo\r\nwörld\r\rthird\n\n€ last\r\nx\ry\n\r" * 7 + "tail without newline\r"
    lines = [line for _, line in Utf8Lines(io.BytesIO(text.encode()), chunk_bytes=chunk)]
    reader = Utf8Lines(io.BytesIO(text.encode()), chunk_bytes=chunk)
    blocks = list(reader.blocks())

    assert all(block.endswith("\n") and "\r" not in block for _, block in blocks)
    assert [line for _, block in blocks for line in block.split("\n")[:-1]] == lines
    numbers = [first for first, _ in blocks]
    sizes = [block.count("\n") for _, block in blocks]
    assert numbers == [1 + sum(sizes[:i]) for i in range(len(blocks))]
    assert reader.lines == len(lines) == sum(sizes)


def test_words_are_those_of_the_word_pattern():
    rng = random.Random(5)
    pieces = [*"abcXYZ09_'’ \t\n.,-!?\x1c\x0b\xa0éÉßΣς½²٣東🎙«»", "don't", "O’Clock", "''", "rock'n'roll"]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
        assert sorted(words_of(text)) == sorted(_WORD.findall(text.casefold())), text
        assert count_words(text) == len(_WORD.findall(text.casefold())), text


@pytest.mark.parametrize("cap", [3, 5, 8, 1000])
def test_counting_a_batch_is_counting_text_by_text(cap):
    texts = ["the cat sat", "", "on the mat", "a new word", "and another one", "the end", "Don't_stop, café!", "x"]
    one_by_one, batch = WordCounter(max_vocabulary=cap), WordCounter(max_vocabulary=cap)
    for text in texts:
        one_by_one.add(text)
    batch.add_all(texts, "\n".join(texts))

    assert one_by_one.count == sum(len(_WORD.findall(text.casefold())) for text in texts)
    assert (batch.count, batch.vocabulary_size, batch.capped) == (
        one_by_one.count,
        one_by_one.vocabulary_size,
        one_by_one.capped,
    )
