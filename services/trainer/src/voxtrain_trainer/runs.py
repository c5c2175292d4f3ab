"""Training runs: recorded from TrainingRequested, claimed by a replica, supervised, finished.

Every state change of a run and its event (TrainingStarted / Progress / Succeeded / Failed) are
written in one transaction (outbox). A replica heartbeats its running runs; any replica fails a run
whose heartbeat is older than the lease with ``worker_lost`` — so a killed trainer never leaves a
model at Running forever. A run over the time limit is stopped and fails with ``training_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from voxtrain_shared import events as ev
from voxtrain_shared import inbox, outbox
from voxtrain_shared.logs import bind_message, get_logger, unbind_message
from voxtrain_shared.metrics import TRAINING_SECONDS, TRAININGS
from voxtrain_shared.settings import TrainerSettings
from voxtrain_shared.topics import Topics
from voxtrain_shared.vocab import ErrorCode

from . import worker

log = get_logger(__name__)
CONSUMER = "trainer.requests"


async def record(conn: asyncpg.Connection, schema: str, env: ev.Envelope) -> bool:
    """Handle TrainingRequested: queue the run once (False for a redelivery)."""
    if not await inbox.claim(conn, schema, CONSUMER, env.id):
        return False
    req: ev.TrainingRequested = env.payload()  # type: ignore[assignment]
    await conn.execute(
        "INSERT INTO runs (run_id, tenant_id, model_id, request) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
        req.run_id, env.tenant_id, env.model_id, env.to_bytes())
    await conn.execute("SELECT pg_notify($1, '')", f"voxtrain_trainer_{schema}")
    return True


async def model_deleted(conn: asyncpg.Connection, schema: str, env: ev.Envelope) -> None:
    """Handle ModelDeleted: its runs are no longer served; queued ones are dropped."""
    if await inbox.claim(conn, schema, CONSUMER + ".models", env.id):
        await conn.execute("UPDATE runs SET model_deleted=true WHERE tenant_id=$1 AND model_id=$2",
                           env.tenant_id, env.model_id)
        await conn.execute("DELETE FROM runs WHERE tenant_id=$1 AND model_id=$2 AND status='queued'",
                           env.tenant_id, env.model_id)


@dataclass
class Active:
    run_id: uuid.UUID
    request: ev.Envelope
    process: Any
    progress: Any
    results: Any
    started: float
    last_progress: tuple[str, float] = ("", -1.0)


class Supervisor:
    """Claims queued runs (up to ``parallel_trainings`` at once) and watches their worker processes."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], schema: str, topics: Topics, settings: TrainerSettings) -> None:
        self._pool, self._schema, self._topics, self._s = pool, schema, topics, settings
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._active: dict[uuid.UUID, Active] = {}
        self._mp = multiprocessing.get_context("spawn")
        self._wake = asyncio.Event()
        self._last_beat = 0.0

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        listener = await self._pool().acquire()
        await listener.add_listener(f"voxtrain_trainer_{self._schema}", self.wake)
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("trainer_supervisor_retry", error=repr(exc))
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=0.5)
                except TimeoutError:
                    pass
        finally:
            for a in self._active.values():  # stopping: the lease will expire and the run be failed/reaped
                a.process.terminate()
            await listener.remove_listener(f"voxtrain_trainer_{self._schema}", self.wake)
            await self._pool().release(listener)

    async def tick(self) -> None:
        """One round: start what fits, watch what runs, heartbeat, reap lost runs."""
        while len(self._active) < self._s.parallel_trainings and await self._start_next():
            pass
        for a in list(self._active.values()):
            await self._watch(a)
        now = time.monotonic()
        if now - self._last_beat >= self._s.heartbeat_seconds:
            self._last_beat = now
            await self._heartbeat()
            await self.reap()

    async def _start_next(self) -> bool:
        async with self._pool().acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE runs SET status='running', owner=$1, heartbeat_at=now(), started_at=now() "
                "WHERE run_id = (SELECT run_id FROM runs WHERE status='queued' ORDER BY created_at "
                "FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING run_id, request", self.owner)
            if row is None:
                return False
            request = ev.REGISTRY.parse(bytes(row["request"]))
            await self._emit(conn, request, ev.TrainingStarted(run_id=row["run_id"]))
        progress, results = self._mp.Queue(), self._mp.Queue()
        s = self._s
        minio = {"endpoint": s.minio.endpoint, "access_key": s.minio.access_key.get_secret_value(),
                 "secret_key": s.minio.secret_key.get_secret_value(), "secure": s.minio.secure,
                 "region": s.minio.region}
        proc = self._mp.Process(target=worker.child_main, name=f"train-{row['run_id']}", daemon=True,
                                args=(bytes(row["request"]), minio, s.minio.bucket, s.work_dir, s.ngram_order,
                                      progress, results))
        proc.start()
        self._active[row["run_id"]] = Active(row["run_id"], request, proc, progress, results, time.monotonic())
        log.info("training_started", run_id=str(row["run_id"]), model_id=str(request.model_id), pid=proc.pid)
        return True

    async def _watch(self, a: Active) -> None:
        bind_message(a.request.id, a.request.correlation_id, run_id=str(a.run_id))
        try:
            latest = None
            while not a.progress.empty():
                latest = a.progress.get_nowait()
            if latest and (latest[0] != a.last_progress[0] or latest[1] - a.last_progress[1] >= 1.0):
                a.last_progress = latest
                async with self._pool().acquire() as conn, conn.transaction():
                    await conn.execute("UPDATE runs SET progress=$2 WHERE run_id=$1", a.run_id,
                                       json.dumps({"stage": latest[0], "percent": latest[1]}))
                    await self._emit(conn, a.request, ev.TrainingProgress(run_id=a.run_id, stage=latest[0],
                                                                          percent=round(latest[1], 1)))
                log.info("training_progress", stage=latest[0], percent=round(latest[1], 1))
            if time.monotonic() - a.started > self._s.time_limit_seconds:
                a.process.terminate()
                await asyncio.to_thread(a.process.join, 10)
                await self._finish(a, None, {"code": ErrorCode.TRAINING_TIMEOUT.value, "stage": a.last_progress[0],
                                             "message": f"Training took longer than the {self._s.time_limit_seconds} s "
                                                        "limit and was stopped. Use fewer or smaller datasets, or ask "
                                                        "an operator to raise the limit."})
                return
            result = None
            if not a.results.empty():
                result = a.results.get_nowait()
            elif not a.process.is_alive():
                await asyncio.sleep(0.2)  # the result may still be in the pipe
                if not a.results.empty():
                    result = a.results.get_nowait()
                else:
                    await self._finish(a, None, {"code": ErrorCode.WORKER_LOST.value, "stage": a.last_progress[0],
                                                 "message": f"The training worker stopped unexpectedly (exit code "
                                                            f"{a.process.exitcode}). Train again; if it repeats, "
                                                            "contact support."})
                    return
            if result is not None:
                await asyncio.to_thread(a.process.join, 30)
                await self._finish(a, result, result.get("error"))
        finally:
            unbind_message()

    async def _finish(self, a: Active, result: dict | None, error: dict | None) -> None:
        self._active.pop(a.run_id, None)
        async with self._pool().acquire() as conn, conn.transaction():
            mine = await conn.fetchval("SELECT 1 FROM runs WHERE run_id=$1 AND status='running' AND owner=$2 FOR UPDATE",
                                       a.run_id, self.owner)
            if not mine:
                return  # reaped meanwhile; its TrainingFailed is already out
            if error:
                await conn.execute("UPDATE runs SET status='failed', finished_at=now(), error=$2 WHERE run_id=$1",
                                   a.run_id, json.dumps(error))
                await self._emit(conn, a.request, ev.TrainingFailed(run_id=a.run_id, error=_info(error)))
                log.warning("training_failed", run_id=str(a.run_id), code=error.get("code"), stage=error.get("stage"))
            else:
                assert result is not None
                metrics = {**result["metrics"], "data_used": result.get("used", {})}
                await conn.execute(
                    "UPDATE runs SET status='succeeded', finished_at=now(), metrics=$2, artifacts=$3 WHERE run_id=$1",
                    a.run_id, json.dumps(metrics, default=str), json.dumps(result["artifacts"]))
                await self._emit(conn, a.request, ev.TrainingSucceeded(run_id=a.run_id, metrics=metrics,
                                                                       artifacts=result["artifacts"]))
                log.info("training_succeeded", run_id=str(a.run_id))
        outcome = "failed" if error else "succeeded"
        TRAININGS.labels(outcome, str((error or {}).get("code") or "")).inc()
        TRAINING_SECONDS.labels(outcome).observe(time.monotonic() - a.started)

    async def _heartbeat(self) -> None:
        if self._active:
            async with self._pool().acquire() as conn:
                await conn.execute("UPDATE runs SET heartbeat_at=now() WHERE run_id = ANY($1::uuid[]) AND owner=$2",
                                   list(self._active), self.owner)

    async def reap(self) -> int:
        """Fail runs whose replica stopped heartbeating (any replica may do it); returns how many."""
        async with self._pool().acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT run_id, request, extract(epoch FROM now() - started_at) AS seconds FROM runs "
                "WHERE status='running' AND owner <> $1 "
                "AND heartbeat_at < now() - make_interval(secs => $2) FOR UPDATE SKIP LOCKED",
                self.owner, self._s.lease_seconds)
            for r in rows:
                error = {"code": ErrorCode.WORKER_LOST.value, "stage": None,
                         "message": "The trainer running this model stopped (no heartbeat). Train again."}
                await conn.execute("UPDATE runs SET status='failed', finished_at=now(), error=$2 WHERE run_id=$1",
                                   r["run_id"], json.dumps(error))
                await self._emit(conn, ev.REGISTRY.parse(bytes(r["request"])),
                                 ev.TrainingFailed(run_id=r["run_id"], error=_info(error)))
                log.warning("training_reaped", run_id=str(r["run_id"]))
        for r in rows:  # counted once committed
            TRAININGS.labels("failed", ErrorCode.WORKER_LOST.value).inc()
            if r["seconds"] is not None:
                TRAINING_SECONDS.labels("failed").observe(float(r["seconds"]))
        return len(rows)

    async def _emit(self, conn: asyncpg.Connection, request: ev.Envelope, message: ev.Message) -> None:
        env = ev.wrap(message, tenant_id=request.tenant_id, model_id=request.model_id, causation=request)
        await outbox.add(conn, self._schema, self._topics, env)


def _info(error: dict) -> ev.ErrorInfo:
    return ev.ErrorInfo(code=error.get("code") or ErrorCode.STAGE_FAILED.value,
                        message=error.get("message") or "training failed", stage=error.get("stage"))
