"""Inbox: the consumer side of exactly-once effects.

A consumer records the id of each message it handled in ``<schema>.inbox`` in the same transaction as
the message's effects; a redelivered message finds its id there and changes nothing.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def claim(conn: asyncpg.Connection, schema: str, consumer: str, event_id: UUID) -> bool:
    """Record ``event_id`` as handled by ``consumer``; False if it already was (skip the effects)."""
    row = await conn.fetchval(
        f'INSERT INTO "{schema}".inbox(consumer, event_id) VALUES ($1,$2) ON CONFLICT DO NOTHING RETURNING 1',
        consumer,
        event_id,
    )
    return row is not None
