"""The trainer's input paths run under an address-space limit smaller than their inputs.

A child process imports everything, then caps its address space (RLIMIT_AS) at what it already
uses plus a small headroom, and reads subtitle files, a transcript with a 16 MB line, prepares the
training text and cuts and stores the pairs of a one-hour recording (plus an un-cut pair of it),
each input larger than the headroom. The same child reading one of them whole, as the trainer did
before, or decoding the recording whole, fails with MemoryError under the same cap, so the test can
tell streamed from whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEADROOM_MB = 32
FILE_MB = 40

_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    import webvtt
    from voxtrain_trainer.ml.acoustic.utterances import store_pairs
    from voxtrain_trainer.ml.audio import load_pcm
    from voxtrain_trainer.ml.pairing import NamedFile, pair_recordings
    from voxtrain_trainer.ml.prepare import prepare_data
    from voxtrain_trainer.ml.transcripts import read_cues, read_utterances
    from voxtrain_trainer.ml.types import AudioPair, TextFile, TrainingInputs

    def vm_bytes():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

    here, mode, headroom = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) * 2**20
    limit = vm_bytes() + headroom
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if mode == "whole-vtt":
        print(len(webvtt.from_string((here / "big.vtt").read_text(encoding="utf-8")).captions))
    elif mode == "whole-audio":
        print(len(load_pcm(here / "long.wav")))
    else:
        out = {
            "vtt_cues": sum(1 for _ in read_cues(here / "big.vtt")),
            "srt_cues": sum(1 for _ in read_cues(here / "big.srt")),
            "txt_utterances": sum(1 for _ in read_utterances(here / "big.txt")),
        }
        data = prepare_data(TrainingInputs(transcripts=[TextFile(here / "big.txt")]), 0.1, here / "prep")
        out["sentences"] = data.training_sentences.count + data.test_sentence_count
        out["words"] = data.training_sentences.word_counts()[1]
        paired = pair_recordings([NamedFile("long.wav", here / "long.wav")], [NamedFile("long.vtt", here / "long.vtt")])
        uncut = AudioPair(here / "long.wav", "the whole hour", name="uncut")
        stored, skipped = store_pairs([uncut, *paired.train_pairs], here / "audio")
        out["pairs_stored"] = len(stored)
        out["stored_seconds"] = round(sum(u.seconds for u in stored), 1)
        out["skipped"] = skipped
        print(json.dumps(out))
    """
)


def _stamp(seconds: float, comma: bool = False) -> str:
    text = f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}"
    return text.replace(".", ",") if comma else text


def _write_subtitles(path: Path, fmt: str, megabytes: int) -> int:
    cues = 0
    with path.open("w", encoding="utf-8") as out:
        if fmt == "vtt":
            out.write("WEBVTT\n\n")
        while out.tell() < megabytes * 2**20:
            start = cues * 2.0
            text = f"the patient in bed {cues % 97} was given heparin and the rate was checked"
            if fmt == "vtt":
                out.write(f"{_stamp(start)} --> {_stamp(start + 1.5)}\n{text}\n\n")
            else:
                out.write(f"{cues + 1}\n{_stamp(start, True)} --> {_stamp(start + 1.5, True)}\n{text}\n\n")
            cues += 1
    return cues


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    here = tmp_path_factory.mktemp("big-inputs")
    counts = {"vtt": _write_subtitles(here / "big.vtt", "vtt", FILE_MB), "srt": 0}
    counts["srt"] = _write_subtitles(here / "big.srt", "srt", FILE_MB)
    line = "start the heparin drip and check the rate " * 10
    with (here / "big.txt").open("w", encoding="utf-8") as out:
        out.write(" ".join(["one very long line of dictation"] * (16 * 2**20 // 32)) + "\n")  # 16 MB, no newline
        lines = 0
        while out.tell() < FILE_MB * 2**20:
            out.write(f"{line}{lines}.\n")
            lines += 1
    counts["txt_lines"] = lines
    subprocess.run(
        ["sox", "-R", "-n", "-r", "16000", "-c", "1", "-b", "16", str(here / "long.wav"), "synth", "3600", "pinknoise"],
        check=True,
    )
    with (here / "long.vtt").open("w", encoding="utf-8") as out:
        out.write("WEBVTT\n\n")
        for n in range(60):  # one cue a minute: an hour of audio, a few seconds of it used
            out.write(f"{_stamp(n * 60.0 + 10)} --> {_stamp(n * 60.0 + 13)}\ncue {n} of the hour\n\n")
    return here, counts


def _child(here: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # reserved-but-unused arenas would count against the cap
    args = [sys.executable, "-c", _CHILD, str(here), mode, str(HEADROOM_MB)]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.parametrize("whole", ["whole-vtt", "whole-audio"])
def test_reading_an_input_whole_does_not_fit_the_cap(inputs: tuple[Path, dict[str, int]], whole: str) -> None:
    here, _ = inputs
    result = _child(here, whole)
    assert result.returncode != 0 and "MemoryError" in result.stderr, result.stderr[-2000:]


def test_streamed_inputs_fit_a_cap_smaller_than_each_of_them(inputs: tuple[Path, dict[str, int]]) -> None:
    here, counts = inputs
    assert min(p.stat().st_size for p in here.iterdir() if p.name.startswith(("big", "long.wav"))) >= 2**20 * FILE_MB
    result = _child(here, "streamed")
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["vtt_cues"] == counts["vtt"] and out["srt_cues"] == counts["srt"]
    assert out["txt_utterances"] >= counts["txt_lines"] + 16  # the long line comes in pieces of at most 1 MiB
    assert out["sentences"] >= counts["txt_lines"]  # training + held out
    assert out["pairs_stored"] == 60 and out["stored_seconds"] == pytest.approx(60 * 3.3, abs=2)
    assert out["skipped"] == [
        "uncut: 3600 s of audio, longer than the 120 s one utterance may last to be aligned with its text in one "
        "piece; cut the recording with offset/duration per manifest line, or pair it with a timed .vtt/.srt of the "
        "same base name"
    ]
