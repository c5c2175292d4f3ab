"""Cancel on the models service against real PostgreSQL and Kafka: over HTTP and as a CancelTraining command."""

import uuid

import pytest

from tests.models import test_models_integration
from tests.models.test_models_integration import ACME, create, status_of, uploaded
from tests.support import TopicReader, publish
from voxtrain_shared import events as ev

pytestmark = pytest.mark.integration
svc = test_models_integration.svc  # the fixture


def parsed(reader: TopicReader) -> list[ev.Envelope]:
    return [ev.REGISTRY.parse(r.value) for r in reader.records]


async def test_cancel_over_http_at_2_moves_to_5_with_who_and_emits_training_cancelled_once(svc, stack) -> None:
    t = svc.topics
    m = await create(svc, "to-cancel")
    mid = uuid.UUID(m["id"])
    r = await svc.client.post(f"/v1/models/{mid}/cancel", headers=ACME)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_status"
    assert "Not Running" in r.json()["error"]["message"]
    up = uploaded(mid)
    async with TopicReader(stack.kafka_bootstrap, t.models, t.status) as reader:
        await publish(stack.kafka_bootstrap, t.datasets, up)
        await reader.until(lambda recs: any(ev.REGISTRY.parse(x.value).type == "TrainingStatusChanged" for x in recs))
        r = await svc.client.post(f"/v1/models/{mid}/cancel", headers=ACME)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"]["code"] == 5 and body["can_train"] is True
        assert body["last_error"]["code"] == "cancelled" and body["last_error"]["cancelled_by"] == "acme"
        again = await svc.client.post(f"/v1/models/{mid}/cancel", headers=ACME)
        assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_status"
        await reader.until(lambda recs: any(ev.REGISTRY.parse(x.value).type == "TrainingCancelled" for x in recs))
        await reader.settle(1)
    got = [e for e in parsed(reader) if e.model_id == mid]
    changes = [e.payload() for e in got if e.type == "TrainingStatusChanged"]
    assert [(c.old_status, c.new_status) for c in changes] == [(1, 2), (2, 5)]
    assert changes[-1].error.code == "cancelled"
    (cancelled,) = [e.payload() for e in got if e.type == "TrainingCancelled"]
    assert cancelled.run_id is None and cancelled.cancelled_by == "acme"
    assert cancelled.dataset_ids == [up.payload().dataset.dataset_id]
    other = await svc.client.post(f"/v1/models/{mid}/cancel", headers={"Authorization": ACME["Authorization"][:-4]})
    assert other.status_code == 401


async def test_cancel_training_command_is_authorized_idempotent_and_refused_with_its_code(svc, stack) -> None:
    t = svc.topics
    token = {"authorization": ACME["Authorization"]}
    m = await create(svc, "cancel-by-command")
    mid = uuid.UUID(m["id"])
    await publish(stack.kafka_bootstrap, t.datasets, uploaded(mid))
    cancel = ev.wrap(ev.CancelTraining(), tenant_id="acme", model_id=mid)
    forged = ev.wrap(ev.CancelTraining(), tenant_id="other", model_id=mid)
    async with TopicReader(stack.kafka_bootstrap, t.models, t.status) as reader:
        await reader.until(lambda recs: any(ev.REGISTRY.parse(x.value).type == "TrainingStatusChanged" for x in recs))
        await publish(stack.kafka_bootstrap, t.model_commands, forged, headers=token)
        await publish(stack.kafka_bootstrap, t.model_commands, cancel)  # no token
        await publish(stack.kafka_bootstrap, t.model_commands, cancel, headers=token)  # same id: handled already
        fresh = ev.wrap(ev.CancelTraining(), tenant_id="acme", model_id=mid)
        await publish(stack.kafka_bootstrap, t.model_commands, fresh, headers=token)
        await publish(stack.kafka_bootstrap, t.model_commands, fresh, headers=token)  # redelivered
        late = ev.wrap(ev.CancelTraining(), tenant_id="acme", model_id=mid)
        await publish(stack.kafka_bootstrap, t.model_commands, late, headers=token)  # the model is at 5 by now
        await reader.until(
            lambda recs: sum(ev.REGISTRY.parse(x.value).type == "CommandRejected" for x in recs) >= 3, timeout=30
        )
        await reader.settle(2)
    got = [e for e in parsed(reader) if e.model_id == mid]
    rejected = [(e.payload().command_id, e.payload().code) for e in got if e.type == "CommandRejected"]
    assert rejected == [(forged.id, "forbidden"), (cancel.id, "unauthorized"), (late.id, "invalid_status")]
    changes = [e.payload() for e in got if e.type == "TrainingStatusChanged"]
    assert [(c.old_status, c.new_status) for c in changes] == [(1, 2), (2, 5)]
    assert [e.type for e in got].count("TrainingCancelled") == 1
    assert await status_of(svc, mid) == 5
