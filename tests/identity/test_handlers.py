"""The identity use cases on an in-memory repository: the key lifecycle, the exchange and the signer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests.fakes import FakeUnitOfWork
from tests.identity.fakes import FakeIdentityRepository
from tests.support import PRIVATE_KEY, PUBLIC_KEY, VERIFY_AUTH
from voxtrain_identity import handlers as h
from voxtrain_identity.bootstrap import signer
from voxtrain_shared.auth import verify_token
from voxtrain_shared.errors import Rejected
from voxtrain_shared.settings import IdentitySettings
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import ErrorCode, Scope

ALL = frozenset(Scope)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def uow() -> FakeUnitOfWork[FakeIdentityRepository]:
    return FakeUnitOfWork(FakeIdentityRepository())


def settings(ttl: int = 60) -> IdentitySettings:
    return IdentitySettings(
        postgres={"dsn": "postgresql://u@h/db"},
        auth={"public_key": PUBLIC_KEY, "private_key": PRIVATE_KEY},
        key_token_ttl_seconds=ttl,
    )


def ctx(tenant: str = "acme") -> Context:
    return Context(tenant, uuid.uuid4())


async def create(uow, clock, scopes=ALL, expires_at=None, max_keys=5, tenant="acme"):
    return await h.create_key(
        uow,
        ctx(tenant),
        "ci",
        scopes,
        granted_by=ALL,
        created_by="acme",
        expires_at=expires_at,
        max_keys=max_keys,
        clock=clock,
    )


async def test_a_key_is_exchanged_for_a_token_of_its_tenant_and_scopes_until_it_is_revoked(uow, clock) -> None:
    key, text = await create(uow, clock, frozenset({Scope.READ}))
    sign = signer(settings(), clock)
    found, token, expires_in = await h.exchange(uow, text, sign, uuid.uuid4(), clock)
    principal = verify_token(VERIFY_AUTH, token)
    assert (principal.tenant_id, principal.scopes, principal.subject) == ("acme", {Scope.READ}, f"key:{key.id}")
    assert found.id == key.id and expires_in == 60
    assert (await h.get_key(uow, "acme", key.id)).last_used_at == clock.now

    relabelled = await h.relabel_key(uow, ctx(), key.id, "  nightly  ")
    assert relabelled.label == "nightly" and [k.label for k in await h.list_keys(uow, "acme")] == ["nightly"]
    await h.revoke_key(uow, ctx(), key.id, clock)
    with pytest.raises(Rejected, match="revoked") as exc:
        await h.exchange(uow, text, sign, uuid.uuid4(), clock)
    assert exc.value.code is ErrorCode.UNAUTHORIZED


async def test_another_tenant_neither_sees_nor_changes_a_key(uow, clock) -> None:
    key, _ = await create(uow, clock)
    assert await h.list_keys(uow, "globex") == []
    for attempt in (
        h.get_key(uow, "globex", key.id),
        h.relabel_key(uow, ctx("globex"), key.id, "mine"),
        h.revoke_key(uow, ctx("globex"), key.id, clock),
    ):
        with pytest.raises(Rejected) as exc:
            await attempt
        assert exc.value.code is ErrorCode.NOT_FOUND
    assert (await h.get_key(uow, "acme", key.id)).revoked_at is None


async def test_a_tenant_has_a_bounded_number_of_live_keys(uow, clock) -> None:
    first, _ = await create(uow, clock, max_keys=2)
    await create(uow, clock, max_keys=2)
    with pytest.raises(Rejected, match="at most 2") as exc:
        await create(uow, clock, max_keys=2)
    assert exc.value.code is ErrorCode.CONFLICT
    await h.revoke_key(uow, ctx(), first.id, clock)
    await create(uow, clock, max_keys=2)  # a revoked key no longer counts


async def test_a_token_never_outlives_its_key(uow, clock) -> None:
    _, text = await create(uow, clock, expires_at=clock.now + timedelta(seconds=20))
    _, token, expires_in = await h.exchange(uow, text, signer(settings(), clock), uuid.uuid4(), clock)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert expires_in == 20 and claims["exp"] == int(clock.now.timestamp()) + 20
    clock.now += timedelta(seconds=20)
    with pytest.raises(Rejected, match="expired"):
        await h.exchange(uow, text, signer(settings(), clock), uuid.uuid4(), clock)


def test_the_key_token_lifetime_is_a_minute_at_most() -> None:
    assert settings(5).key_token_ttl_seconds == 5
    with pytest.raises(ValueError, match="less than or equal to 60"):
        settings(61)


async def test_a_key_made_with_an_expiring_key_expires_no_later_than_it(uow, clock) -> None:
    parent_expiry = clock.now + timedelta(days=1)
    _, text = await create(uow, clock, expires_at=parent_expiry)
    _, token, _ = await h.exchange(uow, text, signer(settings(), clock), uuid.uuid4(), clock)
    principal = verify_token(VERIFY_AUTH, token)
    assert principal.key_expires_at == int(parent_expiry.timestamp())
    _, lasting = await create(uow, clock)
    _, token, _ = await h.exchange(uow, lasting, signer(settings(), clock), uuid.uuid4(), clock)
    assert verify_token(VERIFY_AUTH, token).key_expires_at is None

    def by_parent(expires_at: datetime | None):
        return h.create_key(
            uow,
            ctx(),
            "child",
            ALL,
            granted_by=ALL,
            created_by=principal.subject,
            expires_at=expires_at,
            max_keys=10,
            clock=clock,
            creator_expires_at=parent_expiry,
        )

    child, _ = await by_parent(None)
    assert child.expires_at == parent_expiry  # the default: the parent's expiry
    earlier, _ = await by_parent(parent_expiry - timedelta(hours=1))
    assert earlier.expires_at == parent_expiry - timedelta(hours=1)
    with pytest.raises(Rejected, match="cannot outlive") as exc:
        await by_parent(parent_expiry + timedelta(seconds=1))
    assert exc.value.code is ErrorCode.FORBIDDEN
