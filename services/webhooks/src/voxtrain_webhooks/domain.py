"""The rules of webhook delivery, pure: which URLs are accepted, how a delivery is signed, when it is
tried again, when it fails, and when an endpoint is disabled.

Signature (the verification recipe is in docs/webhooks.md): every delivery carries
``Voxtrain-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``. A receiver recomputes
the HMAC over the raw body and rejects a timestamp further than :data:`REPLAY_WINDOW_SECONDS` from now.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from voxtrain_shared.errors import Rejected
from voxtrain_shared.vocab import ErrorCode

SIGNATURE_HEADER = "Voxtrain-Signature"
REPLAY_WINDOW_SECONDS = 300
SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2048


class EventKind(StrEnum):
    """What an endpoint subscribes to."""

    STATUS = "status"  # TrainingStatusChanged: every transition of a model
    PROGRESS = "progress"  # TrainingProgress: stage and percent while training


EVENT_TYPES = {"TrainingStatusChanged": EventKind.STATUS, "TrainingProgress": EventKind.PROGRESS}


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class RetryPolicy:
    first_seconds: float
    max_seconds: float
    give_up_after_seconds: float

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt: doubling from the first, capped."""
        return timedelta(seconds=min(self.max_seconds, self.first_seconds * 2 ** max(0, attempts - 1)))

    def gives_up(self, first_at: datetime, now: datetime) -> bool:
        return now - first_at >= timedelta(seconds=self.give_up_after_seconds)


@dataclass
class Endpoint:
    id: uuid.UUID
    tenant_id: str
    url: str
    events: list[EventKind]
    secret: str
    description: str | None = None
    enabled: bool = True
    disabled_reason: str | None = None

    def wants(self, event_type: str) -> bool:
        kind = EVENT_TYPES.get(event_type)
        return self.enabled and kind is not None and kind in self.events

    def disable(self, reason: str) -> None:
        self.enabled, self.disabled_reason = False, reason

    def enable(self) -> None:
        self.enabled, self.disabled_reason = True, None


@dataclass
class Delivery:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    tenant_id: str
    model_id: uuid.UUID | None
    event_id: uuid.UUID
    event_type: str
    body: bytes
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    first_at: datetime | None = None
    next_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    last_latency_ms: int | None = None
    finished_at: datetime | None = None
    log: list[Attempt] = field(default_factory=list)

    def record(self, outcome: Attempt, now: datetime, policy: RetryPolicy) -> None:
        """Apply one attempt's outcome: delivered, retried later, or failed for good."""
        self.attempts += 1
        self.last_status, self.last_error, self.last_latency_ms = outcome.status_code, outcome.error, outcome.latency_ms
        self.log.append(outcome)
        if outcome.succeeded:
            self.state, self.finished_at, self.next_at = DeliveryState.DELIVERED, now, None
        elif self.first_at is not None and policy.gives_up(self.first_at, now):
            self.state, self.finished_at, self.next_at = DeliveryState.FAILED, now, None
        else:
            self.next_at = now + policy.delay(self.attempts)

    def redeliver(self, now: datetime) -> None:
        """Send again from now (a person asked), with a fresh retry window."""
        self.state, self.attempts, self.first_at, self.next_at, self.finished_at = (
            DeliveryState.PENDING,
            0,
            now,
            now,
            None,
        )


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    latency_ms: int
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def failure_reason(delivery: Delivery, policy: RetryPolicy) -> str:
    """Why an endpoint is disabled after ``delivery`` failed for good."""
    hours = policy.give_up_after_seconds / 3600
    last = f"HTTP {delivery.last_status}" if delivery.last_status is not None else (delivery.last_error or "no answer")
    return (
        f"Deliveries kept failing for {hours:g} h ({delivery.attempts} attempts; last: {last}). Fix the "
        "endpoint, then enable it again; pending deliveries are then sent in order."
    )


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the ``Voxtrain-Signature`` header."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def check_url(url: str, *, allow_insecure: bool) -> str:
    """The endpoint URL as stored, or :class:`Rejected` saying what is wrong with it.

    Only ``https://`` URLs whose host is a name or a public address; with ``allow_insecure`` (a local setting
    for development and tests) also ``http://`` on loopback. Names are checked again at delivery time,
    after they are resolved (:func:`address_allowed`).
    """
    if len(url) > MAX_URL_LENGTH:
        raise Rejected(ErrorCode.VALIDATION_FAILED, f"The URL is longer than {MAX_URL_LENGTH} characters.")
    parts = urlsplit(url.strip())
    if parts.username or parts.password:
        raise Rejected(
            ErrorCode.VALIDATION_FAILED, "Put no credentials in the URL; verify deliveries by their signature instead."
        )
    host = parts.hostname or ""
    if not host:
        raise Rejected(ErrorCode.VALIDATION_FAILED, f"{url!r} is not an absolute URL with a host.")
    loopback = _is_loopback(host)
    if parts.scheme == "http" and allow_insecure and loopback:
        return parts.geturl()
    if parts.scheme != "https":
        raise Rejected(ErrorCode.VALIDATION_FAILED, "Webhook endpoints must use https://.")
    if not address_allowed(host, allow_loopback=allow_insecure):
        raise Rejected(
            ErrorCode.VALIDATION_FAILED,
            f"{host} is a private, loopback or reserved address; use a public https endpoint.",
        )
    return parts.geturl()


def address_allowed(host: str, *, allow_loopback: bool) -> bool:
    """False for an IP literal in a private, loopback, link-local, multicast or reserved range; names pass."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host.lower() != "localhost" or allow_loopback
    if ip.is_loopback:
        return allow_loopback
    return not (ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
