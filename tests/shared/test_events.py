import json
from uuid import uuid4

import pytest
from pydantic import ValidationError

from voxtrain_shared import events as ev
from voxtrain_shared.vocab import DatasetType, ErrorCode, ModelStatus


def test_round_trip_through_the_registry() -> None:
    model_id = uuid4()
    env = ev.wrap(ev.ModelCreated(name="radiology", language="en-US"), tenant_id="acme", model_id=model_id)
    back = ev.REGISTRY.parse(env.to_bytes())
    assert back == env
    assert back.payload() == ev.ModelCreated(name="radiology", language="en-US")
    assert back.key() == str(model_id).encode()


def test_correlation_and_causation_follow_the_cause() -> None:
    cause = ev.wrap(ev.StartTraining(), tenant_id="acme", model_id=uuid4())
    effect = ev.wrap(ev.TrainingStarted(run_id=uuid4()), tenant_id="acme", model_id=cause.model_id, causation=cause)
    assert effect.correlation_id == cause.correlation_id
    assert effect.causation_id == cause.id


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"type": "ModelCreated"}',
        json.dumps(
            {
                "id": str(uuid4()),
                "type": "Nope",
                "version": 1,
                "occurred_at": "2026-01-01T00:00:00Z",
                "tenant_id": "t",
                "correlation_id": str(uuid4()),
                "data": {},
            }
        ).encode(),
        json.dumps(
            {
                "id": str(uuid4()),
                "type": "ModelCreated",
                "version": 1,
                "occurred_at": "2026-01-01T00:00:00Z",
                "tenant_id": "t",
                "correlation_id": str(uuid4()),
                "data": {"name": 3},
            }
        ).encode(),
    ],
)
def test_malformed_messages_are_rejected(raw: bytes) -> None:
    with pytest.raises(ev.UnknownMessage):
        ev.REGISTRY.parse(raw)


def test_payloads_are_frozen_and_versioned() -> None:
    msg = ev.TrainingFailed(run_id=uuid4(), error=ev.ErrorInfo(code=ErrorCode.WORKER_LOST, message="lost"))
    with pytest.raises(ValidationError):
        msg.run_id = uuid4()
    assert all(c.VERSION >= 1 and c.TOPIC for c in ev.REGISTRY.classes())
    names = {c.TYPE for c in ev.REGISTRY.classes()}
    assert {
        "ModelCreated",
        "ModelUpdated",
        "ModelDeleted",
        "TrainingRequested",
        "TrainingStatusChanged",
        "DatasetUploaded",
        "DatasetDeleted",
        "ValidationPassed",
        "ValidationFailed",
        "TrainingStarted",
        "TrainingProgress",
        "TrainingSucceeded",
        "TrainingFailed",
        "CreateModel",
        "StartTraining",
    } <= names


def test_vocabulary_matches_the_spec() -> None:
    assert [(s.value, s.badge) for s in ModelStatus] == [
        (1, "zinc"),
        (2, "amber"),
        (3, "sky"),
        (4, "emerald"),
        (5, "red"),
    ]
    assert [s.value for s in ModelStatus if s.can_train] == [1, 5]
    assert DatasetType.parse("audio") is DatasetType.AUDIO
    assert DatasetType.parse("4") is DatasetType.MANIFEST
    assert DatasetType.TRANSCRIPT.extensions == (".vtt", ".srt", ".txt")
