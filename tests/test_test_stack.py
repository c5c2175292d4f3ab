"""The test harness's own clean-up, against the real Kafka: a run deletes the topics it made, and only those."""

import asyncio
import time
import uuid
from collections.abc import Callable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

try:
    import _stack
except ImportError:
    from tests import _stack


async def _topics(bootstrap: str, create: list[str] | None = None) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if create:
            await admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in create])
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _eventually(bootstrap: str, holds: Callable[[set[str]], bool]) -> set[str]:
    """The topic list once ``holds`` is true of it (metadata reaches every listener within moments), or the last."""
    deadline = time.monotonic() + 15
    while not holds(topics := asyncio.run(_topics(bootstrap))) and time.monotonic() < deadline:
        time.sleep(0.2)
    return topics


def test_forget_deletes_the_topics_of_its_run_and_leaves_another_runs(stack) -> None:
    mine, theirs = uuid.uuid4().hex[:6], uuid.uuid4().hex[:6]
    names = [f"ns_{mine}{i}.models" for i in range(3)] + [f"ns_{theirs}0.models"]
    asyncio.run(_topics(stack.kafka_bootstrap, create=names))
    assert set(names) <= _eventually(stack.kafka_bootstrap, lambda t: set(names) <= t)

    assert _stack.forget(stack, mine) == 3

    left = _eventually(stack.kafka_bootstrap, lambda t: not any(mine in n for n in t))
    assert not any(mine in t for t in left)
    assert f"ns_{theirs}0.models" in left
    assert _stack.forget(stack, theirs) == 1
