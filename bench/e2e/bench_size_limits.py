"""A file of each accepted type at the spec's size limit (10 GB), through the services: upload → 4 or a refusal.

One command per scenario (the shared servers from ``VOXTRAIN_TEST_*`` when set, else the local dev stack)::

    uv run python bench/e2e/bench_size_limits.py --scenario txt            # a 10 GiB .txt transcript
    uv run python bench/e2e/bench_size_limits.py --scenario vtt            # a 10 GiB .vtt transcript, no audio
    uv run python bench/e2e/bench_size_limits.py --scenario srt
    uv run python bench/e2e/bench_size_limits.py --scenario audio          # a 10 GiB .wav (RF64) + manifest + text
    uv run python bench/e2e/bench_size_limits.py --scenario txt --size 200MB   # a small rehearsal

"The limit" is the datasets service's ``max_file_bytes`` (10 GiB, the spec's "10GB"); ``--size`` overrides it.
The services, tenant, credits and the follow-up to 4/5 are those of ``bench_big_training.py`` (imported, not
copied). Every input is generated while it is streamed to ``POST /v1/models/{id}/datasets`` (never held in memory
or written to disk).

- **txt**: ``bench_big_training.text_chunks`` (Zipf-drawn words of the base dictionary, domain sentences).
- **vtt** / **srt**: the same text, two lines to a cue, one cue a second.
- **audio**: ``--audio-rate`` Hz mono 16-bit WAV (RF64: a RIFF header cannot say more than 4 GiB) of white noise
  at -40 dBFS with espeak-ng sentences placed at ``--segments`` offsets spread over the whole recording;
  ``segments.jsonl`` names each by ``offset``/``duration`` with its text, and ``notes.txt`` carries the domain text.

Besides the figures of ``run_scenario`` (upload, validation, training, stage seconds, the worker's peak RSS, the
model's size) it records the run metrics' notes and pairing, the disk: the trainer's work directory's peak size
and the peak fall of free space on the work directory's file system, and the ``uptime`` load. The run's bucket,
services and work directories are removed after it. Results: ``bench/results/size_limits.json`` (one entry per
scenario; other scenarios' last runs stay).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.datasets.bench_upload import endpoints  # noqa: E402
from bench.e2e.bench_big_training import (  # noqa: E402
    ESPEAK_RATE,
    Scenario,
    System,
    _espeak,
    domain_sentences,
    report,
    run_scenario,
    text_chunks,
    worker_budget_mb,
)
from voxtrain_shared.settings import DatasetsSettings  # noqa: E402

RESULTS = REPO / "bench" / "results" / "size_limits.json"
LIMIT = DatasetsSettings.model_fields["max_file_bytes"].default
LINES_PER_CUE = 2


def parse_size(text: str) -> int:
    units = {"GIB": 1024**3, "MIB": 1024**2, "GB": 1000**3, "MB": 1000**2, "KB": 1000, "B": 1}
    t = text.strip().upper()
    for unit, factor in units.items():
        if t.endswith(unit):
            return int(float(t[: -len(unit)]) * factor)
    return int(t)


# ------------------------------------------------------------------ generated inputs


def _vtt_stamp(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.000"


def _srt_stamp(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d},000"


def subtitle_chunks(size: int, seed: int, kind: str) -> Iterator[bytes]:
    """Exactly ``size`` bytes of a VTT or SRT file: ``text_chunks``' lines, two to a cue, one cue a second.

    The last cue is padded with words (or, when too little room is left for one, the file ends with blank
    lines) so that the length is exact."""
    head = b"WEBVTT\n\n" if kind == "vtt" else b""
    stamp = _vtt_stamp if kind == "vtt" else _srt_stamp
    sent, cue = len(head), 0
    yield head
    reserve = 200  # room kept for the closing cue
    pending: list[str] = []
    for block in text_chunks(size * 2, seed):  # more text than needed: stops at ``size``
        lines = block.decode().splitlines()
        out: list[bytes] = []
        for i in range(0, len(lines), LINES_PER_CUE):
            pending = lines[i : i + LINES_PER_CUE]
            cue += 1
            index = f"{cue}\n" if kind == "srt" else ""
            piece = (f"{index}{stamp(cue - 1)} --> {stamp(cue)}\n" + "\n".join(pending) + "\n\n").encode()
            if sent + len(piece) > size - reserve:
                break
            out.append(piece)
            sent += len(piece)
        else:
            yield b"".join(out)
            continue
        yield b"".join(out)
        break
    cue += 1
    index = f"{cue}\n" if kind == "srt" else ""
    closing = f"{index}{stamp(cue - 1)} --> {stamp(cue)}\n".encode()
    room = size - sent - len(closing) - 2
    filler = (b"end " * (room // 4 + 1))[: max(room, 0)].rstrip(b" ")
    tail = closing + filler + b"\n\n"
    tail += b"\n" * (size - sent - len(tail))
    assert sent + len(tail) == size, (sent, len(tail), size)
    yield tail


def _speech(rate: int, count: int) -> list[tuple[str, bytes]]:
    """``count`` espeak-ng domain sentences as 16-bit mono PCM at ``rate``."""
    pool = domain_sentences()
    out = []
    for k in range(count):
        text = pool[k % len(pool)]
        pcm = np.frombuffer(_espeak((text, "en-us+m3", 160)), dtype="<i2")
        at = np.arange(0, len(pcm) * rate / ESPEAK_RATE) * ESPEAK_RATE / rate
        out.append((text, np.interp(at, np.arange(len(pcm)), pcm).astype("<i2").tobytes()))
    return out


def _rf64_header(data_bytes: int, rate: int) -> bytes:
    """An RF64 WAV header (EBU Tech 3306) of 16-bit mono PCM: a RIFF size field cannot say more than 4 GiB."""
    ds64 = b"ds64" + (28).to_bytes(4, "little") + (data_bytes + 72).to_bytes(8, "little")
    ds64 += data_bytes.to_bytes(8, "little") + (data_bytes // 2).to_bytes(8, "little") + (0).to_bytes(4, "little")
    fmt = b"fmt " + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    fmt += rate.to_bytes(4, "little") + (rate * 2).to_bytes(4, "little") + (2).to_bytes(2, "little")
    fmt += (16).to_bytes(2, "little")
    return b"RF64" + b"\xff\xff\xff\xff" + b"WAVE" + ds64 + fmt + b"data" + b"\xff\xff\xff\xff"


def wav_recording(size: int, rate: int, seed: int, speech: int) -> tuple[list[dict[str, Any]], Iterator[bytes]]:
    """Exactly ``size`` bytes of RF64 WAV (16-bit mono at ``rate``), made while it is sent: white noise at
    -40 dBFS with ``speech`` espeak-ng sentences spread evenly over the whole recording.

    Returns ``(segments, chunks)``, ``segments`` one ``{offset, duration, text}`` per sentence (known before the
    first byte, so that the manifest can go first)."""
    header = _rf64_header(size - 80, rate)
    assert len(header) == 80 and size % 2 == 0
    samples = (size - 80) // 2
    seconds = samples / rate
    spoken = _speech(rate, speech)
    offsets = [int(x) for x in np.linspace(5, seconds - 60, speech)]
    segments = [
        {"offset": o, "duration": round(len(pcm) / 2 / rate + 0.2, 3), "text": text}
        for o, (text, pcm) in zip(offsets, spoken, strict=True)
    ]
    noise = (np.random.default_rng(seed).standard_normal(rate * 30) * 327).astype("<i2").tobytes()

    def chunks() -> Iterator[bytes]:
        yield header
        written = 0  # bytes of audio data
        for offset, (_, pcm) in [*zip(offsets, spoken, strict=True), (None, ("", b""))]:
            end = size - 80 if offset is None else offset * rate * 2
            while written < end:
                piece = noise[: min(len(noise), end - written)]
                written += len(piece)
                yield piece
            yield pcm
            written += len(pcm)

    return segments, chunks()


# ------------------------------------------------------------------ measuring the disk


class DiskSampler(threading.Thread):
    """Peak size of a directory tree and the peak fall of free space on its file system, every ``every`` s."""

    def __init__(self, directory: Path, every: float = 5.0, min_free: int = 0, on_low: Any = None) -> None:
        super().__init__(daemon=True)
        self.directory, self.every = directory, every
        self.guard, self.on_low, self.tripped = min_free, on_low, False
        self.free_start = shutil.disk_usage(directory).free
        self.min_free = self.free_start
        self.peak_tree = 0
        self._halt = threading.Event()

    def _tree(self) -> int:
        total = 0
        for root, _, files in os.walk(self.directory):
            for f in files:
                with contextlib.suppress(OSError):  # removed while walking
                    total += os.lstat(os.path.join(root, f)).st_size
        return total

    def run(self) -> None:
        while not self._halt.wait(self.every):
            free = shutil.disk_usage(self.directory).free
            self.min_free = min(self.min_free, free)
            if free < self.guard and not self.tripped and self.on_low is not None:
                self.tripped = True  # the shared machine's disk comes first: the run is stopped, and says so
                print(
                    f"  free disk {free / 1e9:.1f} GB under the guard {self.guard / 1e9:.1f} GB: stopping", flush=True
                )
                self.on_low()
            self.peak_tree = max(self.peak_tree, self._tree())

    def stop(self) -> dict[str, float]:
        self._halt.set()
        self.join(30)
        return {
            "trainer_work_dir_peak_gb": round(self.peak_tree / 1e9, 2),
            "free_space_fall_peak_gb": round((self.free_start - self.min_free) / 1e9, 2),
            "free_space_at_start_gb": round(self.free_start / 1e9, 2),
            "stopped_by_disk_guard": self.tripped,
        }


# ------------------------------------------------------------------ scenarios


def scenario(args: argparse.Namespace) -> Scenario:
    size = args.size
    if args.scenario == "txt":
        return Scenario(
            f"size limit txt {size:,} B",
            [("corpus.txt", "text/plain", size, text_chunks(size, args.seed))],
            {"kind": "txt", "file_bytes": size},
        )
    if args.scenario in ("vtt", "srt"):
        ctype = "text/vtt" if args.scenario == "vtt" else "application/x-subrip"
        return Scenario(
            f"size limit {args.scenario} {size:,} B",
            [(f"captions.{args.scenario}", ctype, size, subtitle_chunks(size, args.seed, args.scenario))],
            {"kind": args.scenario, "file_bytes": size},
        )
    segments, audio = wav_recording(size, args.audio_rate, args.seed, args.segments)
    manifest = "".join(json.dumps({"audio": "long.wav", **s}) + "\n" for s in segments).encode()
    notes = "\n".join(domain_sentences()).encode() + b"\n"
    return Scenario(
        f"size limit audio {size:,} B",
        [
            ("notes.txt", "text/plain", len(notes), iter([notes])),
            ("segments.jsonl", "application/jsonl", len(manifest), iter([manifest])),
            ("long.wav", "audio/wav", size, audio),
        ],
        {
            "kind": "audio",
            "file_bytes": size,
            "audio_hours": round((size - 80) / 2 / args.audio_rate / 3600, 2),
            "audio_rate": args.audio_rate,
            "manifest_segments": len(segments),
        },
    )


def metrics_detail(system: System, model_id: str) -> dict[str, Any]:
    """What the run metrics say was read, capped, paired and skipped (the notes the model card repeats)."""
    headers = system.token("bigbench")
    view = httpx.get(f"{system.url('models')}/v1/models/{model_id}", headers=headers, timeout=60).json()
    listing = httpx.get(f"{system.url('datasets')}/v1/models/{model_id}/datasets", headers=headers, timeout=60)
    metrics = (view.get("run") or {}).get("metrics") or {}
    data = metrics.get("data") or {}
    return {
        "datasets": [
            {k: d.get(k) for k in ("file_name", "type", "status", "size_bytes", "errors", "validation")}
            for d in listing.json().get("datasets", [])
        ],
        "notes": data.get("notes"),
        "audio_skipped": (data.get("audio_skipped") or [])[:20],
        "pairing": data.get("pairing"),
        "lm_pruning": (metrics.get("lm") or {}).get("pruning"),
        "status": view.get("status"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=("txt", "vtt", "srt", "audio"), required=True)
    parser.add_argument("--size", type=parse_size, default=LIMIT, help=f"file size (default the limit, {LIMIT:,} B)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--audio-rate", type=int, default=16000)
    parser.add_argument("--segments", type=int, default=12, help="spoken sentences in the long recording")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds from upload to 4 or 5")
    parser.add_argument("--max-worker-rss-mb", type=float, default=7_000, help="cancel a run past this (guard)")
    parser.add_argument("--min-free-gb", type=float, default=4.0, help="kill the trainer when free disk falls under")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    budget_mb = worker_budget_mb()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    load_before = os.getloadavg()
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="sizelimit-"))
    (work / "trainer-work").mkdir()
    extra = {
        "models": {"VOXTRAIN_CREDITS__FREE_ALLOWANCE": str(10**12)},
        "trainer": {"VOXTRAIN_WORK_DIR": str(work / "trainer-work")},
    }
    system = System(endpoints(), work, extra)
    disk = DiskSampler(
        work / "trainer-work", min_free=int(args.min_free_gb * 1e9), on_low=lambda: system.procs["trainer"].kill()
    )
    try:
        sc = scenario(args)
        system.start()
        print(f"services up (run {system.run_id}, logs in {work}); {uptime_before}", flush=True)
        disk.start()
        result = run_scenario(system, sc, args.timeout, args.max_worker_rss_mb, budget_mb)
        result["disk"] = disk.stop()
        if result.get("outcome") != "upload_refused":
            try:
                result["detail"] = metrics_detail(system, result["model_id"])
            except (httpx.HTTPError, ValueError) as exc:  # the figures above are kept whatever this does
                result["detail"] = {"error": repr(exc)}
        record(args, result, uptime_before, load_before)
    finally:
        if disk.is_alive():
            disk.stop()
        system.stop()
        shutil.rmtree(work / "trainer-work", ignore_errors=True)


def record(args: argparse.Namespace, result: dict[str, Any], uptime_before: str, load: tuple[float, ...]) -> None:
    report(result)
    print(f"  disk                   {result.get('disk')}")
    print(f"  detail                 {json.dumps(result.get('detail'))[:3000]}")
    result |= {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "uptime_before": uptime_before,
        "load_average_before": [round(x, 2) for x in load],
        "uptime_after": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }
    runs = json.loads(args.out.read_text(encoding="utf-8")).get("runs", {}) if args.out.exists() else {}
    runs[result["kind"] if args.size == LIMIT else f"{result['kind']}@{args.size}"] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs}, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out}; {result['uptime_after']}", flush=True)


if __name__ == "__main__":
    main()
