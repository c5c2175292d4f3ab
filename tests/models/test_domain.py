"""The status state machine, as a table, on the pure domain code."""

import uuid
from datetime import UTC, datetime
from itertools import product

import pytest

from voxtrain_models.domain import (
    TRANSITIONS,
    CustomModel,
    Dataset,
    Rejected,
    StatusChanged,
    TrainingRequestedEvent,
    Trigger,
    next_status,
)
from voxtrain_shared.vocab import DatasetType, ErrorCode
from voxtrain_shared.vocab import ModelStatus as S

ALLOWED = {
    (S.NOT_RUNNING, Trigger.DATASETS_UPLOADED): S.READY_TO_RUN,
    (S.NOT_RUNNING, Trigger.TRAIN): S.READY_TO_RUN,
    (S.FAILED, Trigger.TRAIN): S.READY_TO_RUN,
    (S.READY_TO_RUN, Trigger.VALIDATION_FAILED): S.FAILED,
    (S.READY_TO_RUN, Trigger.TRAINING_STARTED): S.RUNNING,
    (S.READY_TO_RUN, Trigger.TRAINING_FAILED): S.FAILED,
    (S.RUNNING, Trigger.TRAINING_SUCCEEDED): S.SUCCESS,
    (S.RUNNING, Trigger.TRAINING_FAILED): S.FAILED,
    (S.READY_TO_RUN, Trigger.CANCEL): S.FAILED,
    (S.RUNNING, Trigger.CANCEL): S.FAILED,
}


def test_the_table_is_the_designs() -> None:
    assert TRANSITIONS == ALLOWED


@pytest.mark.parametrize(("status", "trigger"), list(product(S, Trigger)))
def test_every_pair_is_allowed_or_refused(status: S, trigger: Trigger) -> None:
    if (status, trigger) in ALLOWED:
        assert next_status(status, trigger) is ALLOWED[(status, trigger)]
    else:
        with pytest.raises(Rejected) as exc:
            next_status(status, trigger)
        assert exc.value.code is ErrorCode.INVALID_STATUS


def model(status: S = S.NOT_RUNNING, auto_train: bool = True) -> CustomModel:
    return CustomModel(
        id=uuid.uuid4(), tenant_id="acme", name="m", language="en-US", status=status, auto_train=auto_train
    )


def dataset(kind: DatasetType = DatasetType.TRANSCRIPT) -> Dataset:
    ds_id = uuid.uuid4()
    loc = {
        "dataset_id": str(ds_id),
        "dataset_type": int(kind),
        "file_name": "a.txt",
        "bucket": "b",
        "object_key": f"k/{ds_id}",
        "size": 3,
        "sha256": "0" * 64,
    }
    return Dataset(ds_id, kind, "a.txt", location=loc)


def statuses(m: CustomModel) -> list[tuple[int, int]]:
    return [(e.old.value, e.new.value) for e in m.events if isinstance(e, StatusChanged)]


def test_happy_path_from_upload_to_success() -> None:
    m = model()
    d = dataset()
    m.dataset_uploaded(d)
    assert m.status is S.READY_TO_RUN and not m.training_requested
    m.dataset_validated(d.id, d.type, d.file_name, passed=True)
    requested = [e for e in m.events if isinstance(e, TrainingRequestedEvent)]
    assert len(requested) == 1 and requested[0].run_id == m.run_id
    m.dataset_validated(d.id, d.type, d.file_name, passed=True)  # a repeat does not request twice
    assert len([e for e in m.events if isinstance(e, TrainingRequestedEvent)]) == 1
    m.training_started(m.run_id)
    m.training_progress(m.run_id, "lm", 40.0, None, eta_seconds=12.5, attempt=1, max_attempts=3)
    assert m.progress == {
        "stage": "lm",
        "percent": 40.0,
        "message": None,
        "eta_seconds": 12.5,
        "attempt": 1,
        "max_attempts": 3,
    }
    m.training_succeeded(m.run_id, {"wer": 0.1}, datetime.now(UTC))
    assert statuses(m) == [(1, 2), (2, 3), (3, 4)]
    assert m.metrics == {"wer": 0.1}


def test_without_auto_train_an_upload_keeps_status_1() -> None:
    m = model(auto_train=False)
    m.dataset_uploaded(dataset())
    assert m.status is S.NOT_RUNNING and m.events == []


def test_train_needs_a_dataset_and_status_1_or_5() -> None:
    with pytest.raises(Rejected) as exc:
        model().train()
    assert exc.value.code is ErrorCode.NO_DATASETS and "upload" in exc.value.message
    for st in (S.READY_TO_RUN, S.RUNNING, S.SUCCESS):
        m = model(st)
        m.datasets[uuid.uuid4()] = dataset()
        with pytest.raises(Rejected) as exc:
            m.train()
        assert exc.value.code is ErrorCode.INVALID_STATUS


def test_a_failed_dataset_fails_a_queued_model_with_its_reason() -> None:
    m = model()
    good, bad = dataset(), dataset(DatasetType.AUDIO)
    m.dataset_uploaded(good)
    m.dataset_uploaded(bad)
    m.dataset_validated(good.id, good.type, good.file_name, passed=True)
    m.dataset_validated(
        bad.id,
        bad.type,
        "talk.wav",
        passed=False,
        error={"code": "invalid_audio_format", "message": "this is an MP3 named .wav"},
    )
    assert m.status is S.FAILED
    assert m.last_error["code"] == "invalid_audio_format" and m.last_error["dataset_id"] == str(bad.id)
    assert "this is an MP3 named .wav" in m.last_error["message"]
    # Uploading to a failed model keeps it at 5 until Train; Train with the bad one still there fails again.
    m.dataset_uploaded(dataset())
    assert m.status is S.FAILED
    m.train()
    assert m.status is S.FAILED and statuses(m)[-2:] == [(5, 2), (2, 5)]
    m.dataset_deleted(bad.id)
    m.train()
    assert m.status is S.READY_TO_RUN


def test_model_is_locked_while_queued_or_running_and_stale_runs_are_ignored() -> None:
    m = model()
    d = dataset()
    m.dataset_uploaded(d)
    for attempt in (lambda: m.update(name="x"), m.ensure_deletable):
        with pytest.raises(Rejected) as exc:
            attempt()
        assert exc.value.code is ErrorCode.MODEL_LOCKED
    m.dataset_validated(d.id, d.type, d.file_name, passed=True)
    m.training_started(uuid.uuid4())  # another run's event
    assert m.status is S.READY_TO_RUN
    m.training_started(m.run_id)
    m.training_failed(m.run_id, {"code": "worker_lost", "message": "trainer died"}, datetime.now(UTC))
    assert m.status is S.FAILED and m.last_error["code"] == "worker_lost"
    assert m.update(name="renamed") == ["name"]


def test_training_waits_for_every_dataset_of_an_upload() -> None:
    """Validation of the first file of an upload can be seen before the upload of the second."""
    m = model()
    first, second = dataset(), dataset(DatasetType.AUDIO)
    m.dataset_uploaded(first, batch=(first.id, second.id))
    m.dataset_validated(first.id, first.type, first.file_name, passed=True)
    assert not m.training_requested  # the second file is announced but not seen yet
    m.dataset_validated(second.id, second.type, second.file_name, passed=True)  # validation before its upload
    assert not m.training_requested
    m.dataset_uploaded(second, batch=(first.id, second.id))
    requested = [e for e in m.events if isinstance(e, TrainingRequestedEvent)]
    assert len(requested) == 1 and len(requested[0].datasets) == 2
