"""Chunked decoding: audio streamed frame by frame is cut at silences (and at a cap inside unbroken speech)
into the same speech the whole-file segmenter finds, at the same times."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

from tests.trainer.medical_domain import speak
from voxtrain_trainer.ml.audio import load_pcm, stream_pcm
from voxtrain_trainer.ml.segmenting import speech_segments, streamed_speech
from voxtrain_trainer.ml.transcribe import load_decoder, transcribe_streaming, transcribe_with


def _three_sentences(tmp_path: Path) -> Path:
    parts = [
        speak(text, tmp_path / f"s{i}.wav", "en-us+m3")
        for i, text in enumerate(
            ["Start heparin today.", "Hold warfarin tonight and check the ratio.", "Continue aspirin daily."]
        )
    ]
    padded = [p.with_suffix(".padded.wav") for p in parts]
    for part, longer in zip(parts, padded, strict=True):  # 1.5 s of (dithered) silence after each sentence
        subprocess.run(["sox", "-R", str(part), str(longer), "pad", "0", "1.5"], check=True)
    out = tmp_path / "three.wav"
    subprocess.run(["sox", *map(str, padded), str(out)], check=True)
    return out


def test_streamed_pieces_are_the_whole_files_speech_at_the_same_times(tmp_path) -> None:
    audio = _three_sentences(tmp_path)
    assert b"".join(stream_pcm(audio)) == load_pcm(audio)
    whole = speech_segments(load_pcm(audio))

    def odd_chunks():  # chunk sizes that never line up with the segmenter's frames
        pcm = load_pcm(audio)
        for i in range(0, len(pcm), 7777):
            yield pcm[i : i + 7777]

    streamed = list(streamed_speech(odd_chunks(), max_seconds=30.0))
    assert len(whole) >= 2
    assert [round(t, 2) for t, _ in streamed] == [round(t, 2) for t, _ in whole]
    assert [p for _, p in streamed] == [p for _, p in whole]


def test_unbroken_speech_is_cut_at_the_cap_and_the_pieces_follow_on(tmp_path) -> None:
    audio = _three_sentences(tmp_path)
    pieces = list(streamed_speech(stream_pcm(audio), max_seconds=0.5))
    assert all(len(p) < (0.5 + 0.03) * 16000 * 2 for _, p in pieces)  # the cap, within one 30 ms frame
    total = sum(len(p) for _, p in speech_segments(load_pcm(audio)))
    assert sum(len(p) for _, p in pieces) == total  # nothing lost at the cuts
    for (start, piece), (nxt, _) in itertools.pairwise(pieces):
        assert nxt >= start + len(piece) / 32000 - 1e-6


def test_streaming_transcription_says_what_the_whole_file_decoding_says(tmp_path) -> None:
    audio = _three_sentences(tmp_path)
    decoder = load_decoder(None)
    progress: list[float] = []
    streamed = transcribe_streaming(decoder, audio, progress.append, max_utterance_seconds=5.0)
    whole = transcribe_with(decoder, audio, max_utterance_seconds=5.0)  # ~11 s: both cut at silences
    assert streamed.text == whole.text and "ratio" in streamed.text
    assert [w.word for w in streamed.words] == [w.word for w in whole.words]
    assert all(abs(a.start - b.start) < 0.011 for a, b in zip(streamed.words, whole.words, strict=True))
    assert progress == sorted(progress) and len(progress) >= 3
