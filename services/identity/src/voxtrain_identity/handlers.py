"""Use cases of the identity service; dependencies come in as parameters."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg

from voxtrain_shared.errors import Rejected
from voxtrain_shared.logs import get_logger
from voxtrain_shared.topics import Topics
from voxtrain_shared.uow import Context, Transaction, UnitOfWork, Work
from voxtrain_shared.vocab import ErrorCode, Scope

from . import domain
from .domain import ApiKey
from .repository import IdentityRepository

log = get_logger(__name__)
KeyWork = Work[IdentityRepository]
KeyTx = Transaction[IdentityRepository]
Clock = Callable[[], datetime]
#: Signs a token for a key that may be exchanged: ``(token, lifetime in seconds)``.
Signer = Callable[[ApiKey], tuple[str, int]]


def unit_of_work(pool: Callable[[], asyncpg.Pool], schema: str, topics: Topics) -> UnitOfWork[IdentityRepository]:
    return UnitOfWork(pool, schema, topics, IdentityRepository)


def utc_now() -> datetime:
    return datetime.now(UTC)


def not_found(key_id: uuid.UUID) -> Rejected:
    return Rejected(ErrorCode.NOT_FOUND, f"No API key {key_id} exists for this tenant.")


async def _key(tx: KeyTx, key_id: uuid.UUID) -> ApiKey:
    key = await tx.repo.key(key_id, tenant_id=tx.ctx.tenant_id, lock=True)
    if key is None:
        raise not_found(key_id)
    return key


async def create_key(
    uow: KeyWork,
    ctx: Context,
    label: str,
    scopes: frozenset[Scope],
    *,
    granted_by: frozenset[Scope],
    created_by: str,
    expires_at: datetime | None,
    max_keys: int,
    clock: Clock = utc_now,
    creator_expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key of the context's tenant and its plain text (returned this once, never stored)."""
    key, text = domain.new_key(
        ctx.tenant_id,
        label,
        scopes,
        granted_by=granted_by,
        created_by=created_by,
        now=clock(),
        expires_at=expires_at,
        creator_expires_at=creator_expires_at,
    )
    async with uow(ctx) as tx:
        if await tx.repo.count_unrevoked(ctx.tenant_id) >= max_keys:
            raise Rejected(
                ErrorCode.CONFLICT, f"A tenant has at most {max_keys} keys that are not revoked: revoke one first."
            )
        await tx.repo.add(key)
    log.info("api_key_created", tenant=ctx.tenant_id, key_id=str(key.id), scopes=sorted(scopes), by=created_by)
    return key, text


async def list_keys(uow: KeyWork, tenant_id: str) -> list[ApiKey]:
    async with uow.reading() as repo:
        return await repo.keys(tenant_id)


async def get_key(uow: KeyWork, tenant_id: str, key_id: uuid.UUID) -> ApiKey:
    async with uow.reading() as repo:
        key = await repo.key(key_id, tenant_id=tenant_id)
    if key is None:
        raise not_found(key_id)
    return key


async def relabel_key(uow: KeyWork, ctx: Context, key_id: uuid.UUID, label: str) -> ApiKey:
    async with uow(ctx) as tx:
        key = await _key(tx, key_id)
        key = replace(key, label=domain.clean_label(label))
        await tx.repo.save(key)
    return key


async def revoke_key(uow: KeyWork, ctx: Context, key_id: uuid.UUID, clock: Clock = utc_now) -> ApiKey:
    """Revoke a key: exchanging it is refused at once; tokens already minted from it end within their TTL."""
    async with uow(ctx) as tx:
        key = domain.revoke(await _key(tx, key_id), clock())
        await tx.repo.save(key)
    log.info("api_key_revoked", tenant=ctx.tenant_id, key_id=str(key_id))
    return key


async def exchange(
    uow: KeyWork, text: str, sign: Signer, correlation_id: uuid.UUID, clock: Clock = utc_now
) -> tuple[ApiKey, str, int]:
    """A short-lived token for a valid key: ``(key, token, expires_in seconds)``; refused (unauthorized)
    for an unknown, wrong, revoked or expired key."""
    key_id, secret = domain.parse_key(text)
    now = clock()
    async with uow.reading() as repo:
        found = await repo.key(key_id)
    key = domain.check_exchange(found, secret, now)
    async with uow(Context(key.tenant_id, correlation_id)) as tx:
        await tx.repo.touch(key.id, now)
    token, expires_in = sign(key)
    return key, token, expires_in
