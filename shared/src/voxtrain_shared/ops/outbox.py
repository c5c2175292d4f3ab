"""Per service: what waits in its outbox, how old, what is parked (the outbox tables are the shared package's)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .common import SERVICES, has_column, has_table, read_only


async def outbox_status(dsn: str, schemas: Iterable[str] = SERVICES) -> list[dict[str, Any]]:
    """Per schema: events waiting to be relayed, the oldest one's age, when the relay last sent, and the events
    parked because they cannot be published (with the latest reason)."""
    out = []
    async with read_only(dsn) as conn:
        for schema in schemas:
            if not await has_table(conn, schema, "outbox"):
                out.append(
                    {
                        "schema": schema,
                        "present": False,
                        "unsent": None,
                        "oldest_age_seconds": None,
                        "last_sent_at": None,
                        "parked": None,
                        "last_park_reason": None,
                    }
                )
                continue
            parking = await has_column(conn, schema, "outbox", "parked_at")
            waiting = "sent_at IS NULL AND parked_at IS NULL" if parking else "sent_at IS NULL"
            row = await conn.fetchrow(
                f"SELECT count(*) FILTER (WHERE {waiting}) AS unsent, "
                f"coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE {waiting})), 0) AS age, "
                f'max(sent_at) AS last_sent FROM "{schema}".outbox'
            )
            parked, reason = 0, None
            if parking:
                p = await conn.fetchrow(
                    f"SELECT count(*) AS n, (array_agg(park_reason ORDER BY parked_at DESC))[1] AS reason "
                    f'FROM "{schema}".outbox WHERE parked_at IS NOT NULL AND sent_at IS NULL'
                )
                parked, reason = int(p["n"]), p["reason"]
            out.append(
                {
                    "schema": schema,
                    "present": True,
                    "unsent": int(row["unsent"]),
                    "oldest_age_seconds": round(float(row["age"]), 3),
                    "last_sent_at": row["last_sent"],
                    "parked": parked,
                    "last_park_reason": reason,
                }
            )
    return out
