"""Long recordings with a VTT transcript, as customers upload them, built from espeak-ng speech."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.trainer.medical_domain import speak

VOICES = ("en-us+m3", "en-us+f2", "en-us+m1", "en-us+f3", "en-us+m7")
SPEEDS = (150, 165, 140, 175)
GAP_SECONDS = 1.2


def spoken(sentences: list[str], directory: Path, prefix: str, offset: int = 0) -> list[tuple[Path, str]]:
    """Each sentence as a WAV file, voices and speeds rotating (``offset`` shifts the rotation)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i, s in enumerate(sentences):
        k = i + offset
        out.append((speak(s, directory / f"{prefix}{i:03d}.wav", VOICES[k % len(VOICES)], SPEEDS[k % len(SPEEDS)]), s))
    return out


def _seconds(path: Path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True).stdout)


def _stamp(t: float) -> str:
    ms = round(t * 1000)  # whole milliseconds first: 3119.9996 s is 00:52:00.000, never 00:51:60.000
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def long_recordings(sentences: list[str], directory: Path, per_recording: int) -> list[tuple[Path, Path]]:
    """``(shiftN.wav, shiftN.vtt)``: ``per_recording`` sentences each, silence between, cue times in the VTT."""
    pieces = spoken(sentences, directory / "pieces", "p")
    silence = directory / "gap.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(silence), "trim", "0", str(GAP_SECONDS)], check=True
    )
    out = []
    for r in range(0, len(pieces), per_recording):
        name = f"shift{r // per_recording + 1}"
        parts: list[str] = [str(silence)]
        cues, t = [], GAP_SECONDS
        for path, text in pieces[r : r + per_recording]:
            length = _seconds(path)
            cues.append(f"{_stamp(t)} --> {_stamp(t + length)}\n{text}\n")
            t += length + GAP_SECONDS
            parts += [str(path), str(silence)]
        wav = directory / f"{name}.wav"
        subprocess.run(["sox", "-R", *parts, str(wav), "dither"], check=True)
        vtt = directory / f"{name}.vtt"
        vtt.write_text("WEBVTT\n\n" + "\n".join(cues), encoding="utf-8")
        out.append((wav, vtt))
    return out
