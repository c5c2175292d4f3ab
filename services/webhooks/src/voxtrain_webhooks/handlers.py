"""Use cases of the webhooks service; dependencies come in as parameters."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from voxtrain_shared import events as ev
from voxtrain_shared.errors import Rejected
from voxtrain_shared.logs import get_logger
from voxtrain_shared.topics import Topics
from voxtrain_shared.uow import Context, Transaction, UnitOfWork, Work
from voxtrain_shared.vocab import ErrorCode

from .domain import (
    SIGNATURE_HEADER,
    Attempt,
    Delivery,
    DeliveryState,
    Endpoint,
    EventKind,
    RetryPolicy,
    check_url,
    failure_reason,
    new_secret,
    sign,
)
from .repository import WebhookRepository

log = get_logger(__name__)
HookWork = Work[WebhookRepository]
HookTx = Transaction[WebhookRepository]
Clock = Callable[[], datetime]
PING_TYPE = "WebhookPing"


class Sender(Protocol):
    """Sends one signed delivery and reports what happened (never raises for the endpoint's failures)."""

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> Attempt: ...


def unit_of_work(pool: Callable[[], asyncpg.Pool], schema: str, topics: Topics) -> UnitOfWork[WebhookRepository]:
    return UnitOfWork(pool, schema, topics, WebhookRepository)


def utc_now() -> datetime:
    return datetime.now(UTC)


def not_found(endpoint_id: uuid.UUID) -> Rejected:
    return Rejected(ErrorCode.NOT_FOUND, f"No webhook endpoint {endpoint_id} exists for this tenant.")


async def _endpoint(repo: WebhookRepository, tenant_id: str, endpoint_id: uuid.UUID, lock: bool = False) -> Endpoint:
    e = await repo.endpoint(tenant_id, endpoint_id, lock=lock)
    if e is None:
        raise not_found(endpoint_id)
    return e


# ---------------------------------------------------------------- endpoints


async def create_endpoint(
    uow: HookWork,
    ctx: Context,
    url: str,
    events: list[EventKind],
    description: str | None,
    *,
    allow_insecure: bool,
    max_endpoints: int,
) -> Endpoint:
    endpoint = Endpoint(
        id=uuid.uuid4(),
        tenant_id=ctx.tenant_id,
        url=check_url(url, allow_insecure=allow_insecure),
        events=sorted(set(events)),
        secret=new_secret(),
        description=description,
    )
    async with uow(ctx) as tx:
        if await tx.repo.count_endpoints(ctx.tenant_id) >= max_endpoints:
            raise Rejected(
                ErrorCode.CONFLICT,
                f"A tenant has at most {max_endpoints} webhook endpoints; delete one you no longer use.",
            )
        await tx.repo.add_endpoint(endpoint)
    log.info("webhook_endpoint_created", endpoint_id=str(endpoint.id), tenant_id=ctx.tenant_id)
    return endpoint


async def list_endpoints(uow: HookWork, tenant_id: str) -> list[Endpoint]:
    async with uow.reading() as repo:
        return await repo.endpoints(tenant_id)


async def get_endpoint(uow: HookWork, tenant_id: str, endpoint_id: uuid.UUID) -> Endpoint:
    async with uow.reading() as repo:
        return await _endpoint(repo, tenant_id, endpoint_id)


async def update_endpoint(
    uow: HookWork,
    ctx: Context,
    endpoint_id: uuid.UUID,
    *,
    allow_insecure: bool,
    url: str | None = None,
    events: list[EventKind] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> Endpoint:
    async with uow(ctx) as tx:
        e = await _endpoint(tx.repo, ctx.tenant_id, endpoint_id, lock=True)
        if url is not None:
            e.url = check_url(url, allow_insecure=allow_insecure)
        if events is not None:
            e.events = sorted(set(events))
        if description is not None:
            e.description = description
        if enabled is True:
            e.enable()
        elif enabled is False:
            e.disable("Disabled by the tenant.")
        await tx.repo.save_endpoint(e)
    return e


async def delete_endpoint(uow: HookWork, ctx: Context, endpoint_id: uuid.UUID) -> None:
    async with uow(ctx) as tx:
        if not await tx.repo.delete_endpoint(ctx.tenant_id, endpoint_id):
            raise not_found(endpoint_id)


async def rotate_secret(uow: HookWork, ctx: Context, endpoint_id: uuid.UUID) -> Endpoint:
    """A new signing secret; deliveries from now on are signed with it only."""
    async with uow(ctx) as tx:
        e = await _endpoint(tx.repo, ctx.tenant_id, endpoint_id, lock=True)
        e.secret = new_secret()
        await tx.repo.save_endpoint(e)
    return e


# ---------------------------------------------------------------- deliveries


def signed_headers(endpoint: Endpoint, delivery: Delivery, now: datetime) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "voxtrain-webhooks/1",
        SIGNATURE_HEADER: sign(endpoint.secret, int(now.timestamp()), delivery.body),
        "Voxtrain-Event-Id": str(delivery.event_id),
        "Voxtrain-Event-Type": delivery.event_type,
        "Voxtrain-Delivery-Id": str(delivery.id),
    }


async def event_published(tx: HookTx, env: ev.Envelope) -> None:
    """Queue ``env`` (as Kafka subscribers see it) for every endpoint of its tenant that wants it."""
    for e in await tx.repo.endpoints(env.tenant_id):
        if e.wants(env.type):
            await tx.repo.enqueue(
                Delivery(
                    id=uuid.uuid4(),
                    endpoint_id=e.id,
                    tenant_id=env.tenant_id,
                    model_id=env.model_id,
                    event_id=env.id,
                    event_type=env.type,
                    body=env.to_bytes(),
                )
            )


async def deliver_due(uow: HookWork, sender: Sender, policy: RetryPolicy, clock: Clock, limit: int) -> int:
    """Send up to ``limit`` due deliveries (each the head of its endpoint-and-model queue); returns how many."""
    async with uow(Context("webhooks", uuid.uuid4())) as tx:
        due = await tx.repo.claim_due(limit)
        for delivery, endpoint in due:
            now = clock()
            if delivery.first_at is None:
                delivery.first_at = now
            outcome = await sender.send(endpoint.url, signed_headers(endpoint, delivery, now), delivery.body)
            delivery.record(outcome, clock(), policy)
            await tx.repo.save_delivery(delivery)
            if delivery.state is DeliveryState.FAILED:
                endpoint.disable(failure_reason(delivery, policy))
                await tx.repo.save_endpoint(endpoint)
                log.warning("webhook_endpoint_disabled", endpoint_id=str(endpoint.id), reason=endpoint.disabled_reason)
        return len(due)


async def ping(uow: HookWork, ctx: Context, endpoint_id: uuid.UUID, sender: Sender, clock: Clock) -> Delivery:
    """Send a signed test event now and return how it went (it is in the delivery log too)."""
    async with uow.reading() as repo:
        endpoint = await _endpoint(repo, ctx.tenant_id, endpoint_id)
    now = clock()
    body = json.dumps(
        {
            "id": str(uuid.uuid4()),
            "type": PING_TYPE,
            "version": 1,
            "occurred_at": now.isoformat(),
            "tenant_id": ctx.tenant_id,
            "model_id": None,
            "data": {"message": "A test delivery from voxtrain."},
        }
    ).encode()
    delivery = Delivery(
        id=uuid.uuid4(),
        endpoint_id=endpoint.id,
        tenant_id=ctx.tenant_id,
        model_id=None,
        event_id=uuid.uuid4(),
        event_type=PING_TYPE,
        body=body,
        first_at=now,
    )
    outcome = await sender.send(endpoint.url, signed_headers(endpoint, delivery, now), body)
    # A ping is tried once: it reports, it does not retry (the retry window is already over).
    delivery.record(outcome, clock(), RetryPolicy(1, 1, 0))
    async with uow(ctx) as tx:
        await tx.repo.enqueue(delivery)
        await tx.repo.save_delivery(delivery)
    return delivery


async def list_deliveries(uow: HookWork, tenant_id: str, endpoint_id: uuid.UUID, limit: int) -> list[Delivery]:
    async with uow.reading() as repo:
        await _endpoint(repo, tenant_id, endpoint_id)
        return await repo.deliveries(tenant_id, endpoint_id, limit)


async def redeliver(
    uow: HookWork, ctx: Context, endpoint_id: uuid.UUID, delivery_id: uuid.UUID, clock: Clock
) -> Delivery:
    async with uow(ctx) as tx:
        d = await tx.repo.delivery(ctx.tenant_id, delivery_id, lock=True)
        if d is None or d.endpoint_id != endpoint_id:
            raise Rejected(ErrorCode.NOT_FOUND, f"No delivery {delivery_id} exists for this endpoint.")
        d.redeliver(clock())
        await tx.repo.save_delivery(d)
    return d
