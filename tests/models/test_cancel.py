"""Cancel on the pure domain (every status) and through the handlers with fakes."""

import uuid
from datetime import UTC, datetime

import pytest

from tests.fakes import FakeUnitOfWork
from tests.models.fakes import InMemoryModels
from tests.models.test_domain import dataset, model, statuses
from voxtrain_models import handlers as h
from voxtrain_models.domain import (
    CancelledEvent,
    CustomModel,
    Rejected,
    TrainingRequestedEvent,
    ValidationRequestedEvent,
)
from voxtrain_shared import events as ev
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import ErrorCode
from voxtrain_shared.vocab import ModelStatus as S

NOW = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)


def validating() -> tuple[CustomModel, list]:
    """A model at 2 whose two datasets wait for their verdicts (one already passed)."""
    m = model()
    first, second = dataset(), dataset()
    m.dataset_uploaded(first, batch=(first.id, second.id))
    m.dataset_uploaded(second, batch=(first.id, second.id))
    m.dataset_validated(first.id, first.type, first.file_name, passed=True)
    m.events.clear()
    return m, [first, second]


def running() -> CustomModel:
    m = model()
    d = dataset()
    m.dataset_uploaded(d)
    m.dataset_validated(d.id, d.type, d.file_name, passed=True)
    m.training_started(m.run_id)
    m.events.clear()
    return m


def test_cancel_while_validating_fails_the_model_and_names_the_checks_to_stop() -> None:
    m, (_, second) = validating()
    m.cancel("acme", NOW)
    assert m.status is S.FAILED and statuses(m) == [(2, 5)]
    assert m.last_error["code"] == "cancelled" and m.last_error["cancelled_by"] == "acme"
    assert "cancelled by acme" in m.last_error["message"] and "Train" in m.last_error["message"]
    assert m.events[-1] == CancelledEvent(None, (second.id,), "acme")  # no run was requested yet
    assert m.finished_at == NOW and m.status.can_train


def test_cancel_while_running_names_the_run_and_its_late_facts_change_nothing() -> None:
    m = running()
    run_id = m.run_id
    m.cancel("acme", NOW)
    assert statuses(m) == [(3, 5)] and m.events[-1] == CancelledEvent(run_id, (), "acme")
    m.events.clear()
    m.training_started(run_id)
    m.training_progress(run_id, "lm", 50.0, None)
    m.training_succeeded(run_id, {"wer": 0.1}, NOW)
    m.training_failed(run_id, {"code": "worker_lost", "message": "gone"}, NOW)
    assert m.status is S.FAILED and m.events == [] and m.last_error["code"] == "cancelled" and m.metrics is None


def test_cancel_when_training_was_requested_but_not_started_names_the_run() -> None:
    m = model()
    d = dataset()
    m.dataset_uploaded(d)
    m.dataset_validated(d.id, d.type, d.file_name, passed=True)
    run_id = m.run_id
    m.cancel("acme", NOW)
    assert m.events[-1] == CancelledEvent(run_id, (), "acme")
    m.training_started(run_id)  # the trainer had started it after all: the cancel wins
    assert m.status is S.FAILED


@pytest.mark.parametrize("status", [S.NOT_RUNNING, S.SUCCESS, S.FAILED])
def test_cancel_in_another_status_is_refused_and_changes_nothing(status: S) -> None:
    m = model(status)
    with pytest.raises(Rejected) as exc:
        m.cancel("acme", NOW)
    assert exc.value.code is ErrorCode.INVALID_STATUS
    assert "Ready to Run or Running" in exc.value.message and status.label in exc.value.message
    assert m.status is status and m.events == []


def test_train_after_cancel_asks_again_for_the_verdicts_that_were_dropped() -> None:
    m, (_, second) = validating()
    m.cancel("acme", NOW)
    m.events.clear()
    m.train()
    assert m.status is S.READY_TO_RUN and m.last_error is None
    asked = [e for e in m.events if isinstance(e, ValidationRequestedEvent)]
    assert [e.location["dataset_id"] for e in asked] == [str(second.id)]  # the passed one is not asked again
    m.dataset_validated(second.id, second.type, second.file_name, passed=True)
    requested = [e for e in m.events if isinstance(e, TrainingRequestedEvent)]
    assert len(requested) == 1 and m.run_id == requested[0].run_id


def test_train_after_a_cancelled_run_requests_a_new_run_and_the_old_one_stays_stale() -> None:
    m = running()
    old = m.run_id
    m.cancel("acme", NOW)
    m.train()
    assert m.run_id is not None and m.run_id != old
    m.training_started(old)
    assert m.status is S.READY_TO_RUN
    m.training_started(m.run_id)
    assert m.status is S.RUNNING


# ---------------------------------------------------------------- handlers with fakes


async def test_the_cancel_handler_moves_to_5_and_emits_the_status_change_and_training_cancelled_together() -> None:
    repo = InMemoryModels()
    m = running()
    repo.add(m)
    uow = FakeUnitOfWork(repo)
    got = await h.cancel_training(uow, Context("acme", uuid.uuid4()), m.id, "acme")
    assert got.status is S.FAILED and repo.models[m.id].status is S.FAILED
    assert uow.commits == 1
    changed = uow.messages(ev.TrainingStatusChanged)
    assert [(c.old_status, c.new_status) for c in changed] == [(3, 5)]
    assert changed[0].error is not None and changed[0].error.code is ErrorCode.CANCELLED
    [cancelled] = uow.messages(ev.TrainingCancelled)
    assert cancelled.run_id == m.run_id and cancelled.cancelled_by == "acme"

    with pytest.raises(Rejected) as exc:  # a second cancel: the model is at 5
        await h.cancel_training(uow, Context("acme", uuid.uuid4()), m.id, "acme")
    assert exc.value.code is ErrorCode.INVALID_STATUS
    assert len(uow.messages(ev.TrainingCancelled)) == 1


async def test_cancel_of_another_tenants_model_is_not_found() -> None:
    repo = InMemoryModels()
    m = running()
    repo.add(m)
    with pytest.raises(Rejected) as exc:
        await h.cancel_training(FakeUnitOfWork(repo), Context("globex", uuid.uuid4()), m.id, "globex")
    assert exc.value.code is ErrorCode.NOT_FOUND and repo.models[m.id].status is S.RUNNING
