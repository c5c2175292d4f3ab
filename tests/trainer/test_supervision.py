"""The supervisor loop's step on fakes: results kept until committed, lost workers retried, runs taken
over by another replica have their worker stopped. (Real processes: test_service_integration.py.)"""

import contextlib
import queue
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes import FakeUnitOfWork
from tests.support import PUBLIC_KEY
from tests.trainer.fakes import FakeTrainerRepository
from voxtrain_shared import events as ev
from voxtrain_shared.settings import TrainerSettings
from voxtrain_trainer import handlers as h
from voxtrain_trainer.domain import RunStatus
from voxtrain_trainer.processes import WorkerProcess
from voxtrain_trainer.workers import Supervisor


@dataclass
class FakeProcess:
    pid: int = 4242
    exitcode: int | None = None

    def is_alive(self) -> bool:
        return self.exitcode is None

    def terminate(self) -> None:
        self.exitcode = -15


class FakeProcesses:
    def __init__(self) -> None:
        self.spawned: list[WorkerProcess] = []
        self.stopped: list[WorkerProcess] = []

    def spawn(self, request: bytes, run_id: uuid.UUID, attempt: int) -> WorkerProcess:
        w = WorkerProcess(
            run_id, attempt, FakeProcess(), queue.Queue(), queue.Queue(), Path("/nonexistent"), time.monotonic()
        )
        self.spawned.append(w)
        return w

    def stop(self, w: WorkerProcess, grace: float = 10.0) -> None:
        if w.process.exitcode is None:
            w.process.exitcode = -15
        self.stopped.append(w)

    def sweep_work_dirs(self) -> list[Path]:
        return []


class FlakyUnitOfWork(FakeUnitOfWork[FakeTrainerRepository]):
    """The database can be "away": every transaction then fails."""

    down = False

    @asynccontextmanager
    async def __call__(self, ctx):
        if self.down:
            raise ConnectionError("database away")
        async with super().__call__(ctx) as tx:
            yield tx


@pytest.fixture
def settings(monkeypatch) -> TrainerSettings:
    env = {
        "VOXTRAIN_POSTGRES__DSN": "postgresql://u@localhost/db",
        "VOXTRAIN_MINIO__ENDPOINT": "localhost:9000",
        "VOXTRAIN_MINIO__ACCESS_KEY": "a",
        "VOXTRAIN_MINIO__SECRET_KEY": "secretkey",
        "VOXTRAIN_AUTH__PUBLIC_KEY": PUBLIC_KEY,
        "VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS": "localhost:1",
        "VOXTRAIN_MAX_ATTEMPTS": "2",
        "VOXTRAIN_RETRY_BACKOFF_SECONDS": "0",
        "VOXTRAIN_HEARTBEAT_SECONDS": "0.01",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return TrainerSettings()


async def queued(uow) -> uuid.UUID:
    env = ev.wrap(
        ev.TrainingRequested(run_id=uuid.uuid4(), language="en-US", datasets=[]),
        tenant_id="acme",
        model_id=uuid.uuid4(),
    )
    await h.record_request(uow, env)
    return env.payload().run_id


async def test_a_result_is_kept_until_its_commit_succeeds(settings) -> None:
    uow, procs = FlakyUnitOfWork(FakeTrainerRepository()), FakeProcesses()
    sup = Supervisor(uow, procs, settings)
    run_id = await queued(uow)
    await sup.step()
    (w,) = procs.spawned
    w.results.put({"metrics": {}, "artifacts": {"lm": "s3://b/lm"}, "used": {}})
    w.process.exitcode = 0
    uow.down = True
    with contextlib.suppress(ConnectionError):  # the watch logs and keeps the result; a heartbeat may fail too
        await sup.step()
    assert run_id in sup.active_runs and uow.messages(ev.TrainingSucceeded) == []
    uow.down = False
    await sup.step()
    assert uow.messages(ev.TrainingSucceeded) and sup.active_runs == set()
    assert uow.repo.rows[run_id].run.status is RunStatus.SUCCEEDED


async def test_a_dead_worker_is_retried_then_fails_with_worker_lost(settings) -> None:
    uow, procs = FakeUnitOfWork(FakeTrainerRepository()), FakeProcesses()
    sup = Supervisor(uow, procs, settings)
    run_id = await queued(uow)
    await sup.step()
    procs.spawned[0].process.exitcode = -9
    await sup.step()  # lost, requeued (no backoff) and started again in the same step
    assert [w.attempt for w in procs.spawned] == [1, 2]
    procs.spawned[1].process.exitcode = -9
    await sup.step()
    (failed,) = uow.messages(ev.TrainingFailed)
    assert failed.error.code == "worker_lost" and "exit code -9" in failed.error.message
    assert uow.repo.rows[run_id].run.status is RunStatus.FAILED and procs.stopped == procs.spawned


async def test_a_run_taken_over_by_another_replica_has_its_worker_stopped(settings) -> None:
    uow, procs = FakeUnitOfWork(FakeTrainerRepository()), FakeProcesses()
    sup = Supervisor(uow, procs, settings)
    run_id = await queued(uow)
    await sup.step()
    row = uow.repo.rows[run_id]
    row.run.owner, row.run.attempt = "other-replica", 2  # reaped and restarted elsewhere meanwhile
    time.sleep(0.02)
    await sup.step()
    assert procs.stopped == procs.spawned[:1] and run_id not in sup.active_runs
    procs.spawned[0].results.put({"metrics": {}, "artifacts": {}, "used": {}})
    await sup.step()
    assert uow.messages(ev.TrainingSucceeded) == []


async def test_stopping_hands_running_runs_back_and_commits_finished_ones(settings) -> None:
    uow, procs = FakeUnitOfWork(FakeTrainerRepository()), FakeProcesses()
    sup = Supervisor(uow, procs, settings.model_copy(update={"parallel_trainings": 2}))
    running, done = await queued(uow), await queued(uow)
    await sup.step()
    by_run = {w.run_id: w for w in procs.spawned}
    by_run[done].results.put({"metrics": {}, "artifacts": {"lm": "s3://b/lm"}, "used": {}})
    await sup.shutdown()
    assert uow.repo.rows[done].run.status is RunStatus.SUCCEEDED
    assert uow.repo.rows[running].run.status is RunStatus.QUEUED  # another attempt, here or on another replica
    assert "was stopped" in uow.messages(ev.TrainingProgress)[-1].message
    assert sup.active_runs == set() and len(procs.stopped) == 2
