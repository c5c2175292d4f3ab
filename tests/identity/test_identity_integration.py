"""Real PostgreSQL + Kafka: API keys through the identity service, their tokens checked by the models service
(which holds only the public key): lifecycle, scopes, revocation within the token TTL, foreign tokens refused."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests.support import PRIVATE_KEY, auth_headers, running, settings_for, unique
from voxtrain_identity.bootstrap import build as build_identity
from voxtrain_models.bootstrap import build as build_models
from voxtrain_shared import auth
from voxtrain_shared.settings import AuthSettings, IdentitySettings, ModelsSettings
from voxtrain_shared.vocab import Scope

pytestmark = pytest.mark.integration
TTL = 5


@pytest.fixture
async def apis(stack):
    identity = build_identity(
        settings_for(
            IdentitySettings, stack, VOXTRAIN_AUTH__PRIVATE_KEY=PRIVATE_KEY, VOXTRAIN_KEY_TOKEN_TTL_SECONDS=str(TTL)
        )
    )
    models = build_models(settings_for(ModelsSettings, stack))
    async with running(identity) as ids, running(models) as mods:
        yield ids, mods


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def exchange(ids, key: str) -> tuple[int, dict]:
    r = await ids.post("/v1/auth/token", json={"api_key": key})
    return r.status_code, r.json()


async def test_an_api_key_lives_is_listed_without_its_secret_relabelled_and_revoked(apis) -> None:
    ids, mods = apis
    tenant = unique("t").lower()
    owner = auth_headers(tenant)
    r = await ids.post("/v1/api-keys", json={"label": "ci", "scopes": ["read", "write", "train"]}, headers=owner)
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith("vtk_") and created["hint"] == key[-4:] and created["state"] == "active"

    listed = (await ids.get("/v1/api-keys", headers=owner)).json()
    assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0] and key not in str(listed)
    assert (await ids.get("/v1/api-keys", headers=auth_headers(unique("other").lower()))).json() == []
    r = await ids.get(f"/v1/api-keys/{created['id']}", headers=auth_headers(unique("other").lower()))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

    r = await ids.patch(f"/v1/api-keys/{created['id']}", json={"label": "nightly ci"}, headers=owner)
    assert r.status_code == 200 and r.json()["label"] == "nightly ci"

    status, tok = await exchange(ids, key)
    assert status == 200 and tok["token_type"] == "bearer" and 0 < tok["expires_in"] <= TTL
    assert tok["scope"] == "read train write" and tok["tenant_id"] == tenant
    claims = jwt.decode(tok["access_token"], options={"verify_signature": False})
    assert claims["sub"] == f"key:{created['id']}" and claims["exp"] - claims["iat"] <= TTL
    token = tok["access_token"]
    r = await mods.post("/v1/models", json={"name": "m", "language": "en-US"}, headers=bearer(token))
    assert r.status_code == 201, r.text
    used = (await ids.get(f"/v1/api-keys/{created['id']}", headers=owner)).json()
    assert used["last_used_at"] is not None

    assert (await ids.delete(f"/v1/api-keys/{created['id']}", headers=owner)).status_code == 204
    status, body = await exchange(ids, key)
    assert status == 401 and body["error"]["code"] == "unauthorized" and "revoked" in body["error"]["message"]
    assert (await ids.get(f"/v1/api-keys/{created['id']}", headers=owner)).json()["state"] == "revoked"

    # the token minted before the revocation ends within its TTL (the setting keeps it at 60 s at most)
    deadline = time.monotonic() + TTL + 3
    while (await mods.get("/v1/models", headers=bearer(token))).status_code == 200:
        assert time.monotonic() < deadline, "a token of a revoked key still works after its TTL"
        await asyncio.sleep(0.5)
    r = await mods.get("/v1/models", headers=bearer(token))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"].lower()

    status, body = await exchange(ids, key[:-2] + ("aa" if not key.endswith("aa") else "bb"))
    assert status == 401 and "not valid" in body["error"]["message"]


async def test_a_read_only_key_cannot_create_train_or_make_itself_a_stronger_key(apis) -> None:
    ids, mods = apis
    tenant = unique("t").lower()
    r = await mods.post("/v1/models", json={"name": "m", "language": "en-US"}, headers=auth_headers(tenant))
    model_id = r.json()["id"]
    created = (
        await ids.post("/v1/api-keys", json={"label": "dashboard", "scopes": ["read"]}, headers=auth_headers(tenant))
    ).json()
    _, tok = await exchange(ids, created["key"])
    reader = bearer(tok["access_token"])

    assert (await mods.get(f"/v1/models/{model_id}", headers=reader)).status_code == 200
    r = await mods.post("/v1/models", json={"name": "x", "language": "en-US"}, headers=reader)
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "forbidden" and "'write' scope" in err["message"] and "POST /v1/api-keys" in err["message"]
    assert err["details"] == {"required_scope": "write", "scopes": ["read"]}
    r = await mods.post(f"/v1/models/{model_id}/train", headers=reader)
    assert r.status_code == 403 and "'train' scope" in r.json()["error"]["message"]
    r = await ids.post("/v1/api-keys", json={"label": "escalate"}, headers=reader)
    assert r.status_code == 403 and "'write' scope" in r.json()["error"]["message"]

    # a write key without train: creating is fine, but not training (nor auto_train, which trains on upload)
    writer_key = (
        await ids.post(
            "/v1/api-keys", json={"label": "uploads", "scopes": ["read", "write"]}, headers=auth_headers(tenant)
        )
    ).json()
    _, tok = await exchange(ids, writer_key["key"])
    writer = bearer(tok["access_token"])
    r = await mods.post("/v1/models", json={"name": "w", "language": "en-US"}, headers=writer)
    assert r.status_code == 201 and r.json()["auto_train"] is False
    r = await mods.post("/v1/models", json={"name": "w", "language": "en-US", "auto_train": True}, headers=writer)
    assert r.status_code == 403 and "'train' scope" in r.json()["error"]["message"]
    assert (await mods.post(f"/v1/models/{model_id}/train", headers=writer)).status_code == 403
    r = await mods.post(f"/v1/models/{model_id}/cancel", headers=writer)
    assert r.status_code == 403 and "'train' scope" in r.json()["error"]["message"]
    r = await ids.post("/v1/api-keys", json={"label": "more", "scopes": ["train"]}, headers=writer)
    assert r.status_code == 403 and "creator lacks" in r.json()["error"]["message"]


async def test_an_expired_key_is_refused(apis) -> None:
    ids, _ = apis
    tenant = unique("t").lower()
    soon = datetime.now(UTC) + timedelta(seconds=2)
    r = await ids.post(
        "/v1/api-keys", json={"label": "short", "expires_at": soon.isoformat()}, headers=auth_headers(tenant)
    )
    assert r.status_code == 201
    status, tok = await exchange(ids, r.json()["key"])
    assert status == 200 and tok["expires_in"] <= 2  # never past the key's own expiry
    # what the short-lived key makes does not outlive it
    child = await ids.post("/v1/api-keys", json={"label": "child"}, headers=bearer(tok["access_token"]))
    assert child.status_code == 201
    parent_ends, child_ends = (datetime.fromisoformat(x.json()["expires_at"]) for x in (r, child))
    assert parent_ends - timedelta(seconds=1) < child_ends <= parent_ends  # the token keeps whole seconds
    await asyncio.sleep(2.2)
    status, body = await exchange(ids, r.json()["key"])
    assert status == 401 and "expired" in body["error"]["message"]


async def test_tokens_not_signed_by_the_issuer_or_expired_are_refused(apis) -> None:
    _, mods = apis
    stranger_private, stranger_public = auth.generate_key_pair()
    stranger = AuthSettings(public_key=stranger_public, private_key=stranger_private)
    trusted_kid = next(iter(auth.load_public_keys(auth.public_key_of(PRIVATE_KEY))))
    claims = {
        "sub": "acme",
        "tenant": "acme",
        "scope": "read write train",
        "iss": "voxtrain",
        "aud": "voxtrain-api",
        "exp": int(time.time()) + 600,
    }
    foreign = {
        "another Ed25519 key": auth.issue_token(stranger, "acme"),
        "another key naming the trusted key id": jwt.encode(
            claims, auth._load_private(stranger_private), algorithm="EdDSA", headers={"kid": trusted_kid}
        ),
        "HS256 with the old shared secret": jwt.encode(claims, "test-secret-" + "x" * 32, algorithm="HS256"),
        "unsigned": jwt.encode(claims, None, algorithm="none"),
        "expired": auth_headers("acme", ttl_seconds=-5)["Authorization"].removeprefix("Bearer "),
    }
    for what, token in foreign.items():
        r = await mods.get("/v1/models", headers=bearer(token))
        assert r.status_code == 401, what
        assert r.json()["error"]["code"] == "unauthorized" and "POST /v1/auth/token" in r.json()["error"]["message"]
    assert (
        await mods.get("/v1/models", headers=auth_headers("acme", scopes=frozenset({Scope.READ})))
    ).status_code == 200
