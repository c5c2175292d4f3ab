"""The validator's job rules and use cases, without servers: pure domain rules, then the handlers and the job
loop over FakeUnitOfWork and the in-memory repository (tests/validator/fakes.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.fakes import FakeUnitOfWork
from tests.validator.fakes import FakeValidatorRepository
from voxtrain_shared import events as ev
from voxtrain_shared.vocab import DatasetType as T
from voxtrain_shared.vocab import ErrorCode
from voxtrain_validator import domain
from voxtrain_validator import handlers as h
from voxtrain_validator.domain import Answer, Cause, Dataset, Entry, GiveUp, Job, JobRules, JobStatus, Lease, Retry
from voxtrain_validator.rules.outcome import Finding, Outcome, passed
from voxtrain_validator.storage import StorageUnavailable
from voxtrain_validator.workers import JobLoop

RULES = JobRules(max_attempts=3, lease_seconds=60, retry_base_seconds=2, retry_max_seconds=5)
PASSED = passed({"duration_seconds": 1.5}, ("quiet",)).to_dict()
FAILED = Outcome(
    False, ErrorCode.INVALID_AUDIO_FORMAT, "not a WAV file", (Finding("not a WAV file", byte_offset=0),), 2
).to_dict()


def obj(kind: T = T.AUDIO, name: str = "a.wav") -> ev.DatasetObject:
    return ev.DatasetObject(
        dataset_id=uuid.uuid4(),
        dataset_type=kind,
        file_name=name,
        bucket="b",
        object_key=f"k/{uuid.uuid4()}",
        size=10,
        sha256="0" * 64,
    )


def uploaded(
    o: ev.DatasetObject | None = None,
    model: uuid.UUID | None = None,
    tenant: str = "acme",
    batch: list[uuid.UUID] | None = None,
) -> ev.Envelope:
    o = o or obj()
    return ev.wrap(
        ev.DatasetUploaded(dataset=o, batch=batch or [o.dataset_id]), tenant_id=tenant, model_id=model or uuid.uuid4()
    )


def requested(o: ev.DatasetObject, model: uuid.UUID, tenant: str = "acme") -> ev.Envelope:
    return ev.wrap(ev.ValidationRequested(dataset=o, batch=[o.dataset_id], attempt=2), tenant_id=tenant, model_id=model)


def job(
    attempts: int = 1,
    last_error: str | None = None,
    kind: T = T.AUDIO,
    waited: float = 0.0,
    batch: list[uuid.UUID] | None = None,
) -> Job:
    env = uploaded(obj(kind), batch=batch)
    o = env.payload().dataset
    return Job(Dataset.of(o, env.tenant_id, env.model_id), attempts, env, waited, Lease("w", uuid.uuid4()), last_error)


@pytest.fixture
def repo() -> FakeValidatorRepository:
    return FakeValidatorRepository()


@pytest.fixture
def uow(repo: FakeValidatorRepository) -> FakeUnitOfWork[FakeValidatorRepository]:
    return FakeUnitOfWork(repo)


# ---------------------------------------------------------------- domain rules


def test_retries_back_off_exponentially_up_to_the_cap() -> None:
    assert [RULES.retry_delay(n) for n in range(1, 6)] == [2, 4, 5, 5, 5]
    assert RULES.heartbeat_seconds == 15  # four beats per lease


def test_storage_errors_are_retried_until_the_attempts_are_spent_then_the_cause_is_named() -> None:
    assert RULES.after_error(job(attempts=1), Cause.STORAGE_UNAVAILABLE, "reset") == Retry(2)
    assert RULES.after_error(job(attempts=2), Cause.STORAGE_UNAVAILABLE, "reset") == Retry(4)
    last = RULES.after_error(job(attempts=3), Cause.STORAGE_UNAVAILABLE, "reset")
    assert isinstance(last, GiveUp)
    assert last.result["code"] == "validation_failed" and not last.result["passed"]
    assert "could not be read from storage in 3 attempts" in last.result["message"]


def test_a_missing_object_is_given_up_at_once_and_a_crash_names_the_error() -> None:
    missing = RULES.after_error(job(attempts=1), Cause.OBJECT_MISSING, "k")
    assert isinstance(missing, GiveUp) and "no longer in storage" in missing.result["message"]
    crash = RULES.after_error(job(attempts=3), Cause.CRASHED, "ZeroDivisionError: boom")
    assert isinstance(crash, GiveUp) and "ZeroDivisionError: boom" in crash.result["message"]


def test_a_job_claimed_more_often_than_allowed_is_given_up_naming_the_lost_workers() -> None:
    assert RULES.exhausted(job(attempts=3)) is None
    over = RULES.exhausted(job(attempts=4, last_error=domain.LEASE_LOST))
    assert over is not None and "in 3 attempts: the validator stopped while checking it" in over.result["message"]


def test_a_manifest_waits_for_its_batch_and_its_audio_but_not_forever() -> None:
    other = uuid.uuid4()
    manifest = job(kind=T.MANIFEST, batch=[other])
    assert RULES.waits_for_batch(manifest, set())
    assert not RULES.waits_for_batch(manifest, {other})
    assert not RULES.waits_for_batch(job(kind=T.MANIFEST, batch=[other], waited=4000), set())
    assert not RULES.waits_for_batch(job(kind=T.AUDIO, batch=[other]), set())
    deferred = {**PASSED, "metadata": {"deferred_segment_ends": 1}}
    assert RULES.waits_for_audio(manifest, deferred)
    assert not RULES.waits_for_audio(manifest, PASSED)
    assert not RULES.waits_for_audio(job(kind=T.MANIFEST, waited=4000), deferred)


def test_a_waiting_manifest_is_looked_at_again_after_a_quarter_of_its_wait_so_far() -> None:
    delays = [RULES.wait_delay(job(kind=T.MANIFEST, waited=w)) for w in (0, 2, 8, 40, 600, 3000)]
    assert delays == [domain.WAIT_POLL_SECONDS, 1.0, 2.0, 10.0, 30.0, domain.MAX_WAIT_POLL_SECONDS]
    rechecks, waited = 0, 0.0  # a manifest waiting ten minutes for its recording's verdict
    while waited < 600:
        waited += RULES.wait_delay(job(kind=T.MANIFEST, waited=waited))
        rechecks += 1
    assert rechecks < 40  # once a second would be 600


def test_verdicts_carry_the_result() -> None:
    d = job().dataset
    ok = domain.verdict(d, PASSED)
    assert isinstance(ok, ev.ValidationPassed) and ok.warnings == ["quiet"] and ok.metadata["duration_seconds"] == 1.5
    bad = domain.verdict(d, FAILED)
    assert isinstance(bad, ev.ValidationFailed)
    assert (bad.error.code, bad.error.file_name, bad.details_truncated) == ("invalid_audio_format", "a.wav", 2)
    assert bad.error.details == [{"message": "not a WAV file", "byte_offset": 0}]


@pytest.mark.parametrize(
    ("status", "result", "expected"),
    [
        (None, None, Answer.REQUEUE),
        (JobStatus.DEAD, FAILED, Answer.REQUEUE),
        (JobStatus.PASSED, PASSED, Answer.REPUBLISH),
        (JobStatus.FAILED, FAILED, Answer.REPUBLISH),
        (JobStatus.PENDING, None, Answer.LEAVE),
        (JobStatus.RUNNING, None, Answer.LEAVE),
    ],
)
def test_a_validation_request_is_answered_by_the_jobs_state(
    status: JobStatus | None, result: Any, expected: Answer
) -> None:
    entry = None if status is None else Entry(job().dataset, status, result)
    assert domain.answer(entry) is expected


# ---------------------------------------------------------------- handlers


async def test_an_upload_is_queued_once_and_a_deletion_forgets_it(uow, repo) -> None:
    env = uploaded()
    assert await h.record_upload(uow, env)
    assert not await h.record_upload(uow, env)  # redelivered
    ds = env.payload().dataset.dataset_id
    assert repo.rows[ds].status is JobStatus.PENDING
    deleted = ev.wrap(ev.DatasetDeleted(dataset_id=ds, dataset_type=T.AUDIO), tenant_id="acme", model_id=env.model_id)
    assert await h.forget_dataset(uow, deleted)
    assert ds not in repo.rows


async def test_a_claimed_job_is_finished_by_its_holder_with_one_verdict(uow, repo) -> None:
    env = uploaded()
    await h.record_upload(uow, env)
    claimed = await h.claim_next(uow, RULES, "w1")
    assert isinstance(claimed, h.Claimed) and claimed.job.attempts == 1
    assert await h.claim_next(uow, RULES, "w2") is None  # leased
    assert await h.finish(uow, claimed.job, FAILED)
    assert repo.rows[claimed.job.dataset.dataset_id].status is JobStatus.FAILED
    (verdict,) = uow.messages()
    assert isinstance(verdict, ev.ValidationFailed) and verdict.error.code == "invalid_audio_format"
    assert uow.emitted[0][1] == env.model_id


async def test_a_stale_worker_neither_renews_nor_finishes_nor_releases(uow, repo) -> None:
    await h.record_upload(uow, uploaded())
    stale = await h.claim_next(uow, RULES, "w1")
    assert isinstance(stale, h.Claimed)
    repo.expire(stale.job.dataset.dataset_id)
    fresh = await h.claim_next(uow, RULES, "w2")
    assert isinstance(fresh, h.Claimed) and fresh.job.attempts == 2 and fresh.job.last_error == domain.LEASE_LOST
    assert not await h.renew(uow, RULES, stale.job)
    assert not await h.finish(uow, stale.job, PASSED)
    assert isinstance(await h.retry_or_give_up(uow, RULES, stale.job, Cause.STORAGE_UNAVAILABLE, "x"), Retry)
    assert uow.messages() == [] and repo.rows[fresh.job.dataset.dataset_id].status is JobStatus.RUNNING
    assert await h.renew(uow, RULES, fresh.job)
    assert await h.finish(uow, fresh.job, PASSED)
    assert [type(m) for m in uow.messages()] == [ev.ValidationPassed]


async def test_workers_that_keep_dying_exhaust_the_attempts_and_the_dataset_fails(uow, repo) -> None:
    env = uploaded()
    await h.record_upload(uow, env)
    for attempt in range(1, RULES.max_attempts + 1):
        got = await h.claim_next(uow, RULES, f"w{attempt}")
        assert isinstance(got, h.Claimed)
        repo.expire(got.job.dataset.dataset_id)  # the worker dies holding it
    given_up = await h.claim_next(uow, RULES, "last")
    assert isinstance(given_up, h.Exhausted)
    assert repo.rows[env.payload().dataset.dataset_id].status is JobStatus.DEAD
    (verdict,) = uow.messages()
    assert isinstance(verdict, ev.ValidationFailed) and verdict.error.code == "validation_failed"
    assert "the validator stopped while checking it" in verdict.error.message
    assert await h.claim_next(uow, RULES, "after") is None


async def test_storage_errors_back_off_then_give_up(uow, repo) -> None:
    await h.record_upload(uow, uploaded())
    delays = []
    for _ in range(RULES.max_attempts):
        got = await h.claim_next(uow, RULES, "w")
        assert isinstance(got, h.Claimed)
        step = await h.retry_or_give_up(uow, RULES, got.job, Cause.STORAGE_UNAVAILABLE, "connection refused")
        if isinstance(step, Retry):
            delays.append(step.delay)
            assert await h.claim_next(uow, RULES, "w") is None  # not due yet
            repo.advance(step.delay)
    assert delays == [2, 4]
    (verdict,) = uow.messages()
    assert "could not be read from storage in 3 attempts" in verdict.error.message


async def test_a_waiting_manifest_gets_its_attempt_back(uow, repo) -> None:
    await h.record_upload(uow, uploaded(obj(T.MANIFEST, "m.jsonl"), batch=[uuid.uuid4()]))
    for _ in range(RULES.max_attempts + 2):
        got = await h.claim_next(uow, RULES, "w")
        assert isinstance(got, h.Claimed) and got.job.attempts == 1
        await h.wait(uow, got.job)
        repo.advance(domain.WAIT_POLL_SECONDS)


async def test_validation_requests_republish_leave_or_requeue(uow, repo) -> None:
    model = uuid.uuid4()
    done, waiting, lost, dead = obj(), obj(), obj(), obj()
    for o in (done, waiting, dead):
        await h.record_upload(uow, uploaded(o, model))
    for _ in range(3):  # finish `done`, give `dead` up, put `waiting` back
        got = await h.claim_next(uow, RULES, "w")
        assert isinstance(got, h.Claimed)
        if got.job.dataset.dataset_id == done.dataset_id:
            await h.finish(uow, got.job, FAILED)
        elif got.job.dataset.dataset_id == dead.dataset_id:
            await h.retry_or_give_up(uow, RULES, got.job, Cause.OBJECT_MISSING, "k")
        else:
            await h.wait(uow, got.job)
    first = uow.messages()
    repo.rows[waiting.dataset_id].status = JobStatus.PENDING

    answers = {o.dataset_id: await h.answer_request(uow, requested(o, model)) for o in (done, waiting, lost, dead)}

    assert answers == {
        done.dataset_id: Answer.REPUBLISH,
        waiting.dataset_id: Answer.LEAVE,
        lost.dataset_id: Answer.REQUEUE,
        dead.dataset_id: Answer.REQUEUE,
    }
    again = uow.messages()[len(first) :]
    original = next(m for m in first if m.dataset_id == done.dataset_id)
    assert again == [original]  # the same verdict, published again
    assert repo.rows[lost.dataset_id].status is JobStatus.PENDING and repo.rows[lost.dataset_id].attempts == 0
    assert repo.rows[dead.dataset_id].status is JobStatus.PENDING and repo.rows[dead.dataset_id].result is None
    req = requested(done, model)
    assert await h.answer_request(uow, req) is Answer.REPUBLISH
    assert await h.answer_request(uow, req) is None  # redelivered: answered once


async def test_a_request_of_another_tenant_touches_nothing(uow, repo) -> None:
    o, model = obj(), uuid.uuid4()
    await h.record_upload(uow, uploaded(o, model, tenant="acme"))
    assert await h.answer_request(uow, requested(o, model, tenant="other")) is Answer.REQUEUE
    assert repo.rows[o.dataset_id].dataset.tenant_id == "acme"


# ---------------------------------------------------------------- the job loop


class Blocking:
    """A content check that waits until released (or cancelled), counting its calls."""

    def __init__(self, result: dict[str, Any] | Exception) -> None:
        self.result, self.calls, self.release = result, 0, threading.Event()
        self.saw_cancel = threading.Event()

    def __call__(self, dataset: Dataset, siblings: Any, cancelled: threading.Event) -> dict[str, Any]:
        self.calls += 1
        while not self.release.wait(0.01):
            if cancelled.is_set():
                self.saw_cancel.set()
                raise StorageUnavailable("cancelled")
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@contextlib.asynccontextmanager
async def looping(loop: JobLoop) -> AsyncIterator[None]:
    """The job loop runs for the block."""
    stop = asyncio.Event()
    runner = asyncio.ensure_future(loop.run(stop))
    try:
        yield
    finally:
        stop.set()
        await runner


async def until(done: Callable[[], object], tick: Callable[[], None] = lambda: None) -> None:
    """Wait (3 s at most) for ``done()``, calling ``tick`` between looks."""
    for _ in range(300):
        if done():
            return
        tick()
        await asyncio.sleep(0.01)


async def test_the_loop_renews_a_long_job_and_finishes_it(uow, repo) -> None:
    check = Blocking(PASSED)
    loop = JobLoop(uow, check, JobRules(max_attempts=3, lease_seconds=0.2), owner="w", concurrency=2, poll_seconds=0.05)
    await h.record_upload(uow, uploaded())
    async with looping(loop):
        await asyncio.sleep(0.5)
        check.release.set()
        await until(uow.messages)
    assert check.calls == 1 and repo.renewals >= 3
    assert [type(m) for m in uow.messages()] == [ev.ValidationPassed]


async def test_the_loop_discards_the_result_of_a_lost_lease_and_stops_reading(uow, repo) -> None:
    rules = JobRules(max_attempts=3, lease_seconds=0.2)
    check = Blocking(PASSED)
    env = uploaded()
    ds = env.payload().dataset.dataset_id
    await h.record_upload(uow, env)
    async with looping(JobLoop(uow, check, rules, owner="w", concurrency=1, poll_seconds=0.05)):
        await until(lambda: check.calls)
        repo.expire(ds)
        assert isinstance(await h.claim_next(uow, rules, "other"), h.Claimed)  # another worker takes it over
        assert await asyncio.to_thread(check.saw_cancel.wait, 2)
    assert uow.messages() == [] and repo.rows[ds].status is JobStatus.RUNNING


async def test_a_crashing_check_is_retried_and_the_loop_lives_on(uow, repo) -> None:
    check = Blocking(ZeroDivisionError("boom"))
    check.release.set()
    rules = JobRules(max_attempts=2, lease_seconds=5, retry_base_seconds=0.01)
    await h.record_upload(uow, uploaded())
    async with looping(JobLoop(uow, check, rules, owner="w", concurrency=1, poll_seconds=0.01)):
        await until(uow.messages, tick=lambda: repo.advance(1))
    assert check.calls == 2
    (verdict,) = uow.messages()
    assert "failed 2 times with an internal error (ZeroDivisionError: boom)" in verdict.error.message


async def test_database_outages_neither_end_the_loop_nor_lose_a_finished_check() -> None:
    repo = FakeValidatorRepository(claim_outages=2, finish_outages=2)
    uow = FakeUnitOfWork(repo)
    check = Blocking(PASSED)
    check.release.set()
    await h.record_upload(uow, uploaded())
    async with looping(JobLoop(uow, check, JobRules(lease_seconds=30), owner="w", concurrency=1, poll_seconds=0.01)):
        await until(uow.messages)
    assert (repo.claim_outages, repo.finish_outages, check.calls) == (0, 0, 1)  # the write was retried, not the check
    assert [type(m) for m in uow.messages()] == [ev.ValidationPassed]
