"""Benchmark the validator's content checks against FFmpeg's own full decode.

    uv run python bench/validator/bench_validate.py            # 20-minute files, a 2 GB WAV
    uv run python bench/validator/bench_validate.py --quick    # 3-minute files, a 0.3 GB WAV
    uv run python bench/validator/bench_validate.py --text-only --text-mb 200   # transcripts only

1. Long speech (espeak-ng, looped with ffmpeg) in WAV, MP3, M4A and FLAC: the time of
   ``validate_audio`` and of ``ffmpeg -v error -i FILE -f null -`` on the same file in the same run,
   as MB/s, times real time, and their ratio.
2. Big transcripts (TXT, VTT, SRT) and a manifest (JSONL): ``validate_transcript`` and
   ``validate_manifest`` in a child process each, as MB/s (wall clock and CPU), against a baseline
   measured in the same run: the same bytes read and decoded through the same reader
   (``Utf8Lines.blocks``, the floor any text rule stands on), and ``wc -l`` as the speed of the
   disk (page cache). Peak RSS (VmHWM) of each child next to its RSS before validating.
3. A multi-GB WAV validated in a child process, directly and through S3RangeReader (over a local
   ranged-read source), reporting the child's peak RSS (VmHWM) next to its RSS before validating
   (after imports), and ffmpeg's peak RSS on the same file.

Everything is made in a temporary directory and deleted afterwards (unless --keep).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEECH = (
    "Thank you for calling the support line. Your call may be recorded for quality and training "
    "purposes. Please have your account number ready. Our quarterly revenue grew by twelve "
    "percent, driven by strong demand for custom speech models in healthcare and finance."
)
FORMATS = {
    "wav": ["-c:a", "pcm_s16le"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "m4a": ["-c:a", "aac", "-b:a", "128k"],
    "flac": ["-c:a", "flac"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: 3 min audio, 0.3 GB WAV, 20 MB text")
    parser.add_argument("--minutes", type=float, help="length of the long audio files (default 20)")
    parser.add_argument("--big-gb", type=float, help="size of the big WAV in GB (default 2.0; 0 skips)")
    parser.add_argument("--text-mb", type=float, help="size of each big transcript in MB (default 100; 0 skips)")
    parser.add_argument("--text-only", action="store_true", help="only the transcripts and the manifest")
    parser.add_argument("--rate", type=int, default=44100, help="sample rate of the long audio")
    parser.add_argument("--channels", type=int, default=2, help="channels of the long audio")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (best is kept)")
    parser.add_argument("--workdir", type=Path, help="where to make the files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--child", nargs=3, metavar=("FILE", "EXT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    minutes = args.minutes if args.minutes is not None else (3 if args.quick else 20)
    big_gb = args.big_gb if args.big_gb is not None else (0.3 if args.quick else 2.0)
    text_mb = args.text_mb if args.text_mb is not None else (20 if args.quick else 100)
    for tool in () if args.text_only else ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (apt-get install {tool})")

    root = Path(tempfile.mkdtemp(prefix="voxtrain-bench-", dir=args.workdir))
    results: dict[str, object] = {"minutes": minutes, "rate": args.rate, "channels": args.channels}
    try:
        print(f"# validator benchmark — files in {root}")
        print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
        if not args.text_only:
            print(f"# PyAV {_pyav_version()} vs {_ffmpeg_version()}\n")
            clip = make_clip(root)
            results["audio"] = bench_audio(root, clip, minutes, args.rate, args.channels, args.repeat)
        if text_mb > 0:
            results["text"] = bench_text(root, text_mb, args.repeat)
        if big_gb > 0 and not args.text_only:
            results["big_wav"] = bench_big_wav(root, clip, big_gb)
    finally:
        if args.keep:
            print(f"\nkept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


# ---------------------------------------------------------------------------- making files


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_clip(root: Path) -> Path:
    clip = root / "clip.wav"
    subprocess.run(["espeak-ng", "-w", str(clip), SPEECH], check=True)
    return clip


def make_long(root: Path, clip: Path, seconds: float, rate: int, channels: int, ext: str, name: str = "long") -> Path:
    out = root / f"{name}.{ext}"
    ffmpeg(
        "-stream_loop",
        "-1",
        "-i",
        str(clip),
        "-t",
        f"{seconds:.3f}",
        "-ar",
        str(rate),
        "-ac",
        str(channels),
        *FORMATS[ext],
        str(out),
    )
    return out


# ---------------------------------------------------------------------------- audio


def bench_audio(root: Path, clip: Path, minutes: float, rate: int, channels: int, repeat: int) -> list[dict]:
    from voxtrain_validator.rules import validate_audio

    seconds = minutes * 60
    print(f"## {minutes:g}-minute speech, {rate} Hz, {channels} ch: validate_audio vs ffmpeg -f null\n")
    header = (
        f"{'format':<6} {'MB':>8} {'validate s':>10} {'MB/s':>8} {'x RT':>7} "
        f"{'ffmpeg s':>9} {'MB/s':>8} {'x RT':>7} {'ratio':>6}  verdict"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for ext in FORMATS:
        path = make_long(root, clip, seconds, rate, channels, ext)
        mb = path.stat().st_size / 1e6

        def run_validate(path: Path = path, ext: str = ext) -> float:
            start = time.perf_counter()
            with path.open("rb") as stream:
                outcome = validate_audio(stream, ext)
            elapsed = time.perf_counter() - start
            assert outcome.passed, outcome.message
            return elapsed

        def run_ffmpeg(path: Path = path) -> float:
            start = time.perf_counter()
            done = subprocess.run(
                ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                capture_output=True,
                text=True,
            )
            elapsed = time.perf_counter() - start
            assert done.returncode == 0 and not done.stderr.strip(), done.stderr
            return elapsed

        ours = min(run_validate() for _ in range(repeat))
        theirs = min(run_ffmpeg() for _ in range(repeat))
        row = {
            "format": ext,
            "mb": round(mb, 1),
            "validate_s": round(ours, 3),
            "ffmpeg_s": round(theirs, 3),
            "validate_mb_s": round(mb / ours, 1),
            "ffmpeg_mb_s": round(mb / theirs, 1),
            "validate_x_rt": round(seconds / ours, 1),
            "ffmpeg_x_rt": round(seconds / theirs, 1),
            "ratio": round(ours / theirs, 2),
        }
        rows.append(row)
        print(
            f"{ext:<6} {mb:8.1f} {ours:10.2f} {mb / ours:8.1f} {seconds / ours:7.0f} "
            f"{theirs:9.2f} {mb / theirs:8.1f} {seconds / theirs:7.0f} {ours / theirs:6.2f}  passed"
        )
        path.unlink()
    print()
    return rows


# ---------------------------------------------------------------------------- text


TEXT_FORMATS = ("txt", "vtt", "srt", "jsonl")


def bench_text(root: Path, mb: float, repeat: int) -> list[dict]:
    target = int(mb * 1e6)
    sentence = "the quarterly revenue grew by twelve percent driven by custom speech models"
    print(
        f"## transcripts and a manifest of ~{mb:g} MB: validation vs reading the same bytes "
        "through the same reader (decoded, cut into lines), each in a child process\n"
    )
    header = (
        f"{'format':<6} {'MB':>7} {'wc -l MB/s':>10} {'read MB/s':>9} {'validate s':>10} {'MB/s':>7} "
        f"{'CPU MB/s':>8} {'ratio':>6} {'RSS before MB':>13} {'peak RSS MB':>11} {'cues/lines':>11} "
        f"{'words':>11}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for ext in TEXT_FORMATS:
        path = root / f"big.{ext}"
        write_transcript(path, ext, sentence, target)
        size = path.stat().st_size / 1e6
        wc = min(_timed(["wc", "-l", str(path)]) for _ in range(repeat))
        read = min((_child_run(path, ext, "text-read") for _ in range(repeat)), key=lambda r: r["seconds"])
        done = min((_child_run(path, ext, "text-validate") for _ in range(repeat)), key=lambda r: r["seconds"])
        assert done["passed"], done["message"]
        ratio = done["seconds"] / read["seconds"]
        count = done["metadata"].get("cues", done["metadata"].get("entries", done["metadata"]["lines"]))
        words = done["metadata"].get("words", done["metadata"].get("inline_text_words", 0))
        print(
            f"{ext:<6} {size:7.1f} {size / wc:10.0f} {size / read['seconds']:9.1f} {done['seconds']:10.2f} "
            f"{size / done['seconds']:7.1f} {size / done['cpu_seconds']:8.1f} {ratio:6.2f} "
            f"{done['rss_before_mb']:13.0f} {done['peak_rss_mb']:11.0f} {count:>11,} {words:>11,}"
        )
        rows.append(
            {
                "format": ext,
                "mb": round(size, 1),
                "seconds": done["seconds"],
                "mb_s": round(size / done["seconds"], 1),
                "cpu_mb_s": round(size / done["cpu_seconds"], 1),
                "read_mb_s": round(size / read["seconds"], 1),
                "wc_mb_s": round(size / wc, 1),
                "ratio_to_read": round(ratio, 2),
                "rss_before_mb": done["rss_before_mb"],
                "peak_rss_mb": done["peak_rss_mb"],
                "read_peak_rss_mb": read["peak_rss_mb"],
            }
        )
        path.unlink()
    print("\nratio: validation time / read time of the same bytes through the same reader (1.0 is the floor)\n")
    return rows


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def _child_run(path: Path, ext: str, mode: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(path), ext, mode], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _manifest_resolver():
    """The datasets a benchmark manifest refers to: ten long calls that passed validation."""
    from voxtrain_shared.vocab import DatasetType
    from voxtrain_validator.rules import DatasetRef, DatasetState

    calls = {
        f"call-{n}.wav": DatasetRef(f"a-{n}", DatasetType.AUDIO, f"call-{n}.wav", DatasetState.PASSED, 36_000.0)
        for n in range(10)
    }
    return calls.get


def write_transcript(path: Path, ext: str, sentence: str, target: int) -> None:
    with path.open("w", encoding="utf-8", buffering=1 << 20) as out:
        written, i = 0, 0
        if ext == "vtt":
            written += out.write("WEBVTT\n\n")
        while written < target:
            start_ms, end_ms = i * 2000, i * 2000 + 1500
            if ext == "txt":
                block = f"{sentence} number {i}\n"
            elif ext == "jsonl":
                block = (
                    json.dumps(
                        {
                            "audio": f"call-{i % 10}.wav",
                            "text": f"{sentence} number {i}",
                            "offset": i % 30_000,
                            "duration": 2.5,
                        }
                    )
                    + "\n"
                )
            elif ext == "vtt":
                block = f"{_ts(start_ms, '.')} --> {_ts(end_ms, '.')}\n{sentence} number {i}\n\n"
            else:
                block = f"{i + 1}\n{_ts(start_ms, ',')} --> {_ts(end_ms, ',')}\n{sentence} number {i}\n\n"
            written += out.write(block)
            i += 1


def _ts(ms: int, sep: str) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


# ---------------------------------------------------------------------------- big WAV, memory


def bench_big_wav(root: Path, clip: Path, gb: float) -> dict:
    rate, channels = 48000, 2
    seconds = gb * 1e9 / (rate * channels * 2)
    print(f"## a {gb:g} GB WAV ({seconds / 3600:.1f} h, {rate} Hz, {channels} ch): peak RSS in a child process\n")
    start = time.perf_counter()
    path = make_long(root, clip, seconds, rate, channels, "wav", name="big")
    size_gb = path.stat().st_size / 1e9
    print(f"made {size_gb:.2f} GB in {time.perf_counter() - start:.0f} s\n")
    print(f"{'run':<28} {'seconds':>8} {'MB/s':>8} {'x RT':>7} {'RSS before MB':>14} {'peak RSS MB':>12}")
    result: dict[str, object] = {"gb": round(size_gb, 2)}
    for mode in ("file", "s3-reader"):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "wav", mode], capture_output=True, text=True, check=True
        )
        child_result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert child_result["passed"], child_result
        secs = child_result["seconds"]
        print(
            f"{'validate_audio (' + mode + ')':<28} {secs:8.1f} {size_gb * 1e3 / secs:8.1f} "
            f"{seconds / secs:7.0f} {child_result['rss_before_mb']:14.0f} {child_result['peak_rss_mb']:12.0f}"
        )
        result[mode] = child_result
    secs, peak_mb = ffmpeg_peak_rss(path)
    print(
        f"{'ffmpeg -f null':<28} {secs:8.1f} {size_gb * 1e3 / secs:8.1f} {seconds / secs:7.0f} {'':>14} {peak_mb:12.0f}"
    )
    result["ffmpeg"] = {"seconds": round(secs, 2), "peak_rss_mb": round(peak_mb, 1)}
    path.unlink()
    return result


def ffmpeg_peak_rss(path: Path) -> tuple[float, float]:
    """Time and peak RSS (MB) of ffmpeg decoding ``path``, polling its VmHWM while it runs."""
    start = time.perf_counter()
    proc = subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"])
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, proc_status_mb(proc.pid, "VmHWM"))
        time.sleep(0.02)
    assert proc.returncode == 0
    return time.perf_counter() - start, peak


def proc_status_mb(pid: int | str, field: str) -> float:
    """A memory figure from /proc/PID/status in MB (0 if the process is gone).

    VmHWM is the peak RSS of the process's own address space. getrusage's ru_maxrss is not used:
    on Linux a child's ru_maxrss starts at its parent's RSS at fork, which hides small peaks.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


class LocalRangeSource:
    """A stand-in for MinIO that serves ranged reads from a local file (same interface)."""

    def __init__(self, path: str) -> None:
        self._path = path

    def get_object(self, bucket_name, object_name, offset=0, length=0, request_headers=None):
        with open(self._path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        return _Response(data)

    def stat_object(self, bucket_name, object_name):
        return type("Stat", (), {"size": os.path.getsize(self._path), "etag": None})()


class _Response(io.BytesIO):
    def release_conn(self) -> None:
        pass


def child(path: str, ext: str, mode: str) -> None:
    """Validate one file and print a JSON line with time and peak RSS (runs in its own process)."""
    if mode.startswith("text-"):
        text_child(path, ext, mode)
        return
    from voxtrain_shared.range_reader import S3RangeReader
    from voxtrain_validator.rules import validate_audio

    rss_before = proc_status_mb("self", "VmRSS")
    start = time.perf_counter()
    if mode == "file":
        with open(path, "rb") as stream:
            outcome = validate_audio(stream, ext)
    else:
        stream = S3RangeReader(LocalRangeSource(path), "bench", "big", os.path.getsize(path))
        outcome = validate_audio(stream, ext)
    seconds = time.perf_counter() - start
    peak = proc_status_mb("self", "VmHWM")
    print(
        json.dumps(
            {
                "passed": outcome.passed,
                "message": outcome.message,
                "seconds": round(seconds, 2),
                "rss_before_mb": round(rss_before, 1),
                "peak_rss_mb": round(peak, 1),
                "duration_seconds": outcome.metadata.get("duration_seconds"),
            }
        )
    )


def text_child(path: str, ext: str, mode: str) -> None:
    """Read (``text-read``) or validate (``text-validate``) a text file; print time, CPU time, peak RSS."""
    from voxtrain_validator.rules import validate_manifest, validate_transcript
    from voxtrain_validator.rules.text_stream import Utf8Lines

    resolve = _manifest_resolver()
    rss_before = proc_status_mb("self", "VmRSS")
    start, cpu_start = time.perf_counter(), time.process_time()
    result: dict[str, object] = {"passed": True, "message": None, "metadata": {}}
    with open(path, "rb") as stream:
        if mode == "text-read":
            lines = Utf8Lines(stream)
            # (line by line with a reader from before ``blocks``, to measure older versions too)
            for _ in lines.blocks() if hasattr(lines, "blocks") else lines:
                pass
            result["metadata"] = {"lines": lines.lines}
        elif ext == "jsonl":
            outcome = validate_manifest(stream, resolve)
            result = {"passed": outcome.passed, "message": outcome.message, "metadata": outcome.metadata}
        else:
            outcome = validate_transcript(stream, ext)
            result = {"passed": outcome.passed, "message": outcome.message, "metadata": outcome.metadata}
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    print(
        json.dumps(
            {
                **result,
                "seconds": round(seconds, 3),
                "cpu_seconds": round(cpu_seconds, 3),
                "rss_before_mb": round(rss_before, 1),
                "peak_rss_mb": round(proc_status_mb("self", "VmHWM"), 1),
            },
            default=str,
        )
    )


def _pyav_version() -> str:
    import av

    return f"{av.__version__} (FFmpeg {av.ffmpeg_version_info})"


def _ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    return out.split("\n", 1)[0].split(" Copyright")[0]


if __name__ == "__main__":
    main()
