"""Cancel across the whole system on the real servers: at 2 (during a slow validation) and at 3 (during a real
training, whose worker process must end), each ending at 5 ``cancelled`` within seconds with exactly one status
event per transition; Train works again afterwards."""

import asyncio
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.support import TopicReader, auth_headers, eventually, running, settings_for, unique
from tests.trainer.medical_domain import TRAINING_TEXT
from tests.trainer.test_service_integration import _alive
from voxtrain_datasets.bootstrap import build as build_datasets
from voxtrain_models.bootstrap import build as build_models
from voxtrain_shared import events as ev
from voxtrain_shared.settings import DatasetsSettings, ModelsSettings, TrainerSettings, ValidatorSettings
from voxtrain_shared.storage import make_client
from voxtrain_trainer.bootstrap import build as build_trainer
from voxtrain_trainer.processes import WorkerProcess
from voxtrain_validator.bootstrap import build as build_validator
from voxtrain_validator.domain import Dataset, Sibling
from voxtrain_validator.storage import Cancelled, object_validator

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ACME = auth_headers("acme")
BIG_CORPUS = (TRAINING_TEXT * 300).encode()  # trains for well over the seconds a cancel takes


class SlowFirstCheck:
    """The real content check, except that the first check of a file named ``slow-*`` takes until it is
    cancelled (a validation of hours of audio, in short)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.blocked, self.stopped = threading.Event(), threading.Event()
        self.stopped_at = 0.0
        self._seen: set[uuid.UUID] = set()

    def __call__(self, dataset: Dataset, siblings: Mapping[uuid.UUID, Sibling], cancelled: threading.Event) -> Any:
        if dataset.file_name.startswith("slow-") and dataset.dataset_id not in self._seen:
            self._seen.add(dataset.dataset_id)
            self.blocked.set()
            if cancelled.wait(120):
                self.stopped_at = time.monotonic()
                self.stopped.set()
                raise Cancelled("stopped")
        return self.real(dataset, siblings, cancelled)


@pytest.fixture
async def system(stack, tmp_path):
    shared = {
        "VOXTRAIN_KAFKA__TOPIC_NAMESPACE": unique("cancel"),
        "VOXTRAIN_MINIO__BUCKET": unique("cancel").replace("_", "-"),
    }
    workers: list[WorkerProcess] = []
    async with AsyncExitStack() as stack_:
        clients: dict[str, Any] = {"workers": workers}
        for name, cls in (("models", ModelsSettings), ("datasets", DatasetsSettings)):
            build = build_models if name == "models" else build_datasets
            svc = build(settings_for(cls, stack, **shared))
            clients[name] = await stack_.enter_async_context(running(svc))
            clients["topics"] = svc.topics
        settings = settings_for(ValidatorSettings, stack, **shared)
        clients["check"] = check = SlowFirstCheck(object_validator(make_client(settings.minio)))
        await stack_.enter_async_context(running(build_validator(settings, validate=check, poll_seconds=0.2)))
        trainer = settings_for(TrainerSettings, stack, VOXTRAIN_WORK_DIR=str(tmp_path / "trainer"), **shared)
        await stack_.enter_async_context(running(build_trainer(trainer, on_worker_started=workers.append)))
        yield clients


def parsed(reader: TopicReader, model_id: str) -> list[ev.Envelope]:
    return [e for r in reader.records if str((e := ev.REGISTRY.parse(r.value)).model_id) == model_id]


def transitions(reader: TopicReader, model_id: str) -> list[tuple[int, int]]:
    return [
        (p.old_status, p.new_status)
        for e in parsed(reader, model_id)
        if e.type == "TrainingStatusChanged" and (p := e.payload())
    ]


def reaches(reader: TopicReader, model_id: str, *steps: tuple[int, int]):
    return lambda _: transitions(reader, model_id)[: len(steps)] == list(steps)


async def new_model(models, datasets, name: str, file_name: str, data: bytes) -> str:
    r = await models.post("/v1/models", json={"name": name, "language": "en-US"}, headers=ACME)
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    r = await datasets.post(
        f"/v1/models/{mid}/datasets", files=[("files", (file_name, data, "text/plain"))], headers=ACME
    )
    assert r.status_code == 201, r.text
    return mid


async def cancel(models, mid: str) -> dict[str, Any]:
    r = await models.post(f"/v1/models/{mid}/cancel", headers=ACME)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"]["code"] == 5 and body["can_train"] is True
    assert body["last_error"]["code"] == "cancelled" and body["last_error"]["cancelled_by"] == "acme"
    return body


async def test_cancel_during_validation_stops_the_check_and_train_again_reaches_success(system, stack) -> None:
    models, datasets, topics, check = system["models"], system["datasets"], system["topics"], system["check"]
    async with TopicReader(stack.kafka_bootstrap, topics.status, topics.training_events) as reader:
        mid = await new_model(models, datasets, "cancel-at-2", "slow-notes.txt", TRAINING_TEXT.encode())
        assert await asyncio.to_thread(check.blocked.wait, 60)
        await reader.until(
            reaches(reader, mid, (1, 2)), timeout=60
        )  # models may hear of the upload after the validator
        asked = time.monotonic()
        await cancel(models, mid)
        assert await asyncio.to_thread(check.stopped.wait, 10)
        stop_seconds = check.stopped_at - asked
        assert stop_seconds < 5, stop_seconds
        await reader.settle(2)
        assert transitions(reader, mid) == [(1, 2), (2, 5)]
        assert not any(e.type.startswith("Training") and e.type != "TrainingStatusChanged" for e in parsed(reader, mid))

        r = await models.post(f"/v1/models/{mid}/train", headers=ACME)
        assert r.status_code == 202, r.text
        await reader.until(reaches(reader, mid, (1, 2), (2, 5), (5, 2), (2, 3), (3, 4)), timeout=600)
    body = (await models.get(f"/v1/models/{mid}", headers=ACME)).json()
    assert body["status"]["code"] == 4 and body["last_error"] is None
    listing = (await datasets.get(f"/v1/models/{mid}/datasets", headers=ACME)).json()
    assert {d["status"] for d in listing["datasets"]} == {"valid"}  # validated again after the cancel
    r = await models.post(f"/v1/models/{mid}/cancel", headers=ACME)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_status" and "Success" in r.text
    print(f"validation stopped {stop_seconds:.2f} s after the cancel request")


async def test_cancel_during_training_ends_the_worker_process_and_publishes_no_result(system, stack) -> None:
    models, datasets, topics, workers = system["models"], system["datasets"], system["topics"], system["workers"]
    async with TopicReader(stack.kafka_bootstrap, topics.status, topics.training_events) as reader:
        mid = await new_model(models, datasets, "cancel-at-3", "notes.txt", BIG_CORPUS)
        await reader.until(reaches(reader, mid, (1, 2), (2, 3)), timeout=120)
        await eventually(lambda: _true(len(workers) >= 1), timeout=60)
        first = workers[0]
        assert _alive(first.pid)
        asked = time.monotonic()
        body = await cancel(models, mid)
        await eventually(lambda: _true(not _alive(first.pid)), timeout=15, interval=0.05)
        ended_seconds = time.monotonic() - asked
        assert ended_seconds < 10, ended_seconds
        await reader.settle(3)
        assert transitions(reader, mid) == [(1, 2), (2, 3), (3, 5)]
        results = [e.type for e in parsed(reader, mid) if e.type in ("TrainingSucceeded", "TrainingFailed")]
        assert results == []
        await eventually(lambda: _true(not first.work_dir.exists()), timeout=10)

        r = await models.post(f"/v1/models/{mid}/train", headers=ACME)  # Train again: a new run starts
        assert r.status_code == 202, r.text
        await reader.until(reaches(reader, mid, (1, 2), (2, 3), (3, 5), (5, 2), (2, 3)), timeout=120)
        await eventually(lambda: _true(len(workers) >= 2), timeout=60)
        second = workers[1]
        assert second.run_id != first.run_id and body["run"]["id"] == str(first.run_id)
        await cancel(models, mid)
        await eventually(lambda: _true(not _alive(second.pid)), timeout=15, interval=0.05)
        await reader.settle(2)
    assert transitions(reader, mid) == [(1, 2), (2, 3), (3, 5), (5, 2), (2, 3), (3, 5)]
    assert not [e for e in parsed(reader, mid) if e.type in ("TrainingSucceeded", "TrainingFailed")]
    print(f"worker process ended {ended_seconds:.2f} s after the cancel request")


async def _true(value: bool) -> bool:
    return value
