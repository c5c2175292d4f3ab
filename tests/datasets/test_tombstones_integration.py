"""Deleted stays deleted (issue 11, item 7), against the real servers: late facts about a deleted dataset
or model — a verdict, our own DatasetUploaded, a status change, even a repeated ModelCreated — change
nothing and recreate nothing."""

from __future__ import annotations

import uuid

import pytest

from tests.support import auth_headers, eventually, publish
from voxtrain_shared import events as ev
from voxtrain_shared.vocab import DatasetType, ErrorCode, ModelStatus

pytestmark = pytest.mark.integration
ACME = auth_headers("acme")


def passed(ds: dict) -> ev.ValidationPassed:
    return ev.ValidationPassed(
        dataset_id=uuid.UUID(ds["id"]),
        dataset_type=DatasetType[ds["type"]],
        file_name=ds["file_name"],
        metadata={"duration_s": 1.0},
    )


def failed(ds: dict) -> ev.ValidationFailed:
    return ev.ValidationFailed(
        dataset_id=uuid.UUID(ds["id"]),
        dataset_type=DatasetType[ds["type"]],
        file_name=ds["file_name"],
        error=ev.ErrorInfo(code=ErrorCode.INVALID_AUDIO_FORMAT, message="late"),
    )


def uploaded_again(ds: dict, bucket: str) -> ev.DatasetUploaded:
    return ev.DatasetUploaded(
        dataset=ev.DatasetObject(
            dataset_id=uuid.UUID(ds["id"]),
            dataset_type=DatasetType[ds["type"]],
            file_name=ds["file_name"],
            bucket=bucket,
            object_key=f"tenants/acme/models/{ds['model_id']}/datasets/{ds['id']}/data",
            size=ds["size"],
            sha256=ds["sha256"],
        )
    )


async def deliver(datasets, topic: str, consumer: str, mid: uuid.UUID, *messages: ev.Message) -> None:
    """Publish ``messages`` about model ``mid`` and wait until ``consumer`` has handled every one."""
    envs = [ev.wrap(m, tenant_id="acme", model_id=mid) for m in messages]
    await publish(datasets.stack.kafka_bootstrap, topic, *envs)
    for env in envs:
        await eventually(lambda env=env: datasets.handled(consumer, env.id))


async def test_a_verdict_for_a_deleted_dataset_changes_nothing(datasets) -> None:
    mid = await datasets.new_model()
    r = await datasets.upload(mid, [("gone.wav", b"RIFF sound"), ("kept.txt", b"words")])
    assert r.status_code == 201, r.text
    gone, kept = r.json()["datasets"]
    assert (await datasets.client.delete(f"/v1/models/{mid}/datasets/{gone['id']}", headers=ACME)).status_code == 204

    t = datasets.topics
    await deliver(datasets, t.datasets, "published", mid, uploaded_again(gone, datasets.store.bucket))
    await deliver(datasets, t.validation, "validation", mid, passed(gone), failed(gone), passed(kept))

    listing = await datasets.listing(mid)
    assert [x["id"] for x in listing] == [kept["id"]]  # the verdict for kept.txt did apply ...
    assert listing[0]["status"] == "valid"
    # ... while the deleted dataset stays deleted, in the API and in the repository.
    assert (await datasets.client.get(f"/v1/models/{mid}/datasets/{gone['id']}", headers=ACME)).status_code == 404
    async with datasets.deps.uow.reading() as repo:
        assert await repo.get_dataset("acme", mid, uuid.UUID(gone["id"])) is None


async def test_late_events_for_a_deleted_model_recreate_nothing(datasets) -> None:
    mid = await datasets.new_model()
    r = await datasets.upload(mid, [("a.wav", b"RIFF sound"), ("b.txt", b"words")])
    assert r.status_code == 201, r.text
    sent = r.json()["datasets"]
    t = datasets.topics
    await deliver(datasets, t.models, "models", mid, ev.ModelDeleted())

    # Everything that may still be in flight for it arrives afterwards.
    await deliver(datasets, t.models, "models", mid, ev.ModelCreated(name="again", language="en-US"))
    await deliver(
        datasets,
        t.status,
        "status",
        mid,
        ev.TrainingStatusChanged(
            old_status=None, new_status=ModelStatus.NOT_RUNNING, status_name="NOT_RUNNING", badge="zinc", reason="late"
        ),
    )
    await deliver(datasets, t.datasets, "published", mid, *(uploaded_again(ds, datasets.store.bucket) for ds in sent))
    await deliver(datasets, t.validation, "validation", mid, passed(sent[0]), failed(sent[1]))

    assert (await datasets.client.get(f"/v1/models/{mid}/datasets", headers=ACME)).status_code == 404
    assert (await datasets.upload(mid, [("c.txt", b"x")])).status_code == 404
    started = await datasets.client.post(
        f"/v1/models/{mid}/uploads", headers=ACME, json={"file_name": "d.wav", "size": 10}
    )
    assert started.status_code == 404, started.text
    async with datasets.deps.uow.reading() as repo:
        assert await repo.model_status("acme", mid) is None
        assert await repo.list_datasets("acme", mid) == []


async def test_a_delete_that_overtakes_the_creation_still_wins(datasets) -> None:
    mid = uuid.uuid4()  # never announced: ModelDeleted is the first thing this service hears of it
    t = datasets.topics
    await deliver(datasets, t.models, "models", mid, ev.ModelDeleted())
    await deliver(datasets, t.models, "models", mid, ev.ModelCreated(name="late", language="en-US"))
    await deliver(
        datasets,
        t.status,
        "status",
        mid,
        ev.TrainingStatusChanged(
            old_status=1, new_status=ModelStatus.FAILED, status_name="FAILED", badge="red", reason="late"
        ),
    )
    assert (await datasets.client.get(f"/v1/models/{mid}/datasets", headers=ACME)).status_code == 404
    assert (await datasets.upload(mid, [("c.txt", b"x")])).status_code == 404
