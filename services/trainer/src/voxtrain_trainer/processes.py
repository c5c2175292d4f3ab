"""Training worker processes: spawn one per run attempt, read its progress and result, stop it, clean up.

An adapter: it knows processes and directories, not runs' rules (those are in ``domain``).
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import queue
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxtrain_shared.logs import get_logger
from voxtrain_shared.settings import TrainerSettings

from . import worker
from .ml.types import TrainingSettings

log = get_logger(__name__)


@dataclass
class WorkerProcess:
    """One running attempt of a run."""

    run_id: uuid.UUID
    attempt: int
    process: Any  # multiprocessing.Process (spawn context)
    progress: Any
    results: Any
    work_dir: Path
    started: float  # time.monotonic()

    @property
    def pid(self) -> int | None:
        pid: int | None = self.process.pid
        return pid

    def alive(self) -> bool:
        return bool(self.process.is_alive())

    @property
    def exitcode(self) -> int | None:
        code: int | None = self.process.exitcode
        return code

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM: it unwinds and removes its work directory)."""
        if self.alive():
            self.process.terminate()

    def latest_progress(self) -> tuple[str, float, float | None] | None:
        """The newest ``(stage, percent, eta_seconds)`` reported since the last call."""
        latest = None
        try:
            while True:
                latest = self.progress.get_nowait()
        except queue.Empty:
            return latest

    def result(self, wait: float = 0.0) -> dict[str, Any] | None:
        """The worker's result dict, if it has put it (waiting up to ``wait`` seconds)."""
        try:
            got: dict[str, Any] = self.results.get(timeout=wait) if wait else self.results.get_nowait()
            return got
        except queue.Empty:
            return None


class WorkerProcesses:
    """Spawns :func:`worker.child_main` processes from the service's own (main) thread.

    ``on_started`` is told of each new worker (tests use it to find the process to kill)."""

    def __init__(self, settings: TrainerSettings, *, on_started: Callable[[WorkerProcess], None] | None = None) -> None:
        self._s = settings
        self._mp = multiprocessing.get_context("spawn")
        self._on_started = on_started
        self.root = Path(settings.work_dir)

    def spawn(self, request: bytes, run_id: uuid.UUID, attempt: int) -> WorkerProcess:
        s = self._s
        minio = {
            "endpoint": s.minio.endpoint,
            "access_key": s.minio.access_key.get_secret_value(),
            "secret_key": s.minio.secret_key.get_secret_value(),
            "secure": s.minio.secure,
            "region": s.minio.region,
        }
        progress, results = self._mp.Queue(), self._mp.Queue()
        # not a daemon: a daemonic process may not start children (the ML code may), and we end it ourselves
        proc = self._mp.Process(
            target=worker.child_main,
            name=f"train-{run_id}-a{attempt}",
            args=(
                request,
                attempt,
                os.getpid(),
                minio,
                s.minio.bucket,
                s.work_dir,
                training_settings(s),
                progress,
                results,
            ),
        )
        proc.start()
        w = WorkerProcess(
            run_id, attempt, proc, progress, results, worker.work_dir(s.work_dir, run_id, attempt), time.monotonic()
        )
        log.info("worker_started", run_id=str(run_id), attempt=attempt, pid=proc.pid)
        if self._on_started is not None:
            self._on_started(w)
        return w

    def stop(self, w: WorkerProcess, grace: float = 10.0) -> None:
        """End a worker (SIGTERM, then SIGKILL after ``grace`` seconds) and remove its work directory.
        Blocking: call it in a thread."""
        if w.alive():
            w.process.terminate()
            w.process.join(grace)
            if w.alive():
                w.process.kill()
                w.process.join(5)
        self.cleanup(w)

    def cleanup(self, w: WorkerProcess) -> None:
        """Remove what a finished or dead worker left behind (its directory, its queues)."""
        worker.remove_work_dir(w.work_dir)
        for q in (w.progress, w.results):
            q.close()
        if not w.alive():
            w.process.join(0)

    def sweep_work_dirs(self) -> list[Path]:
        """Remove work directories that no live worker holds (left by workers killed with their service)."""
        removed = []
        runs = self.root / "runs"
        for d in sorted(runs.iterdir()) if runs.is_dir() else []:
            try:
                with (d / worker.LOCK).open("a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    worker.remove_work_dir(d)
                    removed.append(d)
            except (BlockingIOError, FileNotFoundError):
                continue  # a live worker holds it, or it is gone already
        return removed


def training_settings(s: TrainerSettings) -> TrainingSettings:
    """The knobs of a run, from the service's settings (handed to the worker process)."""
    return TrainingSettings(
        order=s.ngram_order,
        worker_memory_mb=s.worker_memory_mb,
        lm_memory_mb=s.lm_memory_mb,
        lm_max_ngrams=s.lm_max_ngrams,
        lm_spill_limit_mb=s.lm_spill_limit_mb,
        work_disk_mb=s.work_disk_mb,
        lm_max_vocabulary=s.lm_max_vocabulary,
        lm_prune_thresholds=tuple(s.lm_prune_thresholds) if s.lm_prune_thresholds is not None else None,
    )
