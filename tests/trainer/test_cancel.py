"""TrainingCancelled in the trainer, without servers: a queued run is dropped, a running one's worker is ended at
once, nothing terminal is published, a redelivery changes nothing, and a cancel that overtakes its
TrainingRequested keeps the run from ever starting. (Real processes: test_cancel_integration.py.)"""

import time
import uuid

from tests.fakes import FakeUnitOfWork
from tests.trainer import test_supervision
from tests.trainer.fakes import FakeTrainerRepository
from tests.trainer.test_supervision import FakeProcesses, queued
from voxtrain_shared import events as ev
from voxtrain_trainer import consumers
from voxtrain_trainer import handlers as h
from voxtrain_trainer.domain import Answer, RunStatus
from voxtrain_trainer.workers import Supervisor

settings = test_supervision.settings  # the fixture
OK = {"metrics": {}, "artifacts": {"lm": "s3://b/lm"}, "used": {}}


def cancelled(run_id: uuid.UUID | None, tenant: str = "acme") -> ev.Envelope:
    return ev.wrap(
        ev.TrainingCancelled(run_id=run_id, dataset_ids=[], cancelled_by=tenant),
        tenant_id=tenant,
        model_id=uuid.uuid4(),
    )


def request(run_id: uuid.UUID, tenant: str = "acme") -> ev.Envelope:
    return ev.wrap(
        ev.TrainingRequested(run_id=run_id, language="en-US", datasets=[]), tenant_id=tenant, model_id=uuid.uuid4()
    )


async def test_a_queued_run_is_dropped_without_a_terminal_event_and_redelivery_changes_nothing(settings) -> None:
    uow, procs = FakeUnitOfWork(FakeTrainerRepository()), FakeProcesses()
    run_id = await queued(uow)
    env = cancelled(run_id)
    assert await h.cancel_run(uow, env) == run_id
    assert await h.cancel_run(uow, env) is None  # redelivered
    assert uow.repo.rows[run_id].run.status is RunStatus.CANCELLED
    await Supervisor(uow, procs, settings).step()
    assert procs.spawned == [] and uow.emitted == []
    assert await h.record_request(uow, request(run_id)) is Answer.NOTHING  # models asks again: nothing restarts it


async def test_a_running_runs_worker_is_ended_at_the_next_step_and_its_result_is_discarded(settings) -> None:
    uow, procs = FakeUnitOfWork(FakeTrainerRepository()), FakeProcesses()
    sup = Supervisor(uow, procs, settings)
    run_id = await queued(uow)
    await sup.step()
    (w,) = procs.spawned
    handle = consumers.models(uow, sup.cancel)
    await handle(cancelled(run_id))
    w.results.put(OK)  # the worker finished just before it was stopped
    await sup.step()
    assert procs.stopped == [w] and sup.active_runs == set()
    assert uow.repo.rows[run_id].run.status is RunStatus.CANCELLED
    assert [type(m) for m in uow.messages()] == [ev.TrainingStarted]  # no TrainingSucceeded/Failed


async def test_a_cancel_that_overtakes_its_request_keeps_the_run_from_starting(settings) -> None:
    uow, procs = FakeUnitOfWork(FakeTrainerRepository()), FakeProcesses()
    run_id = uuid.uuid4()
    assert await h.cancel_run(uow, cancelled(run_id)) is None  # nothing to end yet, but remembered
    assert await h.record_request(uow, request(run_id)) is Answer.NOTHING
    await Supervisor(uow, procs, settings).step()
    assert uow.repo.rows == {} and procs.spawned == [] and uow.emitted == []


async def test_a_cancel_of_another_tenants_run_or_without_a_run_touches_nothing(settings) -> None:
    uow = FakeUnitOfWork(FakeTrainerRepository())
    run_id = await queued(uow)
    assert await h.cancel_run(uow, cancelled(run_id, tenant="globex")) is None
    assert await h.cancel_run(uow, cancelled(None)) is None
    assert uow.repo.rows[run_id].run.status is RunStatus.QUEUED


async def test_a_finished_run_stays_finished(settings) -> None:
    uow = FakeUnitOfWork(FakeTrainerRepository())
    run_id = await queued(uow)
    run = await h.claim_next(uow, "a", h.RetryPolicy())
    await h.finish(uow, "a", run, 1, OK, h.RetryPolicy())
    assert await h.cancel_run(uow, cancelled(run_id)) is None
    assert uow.repo.rows[run_id].run.status is RunStatus.SUCCEEDED


async def test_a_run_cancelled_through_another_replica_has_its_worker_ended_at_the_next_heartbeat(settings) -> None:
    uow, procs = FakeUnitOfWork(FakeTrainerRepository()), FakeProcesses()
    sup = Supervisor(uow, procs, settings)
    run_id = await queued(uow)
    await sup.step()
    assert await h.cancel_run(uow, cancelled(run_id)) == run_id  # consumed elsewhere: this replica is not told
    time.sleep(settings.heartbeat_seconds * 2)
    await sup.step()
    assert procs.stopped == procs.spawned and sup.active_runs == set()
    assert [type(m) for m in uow.messages()] == [ev.TrainingStarted]
