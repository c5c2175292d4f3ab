"""Inputs read as streams and bounded by what a run can use: long lines, cue batches, pair and text caps."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import pytest
import srt
import webvtt

from voxtrain_shared.vocab import DatasetType
from voxtrain_trainer.inputs import MAX_PAIR_TEXT_CHARS, LocalDataset, _index, _manifest_pairs
from voxtrain_trainer.ml.acoustic.utterances import store_pairs
from voxtrain_trainer.ml.pairing import NamedFile, Skips, cut_by_cues, pair_recordings
from voxtrain_trainer.ml.pipeline import evenly_spaced
from voxtrain_trainer.ml.prepare import prepare_data
from voxtrain_trainer.ml.transcripts import MAX_BLOCK_CHARS, _bounded_lines, read_cues, read_utterances
from voxtrain_trainer.ml.types import AudioPair, TextFile, TrainingInputs


def _stamp(seconds: float, comma: bool = False) -> str:
    text = f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}"
    return text.replace(".", ",") if comma else text


def _subtitles(cues: int, fmt: str) -> str:
    out = ["WEBVTT\n\nNOTE made by a test\n\n"] if fmt == "vtt" else []
    for i in range(cues):
        start, end = i * 2.0, i * 2.0 + 1.5
        text = f"<b>cue</b> number {i}\nsecond line {i}" if i % 7 else ""
        if fmt == "vtt":
            out.append(f"{_stamp(start)} --> {_stamp(end)}\n{text}\n\n")
        else:
            out.append(f"{i + 1}\n{_stamp(start, True)} --> {_stamp(end, True)}\n{text}\n\n")
    return "".join(out)


def test_a_line_longer_than_the_limit_is_cut_at_white_space_and_no_word_is_lost() -> None:
    text = " ".join(f"word{i}" for i in range(5000))
    lines = list(_bounded_lines(io.StringIO(f"short\n{text}\nlast"), 1000))
    assert lines[0] == "short" and lines[-1] == "last"
    assert all(len(line) <= 1000 for line in lines)
    assert " ".join(" ".join(lines[1:-1]).split()) == text


@pytest.mark.parametrize("fmt", ["vtt", "srt"])
def test_subtitles_read_in_batches_give_what_the_library_gives_for_the_whole_file(tmp_path: Path, fmt: str) -> None:
    text = _subtitles(3000, fmt)  # ~150 KB: several batches
    path = tmp_path / f"big.{fmt}"
    path.write_text(text, encoding="utf-8")
    if fmt == "vtt":
        captions = webvtt.from_string(text).captions
        whole = [(c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000, c.text) for c in captions]
    else:
        whole = [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in srt.parse(text)]
    streamed = list(read_cues(path))
    assert len(streamed) == len(whole) == 3000
    for cue, (start, end, raw) in zip(streamed, whole, strict=True):
        assert (cue.start, cue.end) == pytest.approx((start, end))
        assert cue.text == " ".join(raw.replace("<b>", " ").replace("</b>", " ").split())
    assert list(read_utterances(path))[:2] == ["cue number 1 second line 1", "cue number 2 second line 2"]


VTT_EDGES = (
    "WEBVTT - a title\nKind: captions\n\nSTYLE\n::cue { color: red }\n\nid-1\n"
    "00:01.000 --> 00:02.500 align:start position:10%\n<v Bob>Hello <i>there</i>\n\nNOTE\nnot a cue\n\n"
    "01:00:03.000 --> 01:00:04.000\nSecond\n\n00:05.000 --> 00:06.000\n\n"
)
SRT_EDGES = (
    "1\r\n00:00:01,000 --> 00:00:02,000\r\nOne\r\n2\r\n00:00:03,000 --> 00:00:04,000\r\nTwo\r\nlines\r\n\r\n"
    "3\r\n00:00:05.000 --> 00:00:06,5\r\n{\\an8}Three\r\n"
)


@pytest.mark.parametrize(("fmt", "text"), [("vtt", VTT_EDGES), ("srt", SRT_EDGES)])
def test_identifiers_settings_comment_blocks_and_missing_blank_lines_read_as_the_libraries_do(
    tmp_path: Path, fmt: str, text: str
) -> None:
    path = tmp_path / f"edges.{fmt}"
    path.write_bytes(text.encode("utf-8"))
    if fmt == "vtt":
        captions = webvtt.from_string(text).captions
        whole = [(c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000, c.text) for c in captions]
    else:
        subtitles = srt.parse(text.replace("\r\n", "\n"))
        whole = [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subtitles]
    cues = list(read_cues(path))
    assert [(round(c.start, 3), round(c.end, 3)) for c in cues] == [(a, b) for a, b, _ in whole]
    assert [c.text for c in cues] == [" ".join(re.sub(r"<[^>]*>|\{\\[^}]*\}", " ", t).split()) for _, _, t in whole]
    assert len(cues) == 3


def test_srt_cue_text_with_blank_lines_in_it_goes_on_as_the_library_and_the_validator_read_it(tmp_path: Path) -> None:
    # The validator accepts such a file (its golden tests); the trainer used to refuse it at training time.
    text = (
        "1\n00:00:01,000 --> 00:00:02,000\nHello there\n\nstill the first cue\n\n\nand more\n\n"
        "2\n00:00:03,000 --> 00:00:04,000\nSecond\n3\n00:00:05,000 --> 00:00:06,000\nThird\n\nlast words\n"
    )
    path = tmp_path / "blank-lines.srt"
    path.write_text(text, encoding="utf-8")
    whole = [(s.start.total_seconds(), s.end.total_seconds(), " ".join(s.content.split())) for s in srt.parse(text)]
    assert [(c.start, c.end, c.text) for c in read_cues(path)] == whole
    assert len(whole) == 3 and whole[0][2] == "Hello there still the first cue and more"
    orphan = tmp_path / "orphan.srt"
    orphan.write_text("no cue yet\n\n1\n00:00:01,000 --> 00:00:02,000\nHello\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"orphan\.srt: not a valid SRT file \(Line 1: not a valid SRT cue"):
        list(read_cues(orphan))


def test_a_cue_without_blank_lines_for_megabytes_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "endless.srt"
    path.write_text("1\n00:00:00,000 --> 00:00:01,000\n" + "words and words\n" * (MAX_BLOCK_CHARS // 10), "utf-8")
    with pytest.raises(ValueError, match=r"endless\.srt: Line 1: more than 1,048,576 characters without a new cue"):
        list(read_cues(path))


def test_cues_past_the_end_of_the_recording_and_past_the_pair_cap_are_counted_not_cut(tmp_path: Path) -> None:
    vtt = tmp_path / "talk.vtt"
    vtt.write_text(_subtitles(100, "vtt"), encoding="utf-8")  # cues every 2 s up to 200 s; every 7th is empty
    audio = NamedFile("talk.wav", tmp_path / "talk.wav")
    pairs, skipped, not_used = cut_by_cues(audio, NamedFile("talk.vtt", vtt), audio_seconds=100.0, max_pairs=30)
    assert len(pairs) == 30 and pairs[-1].offset is not None and pairs[-1].offset < 100
    assert not_used == 50 - 8 - 30  # cues starting before 100 s, minus the empty ones, minus the ones cut
    assert "43 cue(s) start after the end of talk.wav (100.0 s)" in " | ".join(skipped)  # 7 of 50 have no text
    assert skipped.count == 8 + 50
    result = pair_recordings([audio], [NamedFile("talk.vtt", vtt)], max_pairs=30, probe=lambda path: 100.0)
    assert result.report()["pairs_not_used"] == not_used and result.cues_cut == 30
    assert result.used_transcripts == []  # capped: its text still trains as a transcript


def test_skips_keep_a_count_and_only_the_first_examples() -> None:
    skips = Skips()
    for i in range(500):
        skips.add(f"reason {i}")
    assert len(skips) == 500 and list(skips) == [f"reason {i}" for i in range(50)]


def _wav(path: Path, seconds: float) -> Path:
    subprocess.run(
        ["sox", "-R", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "synth", str(seconds), "whitenoise"],
        check=True,
    )
    return path


def test_an_uncut_pair_of_a_long_recording_is_skipped_before_decoding_and_stored_audio_is_capped(
    tmp_path: Path,
) -> None:
    long = _wav(tmp_path / "long.wav", 200.0)
    short = _wav(tmp_path / "short.wav", 2.0)
    pairs = [
        AudioPair(long, "the whole recording", name="whole"),  # 200 s: cannot be aligned in one piece
        AudioPair(long, "the last seconds", offset=195.0, name="tail"),  # 5 s left after the offset
        AudioPair(long, "declared too long", offset=0.0, duration=150.0, name="declared"),
        AudioPair(short, "one"),
        AudioPair(short, "two"),
        AudioPair(short, "three"),
    ]
    stored, skipped = store_pairs(pairs, tmp_path / "out", max_pair_seconds=120.0, max_seconds=8.0)
    assert [u.label for u in stored] == ["tail", "short.wav", "short.wav"]
    assert stored[0].seconds == pytest.approx(5.0, abs=0.05)
    assert skipped[0].startswith("whole: 200 s of audio, longer than the 120 s")
    assert skipped[1].startswith("declared: 150 s of audio")
    assert skipped[2].startswith("1 pair(s) from short.wav on were not used: the first 8 s")


def _dataset(tmp_path: Path, name: str, kind: DatasetType, text: str = "") -> LocalDataset:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return LocalDataset(f"id-{name}", kind, name, path)


def test_manifest_lines_are_read_until_the_pair_cap_and_a_whole_book_as_one_pair_is_skipped(tmp_path: Path) -> None:
    book = _dataset(tmp_path, "book.txt", DatasetType.TRANSCRIPT, "a long sentence of the book\n" * 2000)
    note = _dataset(tmp_path, "note.txt", DatasetType.TRANSCRIPT, "start heparin\n")
    audio = _dataset(tmp_path, "call.wav", DatasetType.AUDIO)
    lines = [{"audio": "call.wav", "transcript": "book.txt"}, {"audio": "call.wav", "transcript": "note.txt"}]
    lines += [{"audio": "call.wav", "text": f"line {i}", "offset": i, "duration": 1} for i in range(10)]
    manifest = _dataset(tmp_path, "m.jsonl", DatasetType.MANIFEST, "\n".join(json.dumps(x) for x in lines) + "\n\n")
    datasets = [book, note, audio, manifest]
    skips = Skips()
    train, test, not_read = _manifest_pairs(datasets, _index(datasets), 4, skips)
    assert [p.text for p in train] == ["start heparin", "line 0", "line 1", "line 2"] and not test
    assert not_read == 7
    assert skips.count == 1
    reason = f"m.jsonl line 1: not used: its transcript book.txt has more than {MAX_PAIR_TEXT_CHARS:,}"
    assert skips.examples[0].startswith(reason)


def test_transcript_text_past_the_word_cap_is_not_read_and_a_note_says_so(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("".join(f"sentence {i} of three words\n" for i in range(1000)), encoding="utf-8")
    data = prepare_data(TrainingInputs(transcripts=[TextFile(path)]), 0.1, tmp_path / "prep", max_training_words=100)
    assert data.training_sentences.count + data.test_sentence_count == 20  # 5 words a sentence
    assert any("more than 100 words" in note for note in data.notes)


def test_test_text_is_read_only_as_far_as_perplexity_scores_it(tmp_path: Path) -> None:
    path = tmp_path / "test.txt"
    path.write_text("one two three\n" * 100, encoding="utf-8")
    inputs = TrainingInputs(transcripts=[TextFile(path)], test_texts=[TextFile(path)])
    data = prepare_data(inputs, 0.1, tmp_path / "prep", max_test_words=10)
    assert data.test_sentence_count == len(data.test_sentences) == 4  # 12 words: one past the cap
    assert any(note.startswith("test text past the first 4 sentences was not read") for note in data.notes)
    assert not any("not read" in n for n in prepare_data(inputs, 0.1, tmp_path / "all", max_test_words=300).notes)


def test_evenly_spaced_spreads_over_all_pairs() -> None:
    pairs = [AudioPair(Path(f"{i}.wav"), "x") for i in range(10)]
    assert [p.audio.name for p in evenly_spaced(pairs, 4)] == ["0.wav", "2.wav", "5.wav", "7.wav"]
    assert evenly_spaced(pairs, 20) == pairs


def test_a_recording_with_more_cues_than_the_pair_cap_gives_the_cap_and_its_text_still_trains(tmp_path: Path) -> None:
    from voxtrain_trainer.inputs import build_inputs
    from voxtrain_trainer.ml.pairing import MAX_PAIRS
    from voxtrain_trainer.ml.pipeline import _audio_notes

    extra = 5
    cues = "".join(f"{_stamp(i * 2.0)} --> {_stamp(i * 2.0 + 1.5)}\ncue {i}\n\n" for i in range(MAX_PAIRS + extra))
    vtt = _dataset(tmp_path, "ward.vtt", DatasetType.TRANSCRIPT, "WEBVTT\n\n" + cues)
    inputs, used = build_inputs([vtt, _dataset(tmp_path, "ward.wav", DatasetType.AUDIO)])  # no header: length unknown
    assert used["train_pairs"] == MAX_PAIRS and inputs.pairing is not None
    assert inputs.pairing["pairs_not_used"] == extra and inputs.pairing["manifest_lines_not_read"] == 0
    assert [t.path for t in inputs.transcripts] == [vtt.path]
    assert any(note.startswith(f"{extra} audio pair(s) past the first {MAX_PAIRS}") for note in _audio_notes(inputs))
