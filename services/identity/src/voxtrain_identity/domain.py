"""API keys: what a key is, how its secret is kept and checked, and when it may be exchanged for a token.

A key reads ``vtk_<id>_<secret>``: the id (32 hex digits) finds the stored key, the secret (256 random bits)
proves possession. Only ``sha256(secret)`` is stored; with that much entropy a slow password hash adds nothing.
Pure: stdlib and the shared vocabulary only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from voxtrain_shared.errors import Rejected
from voxtrain_shared.vocab import ErrorCode, Scope

PREFIX = "vtk"
MAX_LABEL = 200


class KeyState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    tenant_id: str
    label: str
    scopes: frozenset[Scope]
    secret_hash: str
    #: the key's last 4 characters, to tell keys apart in a list
    hint: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def state(self, now: datetime) -> KeyState:
        if self.revoked_at is not None:
            return KeyState.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return KeyState.EXPIRED
        return KeyState.ACTIVE


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def clean_label(label: str) -> str:
    label = label.strip()
    if not label or len(label) > MAX_LABEL or any(ord(c) < 32 for c in label):
        raise Rejected(ErrorCode.VALIDATION_FAILED, f"A label is 1-{MAX_LABEL} visible characters (e.g. 'ci uploads').")
    return label


def new_key(
    tenant_id: str,
    label: str,
    scopes: frozenset[Scope],
    *,
    granted_by: frozenset[Scope],
    created_by: str,
    now: datetime,
    expires_at: datetime | None = None,
    creator_expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its plain text (shown once). ``granted_by``: the creator's scopes, which bound the key's;
    ``creator_expires_at``: when the creator's own key expires, which bounds the new key's life (and is its
    default expiry), so an expiring key cannot make itself a lasting one."""
    if not scopes:
        raise Rejected(ErrorCode.VALIDATION_FAILED, "A key needs at least one scope: read, write, train.")
    beyond = scopes - granted_by
    if beyond:
        raise Rejected(
            ErrorCode.FORBIDDEN,
            f"A key cannot have scopes its creator lacks ({', '.join(sorted(beyond))}): "
            "create it with a key (or operator token) that has them.",
        )
    if expires_at is not None and expires_at <= now:
        raise Rejected(ErrorCode.VALIDATION_FAILED, "expires_at must be in the future.")
    if creator_expires_at is not None:
        if expires_at is not None and expires_at > creator_expires_at:
            raise Rejected(
                ErrorCode.FORBIDDEN,
                f"A key cannot outlive the key that creates it (which expires at {creator_expires_at:%Y-%m-%d %H:%M} "
                "UTC): give an earlier expires_at, or create it with a key that does not expire.",
            )
        expires_at = expires_at or creator_expires_at
    key_id = uuid.uuid4()
    secret = secrets.token_urlsafe(32)
    text = f"{PREFIX}_{key_id.hex}_{secret}"
    key = ApiKey(
        id=key_id,
        tenant_id=tenant_id,
        label=clean_label(label),
        scopes=scopes,
        secret_hash=hash_secret(secret),
        hint=text[-4:],
        created_by=created_by,
        created_at=now,
        expires_at=expires_at,
    )
    return key, text


INVALID = "This API key is not valid. Check that it was copied whole, or create a new one (POST /v1/api-keys)."


def parse_key(text: str) -> tuple[uuid.UUID, str]:
    """The id and secret of a key's plain text (raises ``Rejected(unauthorized)`` if it cannot be one)."""
    parts = text.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[2]:
        raise Rejected(ErrorCode.UNAUTHORIZED, INVALID)
    try:
        return uuid.UUID(hex=parts[1]), parts[2]
    except ValueError:
        raise Rejected(ErrorCode.UNAUTHORIZED, INVALID) from None


def check_exchange(key: ApiKey | None, secret: str, now: datetime) -> ApiKey:
    """The key, if ``secret`` is its secret and it is neither revoked nor expired (else ``Rejected``)."""
    if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
        raise Rejected(ErrorCode.UNAUTHORIZED, INVALID)
    state = key.state(now)
    if state is KeyState.REVOKED:
        raise Rejected(
            ErrorCode.UNAUTHORIZED, f"This API key was revoked at {key.revoked_at:%Y-%m-%d %H:%M} UTC: use another one."
        )
    if state is KeyState.EXPIRED:
        raise Rejected(
            ErrorCode.UNAUTHORIZED,
            f"This API key expired at {key.expires_at:%Y-%m-%d %H:%M} UTC: create a new one (POST /v1/api-keys).",
        )
    return replace(key, last_used_at=now)


def revoke(key: ApiKey, now: datetime) -> ApiKey:
    """The key revoked (a key revoked before keeps its first revocation time)."""
    return key if key.revoked_at is not None else replace(key, revoked_at=now)
