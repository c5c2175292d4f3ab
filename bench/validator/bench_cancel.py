"""How fast a validation check stops once its job is cancelled, on long audio (the decode is the slow part).

    uv run python bench/validator/bench_cancel.py              # 2-hour files
    uv run python bench/validator/bench_cancel.py --minutes 10  # quicker

For WAV, MP3, M4A and FLAC: the real check of the object-storage adapter (``object_validator`` over a local
ranged-read source standing in for MinIO) runs in a thread, first to the end (the baseline: the full check), then
again with its ``cancelled`` flag set at a quarter of that time. Reported: the full check's seconds, the seconds
from setting the flag to the thread's end, and their ratio (the stop latency as a fraction of the full check).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_validate import FORMATS, LocalRangeSource

from voxtrain_shared.vocab import DatasetType
from voxtrain_validator.domain import Dataset
from voxtrain_validator.storage import Cancelled, object_validator


def make(path: Path, minutes: float, ext: str) -> None:
    source = f"anoisesrc=d={minutes * 60}:r=16000:a=0.3"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-ac", "1", *FORMATS[ext], str(path)], check=True
    )


def check(path: Path, cancel_after: float | None) -> tuple[float, float | None, Any]:
    """(seconds of the whole run, seconds from the cancel to the end, outcome or the exception)."""
    dataset = Dataset(
        uuid.uuid4(), "bench", uuid.uuid4(), DatasetType.AUDIO, path.name, "bench", "k", path.stat().st_size
    )
    validate = object_validator(LocalRangeSource(str(path)))  # type: ignore[arg-type]  # a MinIO stand-in
    cancelled, got = threading.Event(), []

    def run() -> None:
        try:
            got.append(validate(dataset, {}, cancelled))
        except Cancelled as exc:
            got.append(exc)

    start = time.perf_counter()
    thread = threading.Thread(target=run)
    thread.start()
    flagged = None
    if cancel_after is not None:
        thread.join(cancel_after)
        flagged = time.perf_counter()
        cancelled.set()
    thread.join()
    end = time.perf_counter()
    return end - start, (end - flagged) if flagged is not None else None, got[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=120.0)
    args = parser.parse_args()
    print(f"{'format':6} {'size MB':>8} {'full check s':>12} {'stop after cancel s':>20} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for ext in FORMATS:
            path = Path(tmp) / f"long.{ext}"
            make(path, args.minutes, ext)
            full, _, outcome = check(path, None)
            assert not isinstance(outcome, Exception) and outcome["passed"], outcome
            _, stop, stopped = check(path, full / 4)
            assert isinstance(stopped, Cancelled), stopped
            assert stop is not None
            mb = path.stat().st_size / 1e6
            print(f"{ext:6} {mb:8.1f} {full:12.2f} {stop:20.3f} {stop / full:7.3f}")


if __name__ == "__main__":
    main()
