"""Does FFmpeg hold an index that grows with a fragmented M4A's length, as it does with a plain one's?

    uv run python bench/validator/bench_fragmented_m4a.py               # 10 min, 2 h and 20 h
    uv run python bench/validator/bench_fragmented_m4a.py --hours 2     # 10 min and 2 h only

A 10-minute AAC-LC file (a tone, 16 kHz mono, 32 kb/s: 15.6 packets a second) is looped by remuxing (no
re-encoding) into longer ones, each as a plain MP4 (one ``moov`` with the sample table) and as a fragmented
one (``empty_moov``, a ``moof`` every second, as browsers' and DASH recorders write them). Each file is
validated in a child process (``validate_audio``), which reports its peak RSS (``ru_maxrss``) next to its RSS
before validating; the baseline is the plain 10-minute file in the same run. Bytes per packet is the growth over
that baseline divided by the extra packets. Everything is made in a temporary directory and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, os, resource, sys, time
from voxtrain_validator.rules import validate_audio
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(sys.argv[1], "rb") as stream:
    start = time.perf_counter()
    outcome = validate_audio(stream, "m4a")
    seconds = time.perf_counter() - start
print(json.dumps({"passed": outcome.passed, "message": outcome.message, "seconds": seconds,
                  "packets": outcome.metadata.get("samples", 0) // 1024, "before_kib": before,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
FRAGMENTED = ("-movflags", "frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "1000000")


def ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def measure(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, nargs="*", default=[2, 20])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = root / "plain-0.17h.m4a"
        ffmpeg(
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=600", "-c:a", "aac", "-b:a", "32k", base
        )
        files = [("plain", 600 / 3600, base)]
        fragmented = root / "fragmented-0.17h.m4a"
        ffmpeg("-i", base, "-c", "copy", *FRAGMENTED, fragmented)
        files.append(("fragmented", 600 / 3600, fragmented))
        for hours in args.hours:
            loops = round(hours * 6) - 1
            for layout, flags in (("plain", ()), ("fragmented", FRAGMENTED)):
                path = root / f"{layout}-{hours:g}h.m4a"
                ffmpeg("-stream_loop", str(loops), "-i", base, "-c", "copy", *flags, path)
                files.append((layout, hours, path))
        print(f"load: {os.getloadavg()}")
        print(
            "| layout | hours | MB | packets | validated in s | RSS before MiB | peak MiB | growth over baseline MiB "
            "| B per extra packet |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        baseline: dict | None = None
        for layout, hours, path in files:
            got = measure(path)
            if baseline is None:
                baseline = got
            growth = (got["peak_kib"] - baseline["peak_kib"]) * 1024
            extra = got["packets"] - baseline["packets"]
            per = f"{growth / extra:.0f}" if extra > 1000 else "—"
            print(
                f"| {layout} | {hours:.2g} | {path.stat().st_size / 1e6:.0f} | {got['packets']:,} | "
                f"{got['seconds']:.1f} | {got['before_kib'] / 1024:.1f} | {got['peak_kib'] / 1024:.1f} | "
                f"{growth / 2**20:.1f} | {per} |" + ("" if got["passed"] else f" refused: {got['message']}")
            )
            path.unlink()


if __name__ == "__main__":
    main()
