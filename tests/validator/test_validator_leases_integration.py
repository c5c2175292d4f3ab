"""Leases, fencing and the attempt cap on the real PostgreSQL: the use cases over the real repository."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.support import unique
from voxtrain_shared import events as ev
from voxtrain_shared import ops
from voxtrain_shared.db import create_pool
from voxtrain_shared.topics import Topics
from voxtrain_shared.uow import UnitOfWork
from voxtrain_shared.vocab import DatasetType as T
from voxtrain_shared.vocab import ErrorCode
from voxtrain_validator import handlers as h
from voxtrain_validator.domain import LEASE_LOST, Answer, Cause, JobRules, Retry
from voxtrain_validator.repository import ValidatorRepository
from voxtrain_validator.rules.outcome import Finding, Outcome, passed

pytestmark = pytest.mark.integration
RULES = JobRules(max_attempts=2, lease_seconds=30, retry_base_seconds=0.1)
PASSED = passed({}).to_dict()
FAILED = Outcome(
    False, ErrorCode.INVALID_TRANSCRIPT_FORMAT, "not UTF-8", (Finding("not UTF-8", byte_offset=3),)
).to_dict()


@pytest.fixture
async def db(stack) -> AsyncIterator[tuple[asyncpg.Pool, UnitOfWork[ValidatorRepository]]]:
    schema = unique("validator")
    await ops.migrate_service(stack.postgres_dsn, "validator", schema)
    pool = await create_pool(stack.postgres_dsn, schema)
    try:
        yield pool, h.unit_of_work(lambda: pool, schema, Topics(unique("ns")))
    finally:
        await pool.close()


def upload() -> ev.Envelope:
    ds = uuid.uuid4()
    obj = ev.DatasetObject(
        dataset_id=ds,
        dataset_type=T.TRANSCRIPT,
        file_name="notes.txt",
        bucket="b",
        object_key=f"k/{ds}",
        size=1,
        sha256="0" * 64,
    )
    return ev.wrap(ev.DatasetUploaded(dataset=obj, batch=[ds]), tenant_id="acme", model_id=uuid.uuid4())


async def expire(pool: asyncpg.Pool, env: ev.Envelope) -> None:
    """The job's holder stopped renewing (it died): its lease is over."""
    await pool.execute(
        "UPDATE datasets SET lease_until = now() - interval '1 second' WHERE dataset_id=$1",
        env.payload().dataset.dataset_id,
    )


async def outbox(pool: asyncpg.Pool) -> list[Any]:
    return [
        ev.REGISTRY.parse(bytes(r["payload"])).payload()
        for r in await pool.fetch("SELECT payload FROM outbox ORDER BY seq")
    ]


async def queued_and_claimed(uow: UnitOfWork[ValidatorRepository]) -> tuple[ev.Envelope, h.Claimed]:
    """An uploaded dataset, claimed by worker "one"."""
    env = upload()
    await h.record_upload(uow, env)
    claimed = await h.claim_next(uow, RULES, "one")
    assert isinstance(claimed, h.Claimed)
    return env, claimed


async def test_a_stale_worker_changes_nothing_and_the_holder_finishes(db) -> None:
    pool, uow = db
    env, stale = await queued_and_claimed(uow)
    assert await h.claim_next(uow, RULES, "two") is None  # leased
    assert await h.renew(uow, RULES, stale.job)
    await expire(pool, env)
    fresh = await h.claim_next(uow, RULES, "two")
    assert isinstance(fresh, h.Claimed) and fresh.job.attempts == 2 and fresh.job.last_error == LEASE_LOST

    assert not await h.renew(uow, RULES, stale.job)
    assert not await h.finish(uow, stale.job, PASSED)
    assert isinstance(await h.retry_or_give_up(uow, RULES, stale.job, Cause.STORAGE_UNAVAILABLE, "x"), Retry)
    row = await pool.fetchrow("SELECT status, lease_owner, result FROM datasets")
    assert (row["status"], row["lease_owner"], row["result"]) == ("running", "two", None)
    assert await outbox(pool) == []

    assert await h.finish(uow, fresh.job, FAILED)
    (verdict,) = await outbox(pool)
    assert isinstance(verdict, ev.ValidationFailed) and verdict.error.details == [
        {"message": "not UTF-8", "byte_offset": 3}
    ]
    assert await pool.fetchval("SELECT status FROM datasets") == "failed"


async def test_workers_that_keep_dying_spend_the_attempts_then_the_dataset_fails(db) -> None:
    pool, uow = db
    env = upload()
    await h.record_upload(uow, env)
    for owner in ("one", "two"):
        assert isinstance(await h.claim_next(uow, RULES, owner), h.Claimed)
        await expire(pool, env)
    given_up = await h.claim_next(uow, RULES, "three")
    assert isinstance(given_up, h.Exhausted)
    (verdict,) = await outbox(pool)
    assert verdict.error.code == "validation_failed"
    assert verdict.error.message.startswith("notes.txt could not be validated in 2 attempts: the validator stopped")
    assert await pool.fetchval("SELECT status FROM datasets") == "dead"
    assert await h.claim_next(uow, RULES, "four") is None


async def test_a_given_up_job_is_queued_again_when_models_asks(db) -> None:
    _pool, uow = db
    env, claimed = await queued_and_claimed(uow)
    await h.retry_or_give_up(uow, RULES, claimed.job, Cause.OBJECT_MISSING, "gone")
    ask = ev.wrap(
        ev.ValidationRequested(dataset=env.payload().dataset, attempt=2), tenant_id="acme", model_id=env.model_id
    )
    assert await h.answer_request(uow, ask) is Answer.REQUEUE
    again = await h.claim_next(uow, RULES, "two")
    assert isinstance(again, h.Claimed) and again.job.attempts == 1 and again.job.request.id == ask.id
    assert await h.answer_request(uow, ask) is None  # redelivered
