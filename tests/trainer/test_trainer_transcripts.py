"""Reading transcript files: .txt lines and .vtt/.srt cue text."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxtrain_trainer.ml.transcripts import read_utterances

VTT = """WEBVTT

00:00:00.000 --> 00:00:02.000
<v Doctor>Start <b>metoprolol</b> today.

NOTE this is a comment

00:00:02.000 --> 00:00:04.000
Check the heart rate
in the morning.
"""

SRT = """1
00:00:01,000 --> 00:00:02,000
Start <i>heparin</i> now.

2
00:00:02,000 --> 00:00:03,500
{\\an8}Hold warfarin.
"""


def test_txt_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("\ufeffFirst line.\n\n  Second line  \n", encoding="utf-8")
    assert list(read_utterances(path)) == ["First line.", "Second line"]


def test_vtt_cue_text(tmp_path: Path) -> None:
    path = tmp_path / "a.vtt"
    path.write_text(VTT, encoding="utf-8")
    assert list(read_utterances(path)) == ["Start metoprolol today.", "Check the heart rate in the morning."]


def test_srt_cue_text(tmp_path: Path) -> None:
    path = tmp_path / "a.srt"
    path.write_text(SRT, encoding="utf-8")
    assert list(read_utterances(path)) == ["Start heparin now.", "Hold warfarin."]


def test_declared_format_wins_over_extension(tmp_path: Path) -> None:
    path = tmp_path / "cues.data"
    path.write_text(SRT, encoding="utf-8")
    assert next(iter(read_utterances(path, "srt"))) == "Start heparin now."


def test_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt.*UTF-8"):
        list(read_utterances(path))


def test_broken_vtt_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.vtt"
    path.write_text("this is not webvtt\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.vtt"):
        list(read_utterances(path))
