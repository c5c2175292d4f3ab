"""TrainingCancelled in the validator, without servers: the model's jobs are dropped (no verdict), a running
check stops at once, a redelivery changes nothing, and a later ValidationRequested queues the job again."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.fakes import FakeUnitOfWork
from tests.validator.fakes import FakeValidatorRepository
from tests.validator.test_validator_jobs import PASSED, Blocking, looping, obj, requested, until, uploaded
from voxtrain_shared import events as ev
from voxtrain_validator import consumers
from voxtrain_validator import handlers as h
from voxtrain_validator.domain import Answer, JobRules, JobStatus
from voxtrain_validator.workers import JobLoop


def cancelled(model: uuid.UUID, *dataset_ids: uuid.UUID, tenant: str = "acme") -> ev.Envelope:
    return ev.wrap(
        ev.TrainingCancelled(run_id=None, dataset_ids=list(dataset_ids), cancelled_by=tenant),
        tenant_id=tenant,
        model_id=model,
    )


async def test_a_cancel_drops_the_models_queued_jobs_once_and_a_request_queues_them_again() -> None:
    repo = FakeValidatorRepository()
    uow = FakeUnitOfWork(repo)
    model = uuid.uuid4()
    mine, done, other = obj(), obj(), obj()
    for o, m in ((mine, model), (done, model), (other, uuid.uuid4())):
        await h.record_upload(uow, uploaded(o, m))
    repo.rows[done.dataset_id].status = JobStatus.PASSED
    repo.rows[done.dataset_id].result = PASSED
    env = cancelled(model, mine.dataset_id, done.dataset_id, other.dataset_id)
    assert await h.cancel_jobs(uow, env) == [mine.dataset_id]  # a finished one keeps its verdict; another model's
    assert await h.cancel_jobs(uow, env) == []  # redelivered
    assert [repo.rows[o.dataset_id].status for o in (mine, done, other)] == [
        JobStatus.CANCELLED,
        JobStatus.PASSED,
        JobStatus.PENDING,
    ]
    assert await h.claim_next(uow, JobRules(), "w") is not None  # only the other model's job is due
    assert await h.claim_next(uow, JobRules(), "w") is None
    assert await h.answer_request(uow, requested(mine, model)) is Answer.REQUEUE
    assert repo.rows[mine.dataset_id].status is JobStatus.PENDING
    assert uow.messages() == []


async def test_a_cancel_of_another_tenant_touches_nothing() -> None:
    repo = FakeValidatorRepository()
    uow = FakeUnitOfWork(repo)
    o, model = obj(), uuid.uuid4()
    await h.record_upload(uow, uploaded(o, model))
    assert await h.cancel_jobs(uow, cancelled(model, o.dataset_id, tenant="globex")) == []
    assert repo.rows[o.dataset_id].status is JobStatus.PENDING


@pytest.mark.parametrize("here", [True, False], ids=["on-this-replica", "on-another-replica"])
async def test_a_running_check_stops_within_seconds_and_publishes_no_verdict(here: bool) -> None:
    """Here: the consumer's local signal stops it at once. Elsewhere: its lease check (every second, far more often
    than the 150 s renewal) finds the job cancelled."""
    repo = FakeValidatorRepository()
    uow = FakeUnitOfWork(repo)
    check = Blocking(PASSED)
    o, model = obj(), uuid.uuid4()
    await h.record_upload(uow, uploaded(o, model))
    loop = JobLoop(uow, check, JobRules(lease_seconds=600), owner="w", concurrency=1, poll_seconds=0.05)
    handle = consumers.requests(uow, loop.wake, loop.cancel if here else lambda ids: None)
    async with looping(loop):
        await until(lambda: check.calls)
        await handle(cancelled(model, o.dataset_id))
        assert await asyncio.to_thread(check.saw_cancel.wait, 0.5 if here else 3)
        check.release.set()
        await asyncio.sleep(0.2)
    assert uow.messages() == [] and repo.rows[o.dataset_id].status is JobStatus.CANCELLED
