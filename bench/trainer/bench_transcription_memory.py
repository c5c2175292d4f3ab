"""Peak memory of preparing audio for transcription: the whole-file path (decode all PCM, then VAD-split it, as
`transcribe_with` does) against the streamed path (decoded frame by frame and cut at silences as it goes, as
`transcribe_streaming` and the asynchronous jobs do), on 10 and 30 minutes of espeak-ng speech. Each runs in
its own child process (its ru_maxrss) holding the base decoder, whose loading itself peaks at ~160 MB here:
a path that stays under that shows the loading peak. Recognition is per piece (at most 30 s) on both paths and
is left out: it dominates the time.

    uv run --frozen --no-sync python bench/trainer/bench_transcription_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from pathlib import Path
from voxtrain_trainer.ml.transcribe import load_decoder
load_decoder(None)
base = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20  # resident now
mode, path = sys.argv[1], Path(sys.argv[2])
t = time.perf_counter()
if mode == "whole":
    from voxtrain_trainer.ml.audio import load_pcm
    from voxtrain_trainer.ml.segmenting import speech_segments
    speech = sum(len(p) for _, p in speech_segments(load_pcm(path)))
else:
    from voxtrain_trainer.ml.audio import stream_pcm
    from voxtrain_trainer.ml.segmenting import streamed_speech
    speech = sum(len(p) for _, p in streamed_speech(stream_pcm(path), 30.0))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": peak, "loaded_mb": base,
                  "speech_seconds": speech / 32000}))
"""


def recording(tmp: Path, minutes: float) -> Path:
    clip = tmp / "clip.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-w", str(tmp / "raw.wav"),
         "Continue warfarin and check the international normalized ratio tomorrow morning. "
         "Hold metformin before the contrast scan and recheck the kidney function."],
        check=True,
    )  # fmt: skip
    subprocess.run(["sox", "-R", str(tmp / "raw.wav"), "-r", "16000", str(clip), "pad", "0", "1"], check=True)
    once = float(subprocess.check_output(["soxi", "-D", str(clip)]))
    out = tmp / f"{minutes:g}min.wav"
    subprocess.run(["sox", str(clip), str(out), "repeat", str(round(minutes * 60 / once) - 1)], check=True)
    return out


def measure(mode: str, audio: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(audio)], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2 and 6 minutes instead of 10 and 30")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in (2, 6) if args.quick else (10, 30):
            audio = recording(Path(tmp), minutes)
            whole, streamed = measure("whole", audio), measure("streamed", audio)
            assert abs(whole["speech_seconds"] - streamed["speech_seconds"]) < 1.0, (whole, streamed)
            print(
                f"{minutes:>3} min: peak RSS whole-file {whole['peak_rss_mb']:.0f} MB, "
                f"streamed {streamed['peak_rss_mb']:.0f} MB (loaded decoder {whole['loaded_mb']:.0f} MB resident); "
                f"peak ratio streamed/whole {streamed['peak_rss_mb'] / whole['peak_rss_mb']:.2f}, "
                f"time ratio {streamed['seconds'] / whole['seconds']:.2f}"
            )


if __name__ == "__main__":
    main()
