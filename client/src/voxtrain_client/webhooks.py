"""Verifying voxtrain's webhook deliveries in your own backend.

    from voxtrain_client.webhooks import verify, InvalidSignature

    try:
        event = verify(secret, request.headers["Voxtrain-Signature"], raw_body)   # the raw bytes, not re-encoded
    except InvalidSignature:
        return 400

``Voxtrain-Signature`` is ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``; a timestamp more than
``tolerance`` seconds away from now is refused, so a captured delivery cannot be replayed later. Deliveries of
one model arrive in order; ``Voxtrain-Event-Id`` is the event's id (use it to ignore a redelivery).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    """The delivery is not from voxtrain, was altered, or is too old."""


def verify(
    secret: str, header: str, body: bytes, *, tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None
) -> dict[str, Any]:
    """The delivered event if ``header`` is a valid signature of ``body`` with ``secret``; else InvalidSignature."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        raise InvalidSignature("no timestamp in the signature header") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidSignature("the signature's timestamp is outside the replay window")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, given) for given in fields.get("v1", [])):
        raise InvalidSignature("the signature does not match the body")
    event: dict[str, Any] = json.loads(body)
    return event
