"""Real media for the validator's tests, made once per session with espeak-ng and ffmpeg.

Nothing is checked in: speech is synthesised, encoded to every accepted format, and damaged in
known ways (cut short, bytes flipped, header only, renamed) so each test knows exactly where the
damage is.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

SPEECH = (
    "Custom speech models learn the words of your domain. Upload audio and transcripts, then train the language model."
)


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:  # a failure, not a skip: a skipped suite would hide a missing install step
        pytest.fail(f"{tool} is required by the validator tests (apt-get install {tool})")
    return path


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=60)


class Media:
    """Files made for the tests, by name; ``derive`` writes a damaged copy once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __getitem__(self, name: str) -> Path:
        path = self.root / name
        assert path.exists(), f"no test file {name}"
        return path

    def bytes(self, name: str) -> bytes:
        return self[name].read_bytes()

    def derive(self, name: str, make: Callable[[], bytes]) -> Path:
        path = self.root / name
        if not path.exists():
            path.write_bytes(make())
        return path


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    root = tmp_path_factory.mktemp("validator-media")
    espeak, ffmpeg = _need("espeak-ng"), _need("ffmpeg")
    speech = root / "speech.wav"
    _run(espeak, "-w", str(speech), SPEECH)
    encode = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(speech)]
    _run(*encode, str(root / "speech.mp3"))
    _run(*encode, "-c:a", "aac", str(root / "speech.m4a"))
    _run(*encode, "-c:a", "aac", "-movflags", "+faststart", str(root / "speech_faststart.m4a"))
    _run(*encode, str(root / "speech.flac"))
    _run(*encode, "-c:a", "pcm_s24le", "-ar", "48000", "-ac", "2", str(root / "speech_24bit_stereo.wav"))
    _run(
        ffmpeg,
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-i",
        str(root / "speech_24bit_stereo.wav"),
        str(root / "speech_24bit.flac"),
    )
    _run(*encode, "-ar", "8000", str(root / "speech_8k.wav"))
    _run(*encode, "-c:a", "libvorbis", str(root / "speech.ogg"))
    # MP3s without a Xing/Info frame: the length is stated nowhere (CBR at MPEG-1, -2 and -2.5 rates; VBR)
    no_xing = [*encode, "-c:a", "libmp3lame", "-write_xing", "0"]
    _run(*no_xing, "-b:a", "128k", "-ar", "44100", str(root / "speech_cbr_no_header.mp3"))
    _run(*no_xing, "-b:a", "32k", "-ar", "16000", str(root / "speech_cbr_mpeg2.mp3"))
    _run(*no_xing, "-b:a", "8k", "-ar", "8000", str(root / "speech_cbr_mpeg25.mp3"))
    _run(*no_xing, "-q:a", "2", "-ar", "44100", str(root / "speech_vbr_no_header.mp3"))
    lavfi = [ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "lavfi"]
    _run(*lavfi, "-i", "sine=frequency=440:duration=0.3:sample_rate=16000", str(root / "short.wav"))
    _run(*lavfi, "-i", "anullsrc=r=16000:cl=mono", "-t", "2", "-c:a", "pcm_s16le", str(root / "silence.wav"))
    _run(*lavfi, "-i", "color=c=red:s=8x8", "-frames:v", "1", str(root / "image.png"))
    return Media(root)
