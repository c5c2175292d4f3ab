"""HTTP routes of the webhooks service (thin: request -> handler -> view)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from voxtrain_shared.auth import CurrentPrincipal
from voxtrain_shared.http import correlation_id
from voxtrain_shared.settings import WebhooksSettings
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import ErrorCode

from . import handlers as h
from .domain import Delivery, Endpoint, EventKind

STATUS_OF = {ErrorCode.NOT_FOUND: 404, ErrorCode.CONFLICT: 409, ErrorCode.VALIDATION_FAILED: 422}


class CreateEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="https:// URL that receives POSTs of signed events")
    events: list[EventKind] = Field(
        [EventKind.STATUS], min_length=1, description="status (every TrainingStatusChanged) and/or progress"
    )
    description: str | None = Field(None, max_length=500)


class UpdateEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    events: list[EventKind] | None = Field(None, min_length=1)
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = Field(None, description="true re-enables an endpoint that was disabled after failures")


class EndpointView(BaseModel):
    id: uuid.UUID
    url: str
    events: list[EventKind]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    secret_hint: str = Field(description="the last 4 characters of the signing secret")


class EndpointWithSecret(EndpointView):
    secret: str = Field(description="the signing secret: shown now only; keep it to verify deliveries")


class AttemptView(BaseModel):
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryView(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    model_id: uuid.UUID | None
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_latency_ms: int | None
    finished_at: datetime | None
    log: list[AttemptView] = Field(description="every attempt, oldest first")


def endpoint_view(e: Endpoint) -> EndpointView:
    return EndpointView(
        id=e.id,
        url=e.url,
        events=e.events,
        description=e.description,
        enabled=e.enabled,
        disabled_reason=e.disabled_reason,
        secret_hint=e.secret[-4:],
    )


def with_secret(e: Endpoint) -> EndpointWithSecret:
    return EndpointWithSecret(**endpoint_view(e).model_dump(), secret=e.secret)


def delivery_view(d: Delivery) -> DeliveryView:
    return DeliveryView(
        id=d.id,
        event_id=d.event_id,
        event_type=d.event_type,
        model_id=d.model_id,
        state=str(d.state),
        attempts=d.attempts,
        next_attempt_at=d.next_at if d.state == "pending" else None,
        last_status=d.last_status,
        last_error=d.last_error,
        last_latency_ms=d.last_latency_ms,
        finished_at=d.finished_at,
        log=[AttemptView(status_code=a.status_code, latency_ms=a.latency_ms, error=a.error) for a in d.log],
    )


def router(uow: h.HookWork, settings: WebhooksSettings, sender: h.Sender, clock: h.Clock) -> APIRouter:
    r = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
    insecure = settings.allow_insecure_urls

    def ctx(principal: CurrentPrincipal, request: Request) -> Context:
        return Context(principal.tenant_id, correlation_id(request))

    @r.post("", status_code=status.HTTP_201_CREATED, response_model=EndpointWithSecret)
    async def create(body: CreateEndpoint, principal: CurrentPrincipal, request: Request) -> EndpointWithSecret:
        """Register an endpoint; the answer holds its signing secret, shown this once."""
        e = await h.create_endpoint(
            uow,
            ctx(principal, request),
            body.url,
            body.events,
            body.description,
            allow_insecure=insecure,
            max_endpoints=settings.max_endpoints_per_tenant,
        )
        return with_secret(e)

    @r.get("", response_model=list[EndpointView])
    async def list_(principal: CurrentPrincipal) -> list[EndpointView]:
        return [endpoint_view(e) for e in await h.list_endpoints(uow, principal.tenant_id)]

    @r.get("/{endpoint_id}", response_model=EndpointView)
    async def get(endpoint_id: uuid.UUID, principal: CurrentPrincipal) -> EndpointView:
        return endpoint_view(await h.get_endpoint(uow, principal.tenant_id, endpoint_id))

    @r.patch("/{endpoint_id}", response_model=EndpointView)
    async def update(
        endpoint_id: uuid.UUID, body: UpdateEndpoint, principal: CurrentPrincipal, request: Request
    ) -> EndpointView:
        """Change the URL, events or description; `enabled: true` re-enables a disabled endpoint."""
        e = await h.update_endpoint(
            uow, ctx(principal, request), endpoint_id, allow_insecure=insecure, **body.model_dump(exclude_unset=True)
        )
        return endpoint_view(e)

    @r.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete(endpoint_id: uuid.UUID, principal: CurrentPrincipal, request: Request) -> Response:
        await h.delete_endpoint(uow, ctx(principal, request), endpoint_id)
        return Response(status_code=204)

    @r.post("/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret)
    async def rotate(endpoint_id: uuid.UUID, principal: CurrentPrincipal, request: Request) -> EndpointWithSecret:
        """A new signing secret (shown this once); the old one stops signing at once."""
        return with_secret(await h.rotate_secret(uow, ctx(principal, request), endpoint_id))

    @r.post("/{endpoint_id}/ping", response_model=DeliveryView)
    async def ping(endpoint_id: uuid.UUID, principal: CurrentPrincipal, request: Request) -> DeliveryView:
        """Send a signed test event now; the answer says how the endpoint responded."""
        return delivery_view(await h.ping(uow, ctx(principal, request), endpoint_id, sender, clock))

    @r.get("/{endpoint_id}/deliveries", response_model=list[DeliveryView])
    async def deliveries(
        endpoint_id: uuid.UUID, principal: CurrentPrincipal, limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> list[DeliveryView]:
        """The delivery log, newest first: state, attempts, status codes and latencies."""
        found = await h.list_deliveries(uow, principal.tenant_id, endpoint_id, limit)
        return [delivery_view(d) for d in found]

    @r.post("/{endpoint_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryView)
    async def redeliver(
        endpoint_id: uuid.UUID, delivery_id: uuid.UUID, principal: CurrentPrincipal, request: Request
    ) -> DeliveryView:
        """Queue a delivery again (in order behind the model's pending ones)."""
        return delivery_view(await h.redeliver(uow, ctx(principal, request), endpoint_id, delivery_id, clock))

    return r
