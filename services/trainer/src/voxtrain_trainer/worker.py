"""What runs inside a training worker process: download the text, train (recordings read where they are stored),
upload artifacts.

Runs in a child process (spawned), so the service's event loop keeps consuming, heartbeating and
answering health checks. Reports progress as ``(stage, percent, eta_seconds)`` on a queue (the estimate of
``eta.Eta``, from the dataset sizes, then the gathered inputs, and the pace so far) and returns a plain
dict: ``{"metrics", "artifacts", "used"}`` on success or ``{"error": {"code", "message", "stage",
"transient"}}`` — ``transient`` when the object storage was briefly unavailable (the run is retried).

A worker never outlives its supervisor: the kernel sends it SIGTERM when the parent dies
(``PR_SET_PDEATHSIG``), and a watchdog thread ends it if its parent changes anyway. Its work directory
(one per attempt) is removed on every way out it has a say in; the supervisor removes the directory of
a worker that was killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import functools
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from voxtrain_shared import events as ev
from voxtrain_shared.range_reader import S3RangeReader
from voxtrain_shared.settings import MinioSettings
from voxtrain_shared.storage import artifact_prefix, make_client
from voxtrain_shared.vocab import DatasetType, ErrorCode

from .audio_probe import duration_seconds
from .domain import redact
from .eta import CALIBRATION, Eta, Workload, reference_work
from .inputs import LocalDataset, build_inputs
from .ml.errors import TrainingError
from .ml.types import AudioPair, Media, StoredRecording, TrainingInputs, TrainingSettings
from .storage_errors import InputUnavailable, transient

PR_SET_PDEATHSIG = 1
ORPHAN_GRACE_SECONDS = 2.0
BYTES_PER_WORD = 6
BYTES_PER_AUDIO_SECOND = 32_000
# Work-directory disk a run needs besides its downloads and the LM's spill: the model, its ARPA text, the stored
# utterances (at most max_train_audio_seconds + the test pairs of 16 kHz audio), the acoustic adaptation's files.
RUN_DISK_RESERVE_BYTES = 2 * 2**30
# Recordings are read from storage in ranged GETs of this size (decoding a segment reads on from where it seeks;
# FFmpeg's seeks in a FLAC without a seek table or an MP4 index jump about: small chunks keep those cheap).
RECORDING_CHUNK_BYTES = 1024 * 1024
RECORDING_CHUNKS = 4
LOCK = ".lock"  # held by the live worker of a work directory (see processes.sweep_work_dirs)


def work_dir(work_root: str | Path, run_id: object, attempt: int) -> Path:
    """The directory of one attempt of a run."""
    return Path(work_root) / "runs" / f"{run_id}-a{attempt}"


def remove_work_dir(path: Path, tries: int = 50) -> bool:
    """Remove ``path`` and all in it; ``True`` once it is gone. ``shutil.rmtree`` alone can give up half way
    when something else removes (or still writes) in the tree at the same moment — the worker's unwinding main
    thread and its parent watchdog both clean up on the way out — so look again until nothing is left."""
    for _ in range(tries):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return True
        time.sleep(0.05)
    return not path.exists()


class StorageUnavailable(Exception):
    """The object storage did not answer (or answered "try later"): worth another attempt."""


def _storage(stage: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:
        if transient(exc):
            raise StorageUnavailable(
                f"the object storage was unavailable during the {stage} stage ({type(exc).__name__})"
            ) from exc
        raise


def execute(
    request: bytes,
    attempt: int,
    minio: dict[str, Any],
    bucket: str,
    work_root: str,
    training: TrainingSettings,
    progress: Any,
) -> dict[str, Any]:
    """Train the model a TrainingRequested asks for (see module contract)."""
    stage = "download"
    env = ev.REGISTRY.parse(request)
    req = env.payload()
    assert isinstance(req, ev.TrainingRequested)
    estimate: Eta | None = None  # made once the work directory is held (it imports the pipeline, times the CPU)

    def report(name: str, percent: float) -> None:
        nonlocal stage
        stage = name
        progress.put((name, float(percent), estimate.update(name, percent, time.monotonic()) if estimate else None))

    work = work_dir(work_root, req.run_id, attempt)
    try:
        shutil.rmtree(work, ignore_errors=True)
        (work / "data").mkdir(parents=True)
        with (work / LOCK).open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when this process ends, however it ends
            workload = guessed_workload(req, training)
            estimate = Eta(workload, ranges=stage_ranges(), prior_pace=machine_pace(pace_runs(workload)))
            return _train(env, req, attempt, minio, bucket, work, training, report, estimate)
    except (StorageUnavailable, InputUnavailable) as exc:
        return {
            "error": {
                "code": ErrorCode.STORAGE_UNAVAILABLE.value,
                "stage": stage,
                "message": str(exc),
                "transient": True,
            }
        }
    except TrainingError as exc:
        return {"error": {"code": exc.code, "message": redact(exc.message), "stage": exc.stage or stage}}
    except Exception as exc:  # anything else: name the stage, keep the trace in the log
        traceback.print_exc()
        return {
            "error": {
                "code": ErrorCode.STAGE_FAILED.value,
                "stage": stage,
                "message": f"The {stage} stage failed: {redact(str(exc))}. Check the datasets and train again.",
            }
        }
    finally:
        remove_work_dir(work)


def _train(
    env: ev.Envelope,
    req: ev.TrainingRequested,
    attempt: int,
    minio: dict[str, Any],
    bucket: str,
    work: Path,
    training: TrainingSettings,
    report: Callable[[str, float], None],
    estimate: Eta,
) -> dict[str, Any]:
    from .ml.pipeline import run_training

    client = make_client(MinioSettings.model_validate(minio))

    def dataset(d: ev.DatasetObject) -> LocalDataset:
        path = work / "data" / f"{d.dataset_id}{Path(d.file_name).suffix.lower()}"  # never the user's name
        # recordings are read where they are stored, as the decoder seeks (a segment costs the bytes around it;
        # a recording no manifest line or same-named .vtt/.srt pairs is never read): only text is downloaded
        stored = stored_recording(client, d, path.name) if d.dataset_type is DatasetType.AUDIO else None
        return LocalDataset(str(d.dataset_id), d.dataset_type, d.file_name, path, stored)

    local = [dataset(d) for d in req.datasets]
    text = [(d, ds) for d, ds in zip(req.datasets, local, strict=True) if ds.stored is None]
    needed = fits_on_disk([(d.file_name, d.size) for d, _ in text], budget := disk_budget(work, training))
    for i, (d, ds) in enumerate(text):
        report("download", 100.0 * i / len(text))
        _storage("download", functools.partial(client.fget_object, d.bucket, d.object_key, str(ds.path)))
    report("gather", 0.0)
    inputs, used = build_inputs(local)
    estimate.workload = measured_workload(inputs, estimate.workload)
    training = within_disk(training, budget - needed)
    result = run_training(inputs, work / "model", training, progress=report)
    report("store", 0.0)
    # one prefix per attempt: a late write of an earlier attempt never mixes with this one's files
    prefix = f"{artifact_prefix(env.tenant_id, env.model_id, req.run_id)}attempt-{attempt}/"
    artifacts: dict[str, str] = {}
    for name, path in sorted(result.artifacts.items()):
        key = prefix + Path(path).name
        _storage("store", functools.partial(client.fput_object, bucket, key, str(path)))
        artifacts[name] = f"s3://{bucket}/{key}"
    report("store", 100.0)
    return {"metrics": result.metrics, "artifacts": artifacts, "used": used}


def stored_recording(client: Any, o: ev.DatasetObject, name: str) -> StoredRecording:
    """The recording of dataset ``o`` as FFmpeg reads it from storage: ranged GETs of ``RECORDING_CHUNK_BYTES``
    around where it reads (a few cached), each retried on its own; ``name`` is how reports and errors name it."""

    def read() -> BinaryIO:
        return S3RangeReader(
            client, o.bucket, o.object_key, o.size, chunk_size=RECORDING_CHUNK_BYTES, cached_chunks=RECORDING_CHUNKS
        )  # type: ignore[return-value]  # a RawIOBase: what FFmpeg reads through PyAV

    return StoredRecording(name, o.size, read)


def disk_budget(work: Path, training: TrainingSettings) -> int:
    """Bytes a run may use in ``work``: ``work_disk_mb``, else the free space of its file system now."""
    if training.work_disk_mb is not None:
        return training.work_disk_mb * 2**20
    return shutil.disk_usage(work).free


def fits_on_disk(files: list[tuple[str, int]], budget: int) -> int:
    """The bytes the run needs for the text ``files`` (name, size) it downloads and what it writes besides;
    ``TrainingError`` ``inputs_too_large`` when that exceeds ``budget``, before anything is downloaded."""
    needed = sum(size for _, size in files) + RUN_DISK_RESERVE_BYTES
    if needed <= budget:
        return needed
    largest = ", ".join(f"{name} ({size / 1e9:.1f} GB)" for name, size in sorted(files, key=lambda f: -f[1])[:3])
    raise TrainingError(
        TrainingError.INPUTS_TOO_LARGE,
        f"This training needs about {needed / 1e9:.1f} GB of working disk for the {len(files)} files it reads "
        f"(the largest: {largest}) and what it writes, more than the {budget / 1e9:.1f} GB a training has here. "
        "Train with fewer or smaller transcripts and manifests (recordings take no disk: they are read where they "
        "are stored), or ask the operator to give the trainer more disk (VOXTRAIN_WORK_DISK_MB).",
        stage="download",
    )


def within_disk(training: TrainingSettings, left: int) -> TrainingSettings:
    """``training`` with the LM estimator's spill limit cut to the ``left`` bytes the downloads leave of the run's
    disk, so it fails cleanly (``lm_spill_limit_exceeded``) rather than fill the disk."""
    return dataclasses.replace(training, lm_spill_limit_mb=max(64, min(training.lm_spill_limit_mb, left // 2**20)))


def machine_pace(runs: int = 3) -> float:
    """How much slower than the ETA's calibration this machine runs now (median of ``runs`` timings)."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        reference_work()
        times.append(time.perf_counter() - began)
    return sorted(times)[runs // 2] / CALIBRATION.reference_seconds


def pace_runs(workload: Workload, short_seconds: float = 60.0) -> int:
    """How many timings :func:`machine_pace` takes: one for a run expected to be short (its own progress soon
    corrects the estimate, and three would cost ~0.5 CPU-s of a ~4 CPU-s training), three otherwise."""
    return 1 if sum(CALIBRATION.expected(workload).values()) < short_seconds else 3


def stage_ranges() -> dict[str, tuple[float, float]]:
    """The overall percents each pipeline stage reports within (the worker's own stages report 0–100)."""
    from .ml.pipeline import STAGES

    return {name: (float(start), float(end)) for name, (_, start, end) in STAGES.items()}


def guessed_workload(req: ev.TrainingRequested, training: TrainingSettings) -> Workload:
    """What the request's dataset sizes say of the work before anything is read: ~6 bytes a word of text,
    32 kB a second of audio (16 kHz 16-bit mono), every audio file one train pair; only text is downloaded."""
    text = sum(d.size for d in req.datasets if d.dataset_type in (DatasetType.TRANSCRIPT, DatasetType.TEST))
    audio = [d for d in req.datasets if d.dataset_type is DatasetType.AUDIO]
    return Workload(
        download_bytes=sum(d.size for d in req.datasets if d.dataset_type is not DatasetType.AUDIO),  # not audio
        text_words=text // BYTES_PER_WORD,
        train_pairs=len(audio),
        train_audio_seconds=sum(d.size for d in audio) / BYTES_PER_AUDIO_SECOND,
        adapt_acoustic_model=training.adapt_acoustic_model,
    )


def _seconds(pair: AudioPair, length_of: Callable[[Media], float]) -> float:
    if pair.duration is not None:
        return pair.duration
    try:
        return length_of(pair.audio) - (pair.offset or 0.0)
    except (ValueError, OSError):
        size = pair.audio.size if isinstance(pair.audio, StoredRecording) else pair.audio.stat().st_size
        return size / BYTES_PER_AUDIO_SECOND


def measured_workload(
    inputs: TrainingInputs, guessed: Workload, *, probe: Callable[[Media], float] = duration_seconds
) -> Workload:
    """The workload as the gathered inputs say (file sizes of the text, durations of the pairs' audio, each
    recording's read by ``probe`` once, however many manifest lines cut it: an MP3's length is counted)."""
    length_of = functools.cache(probe)
    return dataclasses.replace(
        guessed,
        text_words=sum(t.path.stat().st_size for t in [*inputs.transcripts, *inputs.test_texts]) // BYTES_PER_WORD,
        train_pairs=len(inputs.train_pairs),
        train_audio_seconds=sum(_seconds(p, length_of) for p in inputs.train_pairs),
        test_pairs=len(inputs.test_pairs),
        test_audio_seconds=sum(_seconds(p, length_of) for p in inputs.test_pairs),
    )


def die_with_parent(parent: int, on_orphaned: Callable[[], object]) -> None:
    """End this process when ``parent`` ends: SIGTERM from the kernel (Linux), a watchdog thread otherwise."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # unwinds: finally blocks clean up
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the watchdog alone ends us
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above took effect
        on_orphaned()
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        time.sleep(ORPHAN_GRACE_SECONDS)  # SIGTERM is unwinding the main thread; if it is stuck in C, end it here
        on_orphaned()
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def child_main(
    request: bytes,
    attempt: int,
    parent: int,
    minio: dict[str, Any],
    bucket: str,
    work_root: str,
    training: TrainingSettings,
    progress: Any,
    results: Any,
) -> None:
    """Process entry point: run :func:`execute` and put its dict on ``results``."""
    run_id = ev.REGISTRY.parse(request).data.get("run_id")
    die_with_parent(parent, lambda: remove_work_dir(work_dir(work_root, run_id, attempt)))
    results.put(execute(request, attempt, minio, bucket, work_root, training, progress))
