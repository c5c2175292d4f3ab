"""Removing what test runs and benchmarks leave on a Kafka that outlives them.

A broker keeps two open files per partition: a server reused run after run (the local stack ``make test`` reuses,
a shared one) would otherwise keep every run's topics until it reaches the machine's open-file limit and stops.
"""

from __future__ import annotations

from collections.abc import Callable

from aiokafka.admin import AIOKafkaAdminClient

_BATCH = 200


async def delete_topics(bootstrap: str, matching: Callable[[str], bool]) -> int:
    """Delete the topics whose names ``matching`` accepts; returns how many were deleted."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if matching(t)]
        for i in range(0, len(ours), _BATCH):
            await admin.delete_topics(ours[i : i + _BATCH], timeout_ms=60_000)
        return len(ours)
    finally:
        await admin.close()
