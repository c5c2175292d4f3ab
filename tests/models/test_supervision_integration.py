"""Supervision and tombstones of the models service against real PostgreSQL and Kafka (short deadlines)."""

import uuid

import pytest

from tests.models.test_models_integration import ACME, create, passed, uploaded
from tests.support import ISSUER_AUTH, TopicReader, eventually, publish, running, settings_for
from voxtrain_models.bootstrap import build
from voxtrain_shared import events as ev
from voxtrain_shared.auth import issue_token
from voxtrain_shared.settings import ModelsSettings

pytestmark = pytest.mark.integration
OPERATOR = {"Authorization": "Bearer " + issue_token(ISSUER_AUTH, "ops", operator=True)}
SHORT = {
    "VOXTRAIN_SUPERVISION__EVERY_SECONDS": "0.3",
    "VOXTRAIN_SUPERVISION__VALIDATION_SECONDS": "1.5",
    "VOXTRAIN_SUPERVISION__START_SECONDS": "1.5",
    "VOXTRAIN_SUPERVISION__HEARTBEAT_SECONDS": "1.5",
    "VOXTRAIN_SUPERVISION__MAX_REDRIVES": "1",
}


@pytest.fixture
async def svc(stack):
    service = build(settings_for(ModelsSettings, stack, **SHORT))
    async with running(service) as client:
        service.client = client
        yield service


def _parsed(reader: TopicReader, topic: str) -> list[ev.Envelope]:
    return [ev.REGISTRY.parse(r.value) for r in reader.records if r.topic == topic]


def _transitions(reader: TopicReader, topic: str, mid: uuid.UUID) -> list[tuple[int | None, int]]:
    return [
        (p.old_status, p.new_status)
        for e in _parsed(reader, topic)
        if e.model_id == mid
        for p in [e.payload()]
        if isinstance(p, ev.TrainingStatusChanged)
    ]


async def test_a_model_without_verdicts_is_asked_for_again_then_fails_with_validation_timeout(svc, stack) -> None:
    t = svc.topics
    mid = uuid.UUID((await create(svc))["id"])
    up = uploaded(mid)
    async with TopicReader(stack.kafka_bootstrap, t.status, t.models) as reader:
        await publish(stack.kafka_bootstrap, t.datasets, up)
        await reader.until(lambda _: (2, 5) in _transitions(reader, t.status, mid), timeout=30)
        await reader.settle(2)
    asked = [e.payload() for e in _parsed(reader, t.models) if e.type == "ValidationRequested"]
    assert [(a.dataset.dataset_id, a.attempt) for a in asked] == [(up.payload().dataset.dataset_id, 1)]
    assert _transitions(reader, t.status, mid) == [(1, 2), (2, 5)]
    body = (await svc.client.get(f"/v1/models/{mid}", headers=ACME)).json()
    assert body["status"]["code"] == 5 and body["last_error"]["code"] == "validation_timeout"
    assert up.payload().dataset.file_name in body["last_error"]["message"]


async def test_a_silent_training_is_requested_again_with_the_same_run_then_fails_with_worker_lost(svc, stack) -> None:
    t = svc.topics
    mid = uuid.UUID((await create(svc))["id"])
    up = uploaded(mid)
    async with TopicReader(stack.kafka_bootstrap, t.status, t.training_commands) as reader:
        await publish(stack.kafka_bootstrap, t.datasets, up)
        await publish(stack.kafka_bootstrap, t.validation, passed(up))
        await reader.until(lambda _: _parsed(reader, t.training_commands))
        run_id = _parsed(reader, t.training_commands)[0].payload().run_id
        await publish(
            stack.kafka_bootstrap,
            t.training_events,
            ev.wrap(ev.TrainingStarted(run_id=run_id), tenant_id="acme", model_id=mid),
        )
        await reader.until(lambda _: (3, 5) in _transitions(reader, t.status, mid), timeout=30)
        await reader.settle(2)
    requests = [e.payload() for e in _parsed(reader, t.training_commands)]
    assert [(r.run_id, r.attempt) for r in requests] == [(run_id, 1), (run_id, 2)]
    assert _transitions(reader, t.status, mid) == [(1, 2), (2, 3), (3, 5)]
    body = (await svc.client.get(f"/v1/models/{mid}", headers=ACME)).json()
    assert body["last_error"]["code"] == "worker_lost" and "Train again" in body["last_error"]["message"]


async def test_an_operator_lists_overdue_models_and_redrives_one(stack) -> None:
    slow = {**SHORT, "VOXTRAIN_SUPERVISION__EVERY_SECONDS": "3600"}  # nobody but the operator acts
    service = build(settings_for(ModelsSettings, stack, **slow))
    async with running(service) as client:
        service.client = client
        t = service.topics
        mid = uuid.UUID((await create(service))["id"])
        up = uploaded(mid)
        async with TopicReader(stack.kafka_bootstrap, t.models) as reader:
            await publish(stack.kafka_bootstrap, t.datasets, up)

            async def listed():
                r = await client.get("/v1/ops/models/overdue", headers=OPERATOR)
                return [m for m in r.json() if m["id"] == str(mid)]

            (row,) = await eventually(listed)
            assert row["tenant_id"] == "acme" and row["phase"] == "validating" and row["redrives"] == 0
            assert (await client.get("/v1/ops/models/overdue", headers=ACME)).status_code == 403
            r = await client.post(f"/v1/ops/models/{mid}/redrive", headers=OPERATOR)
            assert r.status_code == 200 and r.json()["redrives"] == 1
            await reader.until(lambda recs: any(ev.REGISTRY.parse(x.value).type == "ValidationRequested" for x in recs))
        r = await client.post(f"/v1/ops/models/{uuid.uuid4()}/redrive", headers=OPERATOR)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_a_late_verdict_does_not_bring_back_a_deleted_dataset(svc, stack) -> None:
    t = svc.topics
    mid = uuid.UUID((await create(svc, auto_train=False))["id"])
    keep, gone = uploaded(mid), uploaded(mid)
    d = gone.payload().dataset
    deleted = ev.wrap(
        ev.DatasetDeleted(dataset_id=d.dataset_id, dataset_type=d.dataset_type), tenant_id="acme", model_id=mid
    )
    late = ev.wrap(
        ev.ValidationFailed(
            dataset_id=d.dataset_id,
            dataset_type=d.dataset_type,
            file_name=d.file_name,
            error=ev.ErrorInfo(code="invalid_transcript_format", message="late"),
        ),
        tenant_id="acme",
        model_id=mid,
    )
    await publish(stack.kafka_bootstrap, t.datasets, keep, gone, deleted)

    async def one_dataset():
        body = (await svc.client.get(f"/v1/models/{mid}", headers=ACME)).json()
        return body["datasets"]["total"] == 1 and body

    await eventually(one_dataset)
    await publish(stack.kafka_bootstrap, t.validation, late, passed(gone))
    await publish(stack.kafka_bootstrap, t.datasets, gone)  # a redelivered upload event, after the delete
    async with TopicReader(stack.kafka_bootstrap, t.status, t.training_commands) as reader:
        await publish(stack.kafka_bootstrap, t.validation, passed(keep))
        r = await svc.client.post(f"/v1/models/{mid}/train", headers=ACME)
        assert r.status_code == 202, r.text
        await reader.until(lambda _: _parsed(reader, t.training_commands))
    (requested,) = [e.payload() for e in _parsed(reader, t.training_commands)]
    assert [x.dataset_id for x in requested.datasets] == [keep.payload().dataset.dataset_id]
    body = (await svc.client.get(f"/v1/models/{mid}", headers=ACME)).json()
    assert body["datasets"]["total"] == 1 and body["status"]["code"] == 2 and body["last_error"] is None
