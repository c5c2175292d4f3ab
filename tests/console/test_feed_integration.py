"""The console's Kafka feed on a real broker: the public status topic and training progress reach the
browsers of the event's tenant, and only theirs."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.console.system import serving
from tests.console.test_live import progress, read_events, status_changed
from tests.support import VERIFY_AUTH, auth_headers, publish, unique
from voxtrain_console.bootstrap import build
from voxtrain_console.settings import ConsoleSettings
from voxtrain_shared.settings import KafkaSettings
from voxtrain_shared.topics import Topics

pytestmark = pytest.mark.integration


async def test_kafka_events_reach_only_their_tenants_browsers(stack) -> None:
    topics = Topics(unique("feed"))
    settings = ConsoleSettings(
        auth=VERIFY_AUTH,
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap, topic_namespace=topics.namespace),
    )
    console = build(settings)
    async with serving(console.app, "console") as url:
        await console.feed.wait_ready(60)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            r = await client.get("/health/ready")
            assert r.status_code == 200 and r.json()["checks"]["kafka_feed"] == "ok"
            acme = asyncio.create_task(read_events(client, "/api/events", 3, headers=auth_headers("acme")))
            while console.hub.subscribers("acme") < 1:
                await asyncio.sleep(0.02)
            mine = uuid.uuid4()
            await publish(
                stack.kafka_bootstrap, topics.status, status_changed("globex", 1, 2), status_changed("acme", 2, 3, mine)
            )
            await publish(stack.kafka_bootstrap, topics.training_events, progress("globex", 10), progress("acme", 55))
            events = await asyncio.wait_for(acme, 30)
    assert [name for name, _ in events] == ["ready", "status", "progress"]
    assert events[1][1]["model_id"] == str(mine) and events[1][1]["badge"] == "sky"
    assert events[2][1]["percent"] == 55
