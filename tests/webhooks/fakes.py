"""An in-memory WebhookRepository for handler tests (same contract as the real one)."""

from __future__ import annotations

import copy
import uuid

from voxtrain_webhooks.domain import Delivery, DeliveryState, Endpoint


class FakeWebhookRepository:
    def __init__(self) -> None:
        self.endpoints_: dict[uuid.UUID, Endpoint] = {}
        self.deliveries_: list[Delivery] = []  # in queue order (seq)
        self.attempt_log: dict[uuid.UUID, list] = {}

    async def add_endpoint(self, e: Endpoint) -> None:
        self.endpoints_[e.id] = copy.deepcopy(e)

    async def endpoint(self, tenant_id: str, endpoint_id: uuid.UUID, *, lock: bool = False) -> Endpoint | None:
        e = self.endpoints_.get(endpoint_id)
        return copy.deepcopy(e) if e and e.tenant_id == tenant_id else None

    async def endpoints(self, tenant_id: str) -> list[Endpoint]:
        return [copy.deepcopy(e) for e in self.endpoints_.values() if e.tenant_id == tenant_id]

    async def count_endpoints(self, tenant_id: str) -> int:
        return len(await self.endpoints(tenant_id))

    async def save_endpoint(self, e: Endpoint) -> None:
        self.endpoints_[e.id] = copy.deepcopy(e)

    async def delete_endpoint(self, tenant_id: str, endpoint_id: uuid.UUID) -> bool:
        if await self.endpoint(tenant_id, endpoint_id) is None:
            return False
        del self.endpoints_[endpoint_id]
        return True

    async def enqueue(self, d: Delivery) -> None:
        if not any(x.endpoint_id == d.endpoint_id and x.event_id == d.event_id for x in self.deliveries_):
            self.deliveries_.append(copy.deepcopy(d))

    async def claim_due(self, limit: int) -> list[tuple[Delivery, Endpoint]]:
        out, heads = [], set()
        for d in self.deliveries_:
            if d.state is not DeliveryState.PENDING:
                continue
            queue = (d.endpoint_id, d.model_id)
            if queue in heads:
                continue
            heads.add(queue)
            e = self.endpoints_[d.endpoint_id]
            if e.enabled and (d.next_at is None or d.next_at <= self.now):
                out.append((copy.deepcopy(d), copy.deepcopy(e)))
        return out[:limit]

    now = None  # set by the test: the fake's idea of "now()" for due deliveries

    async def delivery(self, tenant_id: str, delivery_id: uuid.UUID, *, lock: bool = False) -> Delivery | None:
        for d in self.deliveries_:
            if d.id == delivery_id and d.tenant_id == tenant_id:
                return copy.deepcopy(d)
        return None

    async def deliveries(self, tenant_id: str, endpoint_id: uuid.UUID, limit: int) -> list[Delivery]:
        return [
            copy.deepcopy(d)
            for d in reversed(self.deliveries_)
            if d.tenant_id == tenant_id and d.endpoint_id == endpoint_id
        ][:limit]

    async def save_delivery(self, d: Delivery) -> None:
        self.attempt_log.setdefault(d.id, []).extend(d.log)
        d.log = []
        for i, x in enumerate(self.deliveries_):
            if x.id == d.id:
                self.deliveries_[i] = copy.deepcopy(d)
