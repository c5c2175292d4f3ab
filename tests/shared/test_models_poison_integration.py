"""The issue's reproduction against the real models service: one undecodable command
(``python3 -c "print('['*100000)" | kcat -P ... -t voxtrain.models.commands``) is dead-lettered within seconds,
the service stays idle, and the command behind it on the same partition is carried out."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from tests.support import TopicReader, auth_headers, eventually, running, settings_for
from voxtrain_models.bootstrap import build
from voxtrain_shared import events as ev
from voxtrain_shared.settings import ModelsSettings
from voxtrain_shared.topics import dead_letter

pytestmark = pytest.mark.integration


async def test_an_undecodable_command_is_dead_lettered_and_the_next_command_is_carried_out(stack: Any) -> None:
    svc = build(settings_for(ModelsSettings, stack))
    topic = svc.topics.model_commands
    model_id = uuid.uuid4()
    create = ev.wrap(ev.CreateModel(name="after-poison", language="en-US"), tenant_id="acme", model_id=model_id)
    token = auth_headers("acme")["Authorization"]
    async with running(svc) as client, TopicReader(stack.kafka_bootstrap, dead_letter(topic)) as dlt:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
        await producer.start()
        try:
            started = time.monotonic()
            await producer.send_and_wait(topic, b"[" * 100_000 + b"\n", key=str(model_id).encode())
            await producer.send_and_wait(
                topic, create.to_bytes(), key=create.key(), headers=[("authorization", token.encode())]
            )
        finally:
            await producer.stop()
        dead = await dlt.read(1, timeout=30)
        assert time.monotonic() - started < 30

        async def created() -> bool:
            r = await client.get(f"/v1/models/{model_id}", headers=auth_headers("acme"))
            return r.status_code == 200 and r.json()["name"] == "after-poison"

        await eventually(created, timeout=30)
        cpu = time.process_time()
        await asyncio.sleep(3)
        busy = time.process_time() - cpu
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert "nested 100000 levels" in headers["x-dead-letter-reason"] and headers["x-dead-letter-kind"] == "poison"
    assert len(dead) == 1
    assert busy < 1.5, f"the service used {busy:.2f} s of CPU in 3 s while idle"
