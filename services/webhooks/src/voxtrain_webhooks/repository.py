"""All SQL of the webhooks service (its own schema; the pool sets search_path)."""

from __future__ import annotations

import uuid

import asyncpg

from .domain import Attempt, Delivery, DeliveryState, Endpoint, EventKind

_ENDPOINT = "id, tenant_id, url, description, events, secret, enabled, disabled_reason"
_DELIVERY = (
    "id, endpoint_id, tenant_id, model_id, event_id, event_type, body, state, attempts, first_at, next_at, "
    "last_status, last_error, last_latency_ms, finished_at"
)


class WebhookRepository:
    """Endpoints, deliveries and their attempts, on one connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    # ------------------------------------------------------------ endpoints

    async def add_endpoint(self, e: Endpoint) -> None:
        await self._conn.execute(
            "INSERT INTO endpoints (id, tenant_id, url, description, events, secret) VALUES ($1,$2,$3,$4,$5,$6)",
            e.id,
            e.tenant_id,
            e.url,
            e.description,
            [str(k) for k in e.events],
            e.secret,
        )

    async def endpoint(self, tenant_id: str, endpoint_id: uuid.UUID, *, lock: bool = False) -> Endpoint | None:
        row = await self._conn.fetchrow(
            f"SELECT {_ENDPOINT} FROM endpoints WHERE id=$1 AND tenant_id=$2" + (" FOR UPDATE" if lock else ""),
            endpoint_id,
            tenant_id,
        )
        return _endpoint(row) if row else None

    async def endpoints(self, tenant_id: str) -> list[Endpoint]:
        rows = await self._conn.fetch(
            f"SELECT {_ENDPOINT} FROM endpoints WHERE tenant_id=$1 ORDER BY created_at, id", tenant_id
        )
        return [_endpoint(r) for r in rows]

    async def count_endpoints(self, tenant_id: str) -> int:
        return int(await self._conn.fetchval("SELECT count(*) FROM endpoints WHERE tenant_id=$1", tenant_id))

    async def save_endpoint(self, e: Endpoint) -> None:
        await self._conn.execute(
            "UPDATE endpoints SET url=$3, description=$4, events=$5, secret=$6, enabled=$7, disabled_reason=$8, "
            "updated_at=now() WHERE id=$1 AND tenant_id=$2",
            e.id,
            e.tenant_id,
            e.url,
            e.description,
            [str(k) for k in e.events],
            e.secret,
            e.enabled,
            e.disabled_reason,
        )

    async def delete_endpoint(self, tenant_id: str, endpoint_id: uuid.UUID) -> bool:
        done = await self._conn.execute("DELETE FROM endpoints WHERE id=$1 AND tenant_id=$2", endpoint_id, tenant_id)
        return bool(done.endswith(" 1"))

    # ------------------------------------------------------------ deliveries

    async def enqueue(self, d: Delivery) -> None:
        """Queue a delivery once per (endpoint, event)."""
        await self._conn.execute(
            "INSERT INTO deliveries (id, endpoint_id, tenant_id, model_id, event_id, event_type, body) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            d.id,
            d.endpoint_id,
            d.tenant_id,
            d.model_id,
            d.event_id,
            d.event_type,
            d.body,
        )

    async def claim_due(self, limit: int) -> list[tuple[Delivery, Endpoint]]:
        """Due deliveries that head their (endpoint, model) queue, locked for this transaction.

        A delivery waits while an older one of the same endpoint and model is still pending, so a
        subscriber receives a model's events in order; other replicas skip the locked rows.
        """
        rows = await self._conn.fetch(
            f"SELECT {', '.join('d.' + c.strip() for c in _DELIVERY.split(','))}, "
            f"{', '.join('e.' + c.strip() + ' AS e_' + c.strip() for c in _ENDPOINT.split(','))} "
            "FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id "
            "WHERE d.state = 'pending' AND d.next_at <= now() AND e.enabled AND NOT EXISTS ("
            "  SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id AND p.state = 'pending' "
            "  AND p.model_id IS NOT DISTINCT FROM d.model_id AND p.seq < d.seq) "
            "ORDER BY d.seq LIMIT $1 FOR UPDATE OF d SKIP LOCKED",
            limit,
        )
        return [(_delivery(r), _endpoint(r, prefix="e_")) for r in rows]

    async def delivery(self, tenant_id: str, delivery_id: uuid.UUID, *, lock: bool = False) -> Delivery | None:
        row = await self._conn.fetchrow(
            f"SELECT {_DELIVERY} FROM deliveries WHERE id=$1 AND tenant_id=$2" + (" FOR UPDATE" if lock else ""),
            delivery_id,
            tenant_id,
        )
        return _delivery(row) if row else None

    async def deliveries(self, tenant_id: str, endpoint_id: uuid.UUID, limit: int) -> list[Delivery]:
        rows = await self._conn.fetch(
            f"SELECT {_DELIVERY} FROM deliveries WHERE tenant_id=$1 AND endpoint_id=$2 ORDER BY seq DESC LIMIT $3",
            tenant_id,
            endpoint_id,
            limit,
        )
        out = [_delivery(r) for r in rows]
        attempts = await self._conn.fetch(
            "SELECT delivery_id, attempt, status_code, latency_ms, error FROM attempts "
            "WHERE delivery_id = ANY($1::uuid[]) ORDER BY delivery_id, seq",
            [d.id for d in out],
        )
        by_id = {d.id: d for d in out}
        for a in attempts:
            by_id[a["delivery_id"]].log.append(Attempt(a["status_code"], a["latency_ms"], a["error"]))
        return out

    async def save_delivery(self, d: Delivery) -> None:
        """Write a delivery's state and append the attempts in its ``log`` (those made since it was loaded)."""
        await self._conn.execute(
            "UPDATE deliveries SET state=$2, attempts=$3, first_at=$4, next_at=coalesce($5, next_at), last_status=$6, "
            "last_error=$7, last_latency_ms=$8, finished_at=$9 WHERE id=$1",
            d.id,
            str(d.state),
            d.attempts,
            d.first_at,
            d.next_at,
            d.last_status,
            d.last_error,
            d.last_latency_ms,
            d.finished_at,
        )
        first_new = d.attempts - len(d.log) + 1
        await self._conn.executemany(
            "INSERT INTO attempts (delivery_id, attempt, status_code, latency_ms, error) VALUES ($1,$2,$3,$4,$5)",
            [(d.id, first_new + i, a.status_code, a.latency_ms, a.error) for i, a in enumerate(d.log)],
        )
        d.log.clear()


def _endpoint(row: asyncpg.Record, prefix: str = "") -> Endpoint:
    return Endpoint(
        id=row[prefix + "id"],
        tenant_id=row[prefix + "tenant_id"],
        url=row[prefix + "url"],
        description=row[prefix + "description"],
        events=[EventKind(k) for k in row[prefix + "events"]],
        secret=row[prefix + "secret"],
        enabled=row[prefix + "enabled"],
        disabled_reason=row[prefix + "disabled_reason"],
    )


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        tenant_id=row["tenant_id"],
        model_id=row["model_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        body=bytes(row["body"]),
        state=DeliveryState(row["state"]),
        attempts=row["attempts"],
        first_at=row["first_at"],
        next_at=row["next_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        last_latency_ms=row["last_latency_ms"],
        finished_at=row["finished_at"],
    )
