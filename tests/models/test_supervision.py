"""Supervision of models at 2 and 3 (pure domain) and the handler that applies it (fake unit of work)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import FakeUnitOfWork
from tests.models.fakes import InMemoryModels
from voxtrain_models import handlers as h
from voxtrain_models.domain import (
    CustomModel,
    Dataset,
    Phase,
    Rejected,
    StatusChanged,
    Supervision,
    TrainingRequestedEvent,
    ValidationRequestedEvent,
)
from voxtrain_shared import events as ev
from voxtrain_shared.vocab import DatasetType, ErrorCode
from voxtrain_shared.vocab import ModelStatus as S

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES = Supervision(
    validation=timedelta(minutes=10), start=timedelta(minutes=30), heartbeat=timedelta(minutes=5), max_redrives=2
)


def dataset(name: str = "a.txt", uploaded: bool = True) -> Dataset:
    ds_id = uuid.uuid4()
    loc = {
        "dataset_id": str(ds_id),
        "dataset_type": 1,
        "file_name": name,
        "bucket": "b",
        "object_key": f"k/{ds_id}",
        "size": 3,
        "sha256": "0" * 64,
    }
    return Dataset(ds_id, DatasetType.TRANSCRIPT, name, location=loc if uploaded else None)


def queued(*datasets: Dataset, at: datetime = T0) -> CustomModel:
    """A model at 2 waiting for verdicts, saved at ``at``."""
    m = CustomModel(id=uuid.uuid4(), tenant_id="acme", name="m", language="en-US")
    for d in datasets:
        m.dataset_uploaded(d)
    m.settle(at)
    m.events.clear()
    return m


def running(at: datetime = T0) -> CustomModel:
    d = dataset()
    m = queued(d, at=at)
    m.dataset_validated(d.id, d.type, d.file_name, passed=True)
    assert m.run_id is not None
    m.training_started(m.run_id)
    m.settle(at)
    m.events.clear()
    return m


def test_nothing_happens_before_the_deadline() -> None:
    m = queued(dataset())
    assert m.phase is Phase.VALIDATING and m.due_at(RULES) == T0 + RULES.validation
    assert m.supervise(T0 + RULES.validation - timedelta(seconds=1), RULES) is None
    assert m.events == [] and m.redrives == 0


def test_a_late_verdict_is_asked_for_again_for_each_unvalidated_dataset_then_the_model_fails() -> None:
    a, b, c = dataset("a.txt"), dataset("b.txt"), dataset("c.txt", uploaded=False)
    m = queued(a, b, c)
    m.dataset_validated(a.id, a.type, a.file_name, passed=True)
    m.settle(T0)
    m.events.clear()
    now = T0 + RULES.validation
    done = m.supervise(now, RULES)
    assert done is not None and not done.failed and done.attempt == 1
    asked = [e for e in m.events if isinstance(e, ValidationRequestedEvent)]
    assert [e.location["file_name"] for e in asked] == ["b.txt"] and asked[0].attempt == 1
    assert m.status is S.READY_TO_RUN and m.due_at(RULES) == now + RULES.validation
    m.events.clear()
    assert m.supervise(now + timedelta(minutes=1), RULES) is None  # a new window began
    now += RULES.validation
    assert m.supervise(now, RULES) == type(done)(Phase.VALIDATING, 2, failed=False)
    m.events.clear()
    now += RULES.validation
    gave_up = m.supervise(now, RULES)
    assert gave_up is not None and gave_up.failed
    (changed,) = m.events
    assert isinstance(changed, StatusChanged) and (changed.old, changed.new) == (S.READY_TO_RUN, S.FAILED)
    assert m.last_error is not None and m.last_error["code"] == ErrorCode.VALIDATION_TIMEOUT.value
    assert "b.txt" in m.last_error["message"] and "c.txt" in m.last_error["message"]
    assert "never completed" in m.last_error["message"] and "Train" in m.last_error["message"]
    assert m.status.can_train


def test_a_verdict_restarts_the_window_and_the_count() -> None:
    a, b = dataset("a.txt"), dataset("b.txt")
    m = queued(a, b)
    m.supervise(T0 + RULES.validation, RULES)
    assert m.redrives == 1
    later = T0 + RULES.validation + timedelta(minutes=3)
    m.dataset_validated(a.id, a.type, a.file_name, passed=True)
    m.settle(later)
    assert m.redrives == 0 and m.watched_since == later


def test_a_stale_or_duplicate_fact_is_no_sign_of_life() -> None:
    m = running()
    m.training_progress(uuid.uuid4(), "lexicon", 50.0, None)  # another run
    m.settle(T0 + timedelta(minutes=4))
    assert m.watched_since == T0


def test_a_silent_training_is_requested_again_with_the_same_run_and_a_higher_attempt_then_fails() -> None:
    m = running()
    run_id = m.run_id
    now = T0 + RULES.heartbeat
    m.supervise(now, RULES)
    (asked,) = m.events
    assert isinstance(asked, TrainingRequestedEvent) and asked.run_id == run_id and asked.attempt == 2
    assert asked.datasets and m.status is S.RUNNING
    m.events.clear()
    m.training_progress(run_id, "lexicon", 40.0, None)  # the trainer answered: the count starts over
    m.settle(now)
    for attempt in (3, 4):
        now += RULES.heartbeat
        m.supervise(now, RULES)
        assert [e.attempt for e in m.events if isinstance(e, TrainingRequestedEvent)] == [attempt]
        m.events.clear()
    now += RULES.heartbeat
    gave_up = m.supervise(now, RULES)
    assert gave_up is not None and gave_up.failed
    (changed,) = m.events
    assert isinstance(changed, StatusChanged) and (changed.old, changed.new) == (S.RUNNING, S.FAILED)
    assert changed.run_id == run_id and changed.error is not None
    assert changed.error["code"] == ErrorCode.WORKER_LOST.value and changed.error["stage"] == "lexicon"
    m.events.clear()
    m.training_succeeded(run_id, {}, now)  # a result after giving up changes nothing
    assert m.status is S.FAILED and m.events == []


def test_a_requested_training_that_never_starts_is_asked_for_again() -> None:
    d = dataset()
    m = queued(d)
    m.dataset_validated(d.id, d.type, d.file_name, passed=True)
    m.settle(T0)
    m.events.clear()
    assert m.phase is Phase.STARTING
    assert m.supervise(T0 + RULES.validation, RULES) is None  # the start deadline is its own
    m.supervise(T0 + RULES.start, RULES)
    assert [type(e) for e in m.events] == [TrainingRequestedEvent]


def test_an_operator_redrive_asks_at_once_and_never_fails() -> None:
    m = running()
    m.redrives = RULES.max_redrives
    done = m.supervise(T0 + timedelta(seconds=1), RULES, force=True)
    assert done is not None and not done.failed and m.status is S.RUNNING
    with pytest.raises(Rejected) as exc:
        CustomModel(id=uuid.uuid4(), tenant_id="t", name="n", language="en-US").supervise(T0, RULES, force=True)
    assert exc.value.code is ErrorCode.INVALID_STATUS


def test_a_deleted_dataset_stays_deleted() -> None:
    a, b = dataset("a.txt"), dataset("b.txt")
    m = queued(a, b)
    m.dataset_deleted(b.id)
    m.dataset_validated(b.id, b.type, b.file_name, passed=False, error={"code": "validation_failed", "message": "late"})
    m.dataset_uploaded(b)
    assert set(m.datasets) == {a.id} and m.status is S.READY_TO_RUN
    m.dataset_validated(a.id, a.type, a.file_name, passed=True)
    assert any(isinstance(e, TrainingRequestedEvent) for e in m.events)


# ---------------------------------------------------------------- the handler, on a fake unit of work


async def test_the_handler_re_requests_overdue_models_and_emits_one_status_change_when_it_gives_up() -> None:
    repo = InMemoryModels()
    waiting, fresh = queued(dataset()), queued(dataset(), at=T0 + timedelta(minutes=9))
    repo.add(waiting, fresh)
    uow = FakeUnitOfWork(repo)
    now = T0 + RULES.validation
    done = await h.supervise(uow, RULES, now)
    assert [(r.phase, r.attempt) for r in done] == [(Phase.VALIDATING, 1)]
    (asked,) = uow.messages(ev.ValidationRequested)
    assert asked.attempt == 1 and asked.dataset.file_name == "a.txt"
    assert uow.emitted[0][1] == waiting.id
    assert await h.supervise(uow, RULES, now) == []  # idempotent: the window was restarted
    for _ in range(RULES.max_redrives):
        now += RULES.validation
        await h.supervise(uow, RULES, now)
    assert len(uow.messages(ev.TrainingStatusChanged)) == 1
    (failed,) = uow.messages(ev.TrainingStatusChanged)
    assert failed.new_status is S.FAILED and failed.error is not None
    assert failed.error.code is ErrorCode.VALIDATION_TIMEOUT
    before = [mid for _, mid in uow.emitted].count(waiting.id)
    await h.supervise(uow, RULES, now + RULES.validation * 5)  # `waiting` is at 5: supervised no more
    assert [mid for _, mid in uow.emitted].count(waiting.id) == before
    assert [mid for _, mid in uow.emitted].count(fresh.id) > 0


async def test_an_operator_redrive_of_an_unknown_model_is_refused() -> None:
    with pytest.raises(Rejected) as exc:
        await h.redrive(FakeUnitOfWork(InMemoryModels()), RULES, uuid.uuid4(), T0)
    assert exc.value.code is ErrorCode.NOT_FOUND


async def test_a_model_asked_again_stays_overdue_until_it_answers() -> None:
    repo = InMemoryModels()
    waiting, quiet = queued(dataset()), queued(dataset())
    repo.add(waiting, quiet)
    uow = FakeUnitOfWork(repo)
    now = T0 + RULES.validation - timedelta(seconds=1)
    assert await h.count_overdue(uow, RULES, now) == {S.READY_TO_RUN: 0, S.RUNNING: 0}
    now = T0 + RULES.validation
    assert {m.id for m in await h.overdue(uow, RULES, now)} == {waiting.id, quiet.id}
    await h.supervise(uow, RULES, now)  # both asked again: a new window, but no answer yet
    assert await h.count_overdue(uow, RULES, now) == {S.READY_TO_RUN: 2, S.RUNNING: 0}
    answered = await repo.get("acme", waiting.id)
    assert answered is not None
    (d,) = answered.datasets.values()
    answered.dataset_validated(d.id, d.type, d.file_name, passed=True)
    answered.settle(now)
    await repo.save(answered)
    assert [m.id for m in await h.overdue(uow, RULES, now)] == [quiet.id]


def test_leaving_2_or_3_reports_the_time_spent_there() -> None:
    d = dataset()
    m = queued(d)  # at 2 since T0
    m.status_since = T0
    m.dataset_validated(d.id, d.type, d.file_name, passed=True)
    assert m.settle(T0 + timedelta(seconds=5)) == []  # still at 2
    assert m.run_id is not None
    m.training_started(m.run_id)
    assert m.settle(T0 + timedelta(seconds=30)) == [(S.READY_TO_RUN, 30.0)]
    m.events.clear()
    m.training_succeeded(m.run_id, {}, T0)
    assert m.settle(T0 + timedelta(seconds=100)) == [(S.RUNNING, 70.0)]
