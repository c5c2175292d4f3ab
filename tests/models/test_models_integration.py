"""The models service against real PostgreSQL and Kafka: HTTP in, events out; events in, statuses out."""

import uuid

import pytest

from tests.support import TopicReader, auth_headers, eventually, publish, running, settings_for
from voxtrain_models.bootstrap import build
from voxtrain_shared import events as ev
from voxtrain_shared.settings import ModelsSettings
from voxtrain_shared.vocab import DatasetType, Scope

pytestmark = pytest.mark.integration
ACME, OTHER = auth_headers("acme"), auth_headers("other")


@pytest.fixture
async def svc(stack):
    service = build(settings_for(ModelsSettings, stack))
    async with running(service) as client:
        service.client = client
        yield service


def uploaded(model_id: uuid.UUID, tenant: str = "acme", kind: DatasetType = DatasetType.TRANSCRIPT) -> ev.Envelope:
    ds = uuid.uuid4()
    obj = ev.DatasetObject(
        dataset_id=ds,
        dataset_type=kind,
        file_name=f"{ds}.txt",
        bucket="b",
        object_key=f"tenants/{tenant}/models/{model_id}/datasets/{ds}/data",
        size=10,
        sha256="a" * 64,
    )
    return ev.wrap(ev.DatasetUploaded(dataset=obj), tenant_id=tenant, model_id=model_id)


def passed(up: ev.Envelope) -> ev.Envelope:
    d = up.payload().dataset
    return ev.wrap(
        ev.ValidationPassed(dataset_id=d.dataset_id, dataset_type=d.dataset_type, file_name=d.file_name),
        tenant_id=up.tenant_id,
        model_id=up.model_id,
        causation=up,
    )


async def status_of(svc, model_id) -> int:
    r = await svc.client.get(f"/v1/models/{model_id}", headers=ACME)
    return r.json()["status"]["code"]


async def create(svc, name="radiology", **kw) -> dict:
    r = await svc.client.post("/v1/models", json={"name": name, "language": "en-US", **kw}, headers=ACME)
    assert r.status_code == 201, r.text
    return r.json()


async def test_http_calls_produce_events_for_an_independent_consumer(svc, stack) -> None:
    t = svc.topics
    async with TopicReader(stack.kafka_bootstrap, t.models, t.status) as reader:
        m = await create(svc, description="chest x-ray reports")
        assert m["status"] == {"code": 1, "name": "NOT_RUNNING", "label": "Not Running", "badge": "zinc"}
        assert m["can_train"] is True
        r = await svc.client.patch(f"/v1/models/{m['id']}", json={"description": "CT too"}, headers=ACME)
        assert r.status_code == 200 and r.json()["description"] == "CT too"
        assert (await svc.client.delete(f"/v1/models/{m['id']}", headers=ACME)).status_code == 204
        records = await reader.read(3)
    got = [ev.REGISTRY.parse(r.value) for r in records]
    assert [e.type for e in got] == ["ModelCreated", "ModelUpdated", "ModelDeleted"]
    assert all(str(e.model_id) == m["id"] and e.tenant_id == "acme" for e in got)
    assert got[1].payload().changed == ["description"]


async def test_a_status_subscriber_follows_a_model_from_1_to_4(svc, stack) -> None:
    t = svc.topics
    m = await create(svc)
    mid = uuid.UUID(m["id"])
    async with TopicReader(stack.kafka_bootstrap, t.status, t.training_commands) as reader:
        up = uploaded(mid)
        await publish(stack.kafka_bootstrap, t.datasets, up)
        await eventually(lambda: _is(svc, mid, 2))
        r = (await svc.client.get(f"/v1/models/{mid}", headers=ACME)).json()
        assert r["can_train"] is False and r["datasets"]["by_type"]["TRANSCRIPT"] == 1
        assert r["datasets"]["validation"] == {"pending": 1, "passed": 0, "failed": 0}
        await publish(stack.kafka_bootstrap, t.validation, passed(up))
        records = await reader.read(2)
        requested = next(ev.REGISTRY.parse(r.value) for r in records if r.topic == t.training_commands)
        run_id = requested.payload().run_id
        assert requested.payload().datasets[0].dataset_id == up.payload().dataset.dataset_id
        await publish(
            stack.kafka_bootstrap,
            t.training_events,
            ev.wrap(ev.TrainingStarted(run_id=run_id), tenant_id="acme", model_id=mid),
            ev.wrap(
                ev.TrainingProgress(run_id=run_id, stage="lm", percent=50, eta_seconds=42.0, attempt=1, max_attempts=3),
                tenant_id="acme",
                model_id=mid,
            ),
        )

        async def progress_shown() -> bool:
            body = (await svc.client.get(f"/v1/models/{mid}", headers=ACME)).json()
            return body["run"]["progress"] == {
                "stage": "lm",
                "percent": 50.0,
                "message": None,
                "eta_seconds": 42.0,
                "attempt": 1,
                "max_attempts": 3,
            }

        await eventually(progress_shown)
        await publish(
            stack.kafka_bootstrap,
            t.training_events,
            ev.wrap(
                ev.TrainingSucceeded(run_id=run_id, metrics={"custom": {"wer": 0.2}}, artifacts={"lm": "k"}),
                tenant_id="acme",
                model_id=mid,
            ),
        )
        await eventually(lambda: _is(svc, mid, 4))
        await reader.read(4)
    changes = [ev.REGISTRY.parse(r.value).payload() for r in reader.records if r.topic == t.status]
    assert [(c.old_status, c.new_status, c.badge) for c in changes] == [
        (1, 2, "amber"),
        (2, 3, "sky"),
        (3, 4, "emerald"),
    ]
    assert changes[1].run_id == run_id
    body = (await svc.client.get(f"/v1/models/{mid}", headers=ACME)).json()
    assert body["run"]["metrics"]["custom"] == {"wer": 0.2} and body["run"]["finished_at"]
    # At 4 the model is final: Train is refused.
    r = await svc.client.post(f"/v1/models/{mid}/train", headers=ACME)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_status"


async def _is(svc, mid, code):
    return await status_of(svc, mid) == code


async def test_validation_failure_moves_to_5_with_the_reason_and_redelivery_changes_nothing(svc, stack) -> None:
    t = svc.topics
    m = await create(svc)
    mid = uuid.UUID(m["id"])
    up = uploaded(mid, kind=DatasetType.AUDIO)
    d = up.payload().dataset
    failed = ev.wrap(
        ev.ValidationFailed(
            dataset_id=d.dataset_id,
            dataset_type=d.dataset_type,
            file_name="talk.wav",
            error=ev.ErrorInfo(code="invalid_audio_format", message="found an MP3 stream in a .wav file"),
        ),
        tenant_id="acme",
        model_id=mid,
    )
    async with TopicReader(stack.kafka_bootstrap, t.status) as reader:
        await publish(stack.kafka_bootstrap, t.datasets, up)
        await publish(stack.kafka_bootstrap, t.validation, failed)
        await reader.read(2)
        await publish(stack.kafka_bootstrap, t.datasets, up)  # redelivered
        await publish(stack.kafka_bootstrap, t.validation, failed)  # redelivered
        await reader.settle(3)
    changes = [ev.REGISTRY.parse(r.value).payload() for r in reader.records]
    assert [(c.old_status, c.new_status) for c in changes] == [(1, 2), (2, 5)]
    assert changes[1].error.code == "invalid_audio_format" and changes[1].error.file_name == "talk.wav"
    body = (await svc.client.get(f"/v1/models/{mid}", headers=ACME)).json()
    assert body["status"]["code"] == 5 and body["can_train"] is True
    assert body["last_error"]["dataset_id"] == str(d.dataset_id)
    assert "MP3" in body["last_error"]["message"]


async def test_train_rules_and_locks_over_http(svc, stack) -> None:
    m = await create(svc, auto_train=False)
    mid = m["id"]
    r = await svc.client.post(f"/v1/models/{mid}/train", headers=ACME)
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_datasets"
    assert "upload" in r.json()["error"]["message"].lower()
    await publish(stack.kafka_bootstrap, svc.topics.datasets, uploaded(uuid.UUID(mid)))
    await eventually(lambda: _has_datasets(svc, mid))
    assert await status_of(svc, mid) == 1  # auto_train off
    r = await svc.client.post(f"/v1/models/{mid}/train", headers=ACME)
    assert r.status_code == 202 and r.json()["message"] == "Training started successfully"
    assert r.json()["model"]["status"]["code"] == 2
    for call in (svc.client.post(f"/v1/models/{mid}/train", headers=ACME),):
        r = await call
        assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_status"
    r = await svc.client.delete(f"/v1/models/{mid}", headers=ACME)
    assert r.status_code == 409 and r.json()["error"]["code"] == "model_locked"
    assert "until training is finished" in r.json()["error"]["message"]
    r = await svc.client.patch(f"/v1/models/{mid}", json={"name": "x"}, headers=ACME)
    assert r.status_code == 409 and r.json()["error"]["code"] == "model_locked"


async def _has_datasets(svc, mid):
    r = await svc.client.get(f"/v1/models/{mid}", headers=ACME)
    return r.json()["datasets"]["total"] > 0


async def test_tenants_never_see_each_other(svc) -> None:
    m = await create(svc, name="shared-name")
    mid = m["id"]
    assert (
        await svc.client.post("/v1/models", json={"name": "shared-name", "language": "en-US"}, headers=OTHER)
    ).status_code == 201  # names are unique per tenant only
    r = await svc.client.post("/v1/models", json={"name": "shared-name", "language": "en-US"}, headers=ACME)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    for method, path, body in [
        ("GET", f"/v1/models/{mid}", None),
        ("PATCH", f"/v1/models/{mid}", {"name": "z"}),
        ("DELETE", f"/v1/models/{mid}", None),
        ("POST", f"/v1/models/{mid}/train", None),
    ]:
        r = await svc.client.request(method, path, json=body, headers=OTHER)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, path)
        r = await svc.client.request(method, path, json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    listing = (await svc.client.get("/v1/models", headers=OTHER)).json()
    assert [x["name"] for x in listing["items"]] == ["shared-name"] and listing["items"][0]["id"] != mid
    assert (await svc.client.get("/v1/models?status=1", headers=ACME)).json()["total"] == 1
    assert (await svc.client.get("/v1/models?status=4", headers=ACME)).json()["total"] == 0
    assert (await svc.client.get("/health/live")).status_code == 200
    assert (await svc.client.get("/health/ready")).json()["status"] == "ok"


async def test_bad_requests_get_clear_errors(svc) -> None:
    r = await svc.client.post("/v1/models", json={"name": "", "language": "english"}, headers=ACME)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"
    r = await svc.client.post("/v1/models", json={"name": "x", "language": "fr-FR"}, headers=ACME)
    assert r.status_code == 422 and "supported: en-US" in r.json()["error"]["message"]


async def test_other_services_drive_it_over_the_commands_topic(svc, stack) -> None:
    t = svc.topics
    token = {"authorization": ACME["Authorization"]}
    mid = uuid.uuid4()
    create_cmd = ev.wrap(ev.CreateModel(name="from-kafka", language="en-US"), tenant_id="acme", model_id=mid)
    forged = ev.wrap(ev.StartTraining(), tenant_id="other", model_id=mid)
    no_data = ev.wrap(ev.StartTraining(), tenant_id="acme", model_id=mid)
    async with TopicReader(stack.kafka_bootstrap, t.models) as reader:
        await publish(stack.kafka_bootstrap, t.model_commands, create_cmd, headers=token)
        await publish(stack.kafka_bootstrap, t.model_commands, create_cmd, headers=token)  # redelivered
        await publish(stack.kafka_bootstrap, t.model_commands, forged, headers=token)
        await publish(stack.kafka_bootstrap, t.model_commands, no_data)  # no token
        await publish(stack.kafka_bootstrap, t.model_commands, no_data, headers=token)  # same id: handled already
        fresh = ev.wrap(ev.StartTraining(), tenant_id="acme", model_id=mid)
        await publish(stack.kafka_bootstrap, t.model_commands, fresh, headers=token)
        await reader.read(4)
        await reader.settle(2)
    got = [ev.REGISTRY.parse(r.value) for r in reader.records]
    assert [g.type for g in got] == ["ModelCreated", "CommandRejected", "CommandRejected", "CommandRejected"]
    codes = [(g.payload().command_id, g.payload().code) for g in got[1:]]
    assert codes == [(forged.id, "forbidden"), (no_data.id, "unauthorized"), (fresh.id, "no_datasets")]
    assert (await svc.client.get(f"/v1/models/{mid}", headers=ACME)).json()["name"] == "from-kafka"


async def test_commands_need_the_scope_of_what_they_do(svc, stack) -> None:
    t = svc.topics
    mid = uuid.uuid4()
    write_only = {"authorization": auth_headers("acme", scopes=frozenset({Scope.READ, Scope.WRITE}))["Authorization"]}
    read_only = {"authorization": auth_headers("acme", scopes=frozenset({Scope.READ}))["Authorization"]}
    auto = ev.wrap(ev.CreateModel(name="auto", language="en-US"), tenant_id="acme", model_id=uuid.uuid4())
    by_reader = ev.wrap(ev.CreateModel(name="r", language="en-US", auto_train=False), tenant_id="acme", model_id=mid)
    manual = ev.wrap(ev.CreateModel(name="manual", language="en-US", auto_train=False), tenant_id="acme", model_id=mid)
    train = ev.wrap(ev.StartTraining(), tenant_id="acme", model_id=mid)
    async with TopicReader(stack.kafka_bootstrap, t.models) as reader:
        await publish(stack.kafka_bootstrap, t.model_commands, auto, headers=write_only)  # auto_train needs train
        await publish(stack.kafka_bootstrap, t.model_commands, by_reader, headers=read_only)
        await publish(stack.kafka_bootstrap, t.model_commands, manual, headers=write_only)
        await publish(stack.kafka_bootstrap, t.model_commands, train, headers=write_only)
        await reader.read(4)
        await reader.settle(1)
    got = [ev.REGISTRY.parse(r.value) for r in reader.records]
    assert [g.type for g in got] == ["CommandRejected", "CommandRejected", "ModelCreated", "CommandRejected"]
    rejected = [g.payload() for g in got if g.type == "CommandRejected"]
    assert [(r.command_id, r.code) for r in rejected] == [
        (auto.id, "forbidden"),
        (by_reader.id, "forbidden"),
        (train.id, "forbidden"),
    ]
    assert "'train' scope" in rejected[0].message and "'write' scope" in rejected[1].message
