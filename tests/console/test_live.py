"""Live status: which events a browser gets (only its tenant's), the SSE stream, and sign-in for it.
Fast: no Kafka (a fake feed); the endpoint tests use a real socket because SSE never ends."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.console.system import serving
from tests.support import PRIVATE_KEY, VERIFY_AUTH, auth_headers, settings_for
from voxtrain_console.bootstrap import build
from voxtrain_console.live import Hub, LiveEvent, sse_stream, to_live
from voxtrain_console.session import COOKIE, COOKIE_PATH
from voxtrain_console.settings import ConsoleSettings
from voxtrain_identity.bootstrap import build as build_identity
from voxtrain_shared import events as ev
from voxtrain_shared.auth import generate_key_pair, issue_token
from voxtrain_shared.settings import AuthSettings, IdentitySettings
from voxtrain_shared.vocab import ErrorCode, ModelStatus


class FakeFeed:
    ready = True

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def settings(**extra: Any) -> ConsoleSettings:
    return ConsoleSettings(
        auth=VERIFY_AUTH,
        models_url="http://models.test",
        datasets_url="http://datasets.test",
        trainer_url="http://trainer.test",
        **extra,
    )


def status_changed(
    tenant: str, old: int, new: int, model_id: uuid.UUID | None = None, error: ev.ErrorInfo | None = None
) -> ev.Envelope:
    s = ModelStatus(new)
    msg = ev.TrainingStatusChanged(
        old_status=ModelStatus(old), new_status=s, status_name=s.name, badge=s.badge, reason="test", error=error
    )
    return ev.wrap(msg, tenant_id=tenant, model_id=model_id or uuid.uuid4())


def progress(tenant: str, percent: float) -> ev.Envelope:
    msg = ev.TrainingProgress(
        run_id=uuid.uuid4(),
        stage="estimate_lm",
        percent=percent,
        message="n-grams",
        attempt=1,
        max_attempts=3,
        eta_seconds=754.5,
    )
    return ev.wrap(msg, tenant_id=tenant, model_id=uuid.uuid4())


# ---------------------------------------------------------------- what a browser sees


def test_a_status_change_becomes_a_status_event_with_the_spec_badge() -> None:
    mid = uuid.uuid4()
    err = ev.ErrorInfo(code=ErrorCode.INVALID_AUDIO_FORMAT, message="PNG, not audio", file_name="a.m4a")
    live = to_live(status_changed("acme", 2, 5, mid, err))
    assert live is not None and live.name == "status" and live.tenant_id == "acme"
    assert live.data["model_id"] == str(mid)
    assert (live.data["old_status"], live.data["new_status"], live.data["label"], live.data["badge"]) == (
        2,
        5,
        "Failed",
        "red",
    )
    assert live.data["error"]["code"] == "invalid_audio_format" and live.data["error"]["file_name"] == "a.m4a"


def test_progress_becomes_a_progress_event_and_other_messages_nothing() -> None:
    live = to_live(progress("acme", 42.0))
    assert live is not None and live.name == "progress"
    assert (live.data["stage"], live.data["percent"], live.data["message"]) == ("estimate_lm", 42.0, "n-grams")
    assert (live.data["attempt"], live.data["max_attempts"], live.data["eta_seconds"]) == (1, 3, 754.5)
    started = ev.wrap(ev.TrainingStarted(run_id=uuid.uuid4()), tenant_id="acme", model_id=uuid.uuid4())
    assert to_live(started) is None


def test_an_event_frame_is_valid_server_sent_events() -> None:
    frame = LiveEvent("1", "status", "acme", {"a": "line\nbreak"}).encode().decode()
    assert frame.endswith("\n\n") and frame.count("\n") == 4  # a newline in data stays escaped in the JSON
    assert json.loads(frame.split("data: ", 1)[1]) == {"a": "line\nbreak"}


# ---------------------------------------------------------------- the hub: one tenant's events to that tenant


async def test_the_hub_gives_each_event_only_to_its_tenants_subscriptions() -> None:
    hub = Hub()
    with hub.subscribe("acme") as a1, hub.subscribe("acme") as a2, hub.subscribe("globex") as g:
        assert hub.publish(to_live(status_changed("acme", 1, 2))) == 2
        assert hub.publish(to_live(status_changed("initech", 1, 2))) == 0
        assert (await a1.next(1)).tenant_id == "acme"
        assert (await a2.next(1)).tenant_id == "acme"
        assert await g.next(0.05) is None
    assert hub.subscribers() == 0


async def test_a_subscription_that_falls_behind_is_closed_not_grown() -> None:
    hub = Hub(queue_size=8)
    with hub.subscribe("acme") as sub:
        for i in range(20):
            hub.publish(LiveEvent(str(i), "progress", "acme", {"i": i}))
        assert sub.closed
        got = []
        with pytest.raises(EOFError):
            while True:
                item = await sub.next(0.1)
                assert item is not None
                got.append(item.data["i"])
        assert got == list(range(1, 8))  # the oldest made room for the end: the browser reconnects and re-reads


async def test_the_stream_starts_ready_sends_heartbeats_and_ends_when_the_token_expires() -> None:
    hub = Hub()
    now = [1000.0]
    stream = sse_stream(hub, "acme", heartbeat=0.05, expires_at=1000.3, clock=lambda: now[0])
    assert (await anext(stream)).startswith(b"retry:")
    assert b"event: ready" in await anext(stream)
    hub.publish(to_live(status_changed("globex", 1, 2)))
    hub.publish(to_live(status_changed("acme", 1, 2)))
    frame = await anext(stream)
    assert b"event: status" in frame and b'"new_status":2' in frame
    assert await anext(stream) == b": keep-alive\n\n"
    now[0] = 1001.0
    assert b"event: expired" in await anext(stream)
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert hub.subscribers() == 0


# ---------------------------------------------------------------- /api/session and /api/events


@pytest.fixture
async def console() -> AsyncIterator[Any]:
    app = build(settings(sse_heartbeat_seconds=0.2), feed=FakeFeed())
    async with serving(app.app, "console") as url:
        yield app, url


async def read_events(client: httpx.AsyncClient, url: str, count: int, **kwargs: Any) -> list[tuple[str, dict]]:
    """The first ``count`` named events of a stream (comments skipped)."""
    out: list[tuple[str, dict]] = []
    async with client.stream("GET", url, **kwargs) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        name = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                out.append((name, json.loads(line[6:])))
                if len(out) == count:
                    return out
    return out


async def test_each_browser_gets_only_its_own_tenants_events(console) -> None:
    app, url = console
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        acme = asyncio.create_task(read_events(client, "/api/events", 3, headers=auth_headers("acme")))
        globex = asyncio.create_task(read_events(client, "/api/events", 2, headers=auth_headers("globex")))
        while app.hub.subscribers("acme") < 1 or app.hub.subscribers("globex") < 1:
            await asyncio.sleep(0.02)
        mine, theirs = uuid.uuid4(), uuid.uuid4()
        for env in (status_changed("globex", 1, 2, theirs), status_changed("acme", 1, 2, mine), progress("acme", 50)):
            app.hub.publish(to_live(env))
        a, g = await asyncio.wait_for(asyncio.gather(acme, globex), 10)
    assert [n for n, _ in a] == ["ready", "status", "progress"]
    assert a[0][1] == {"tenant_id": "acme"} and a[1][1]["model_id"] == str(mine)
    assert [n for n, _ in g] == ["ready", "status"] and g[1][1]["model_id"] == str(theirs)


async def test_a_program_follows_one_model_under_v1_with_the_token_in_the_header(console) -> None:
    app, url = console
    mine, other = uuid.uuid4(), uuid.uuid4()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        r = await client.get(f"/v1/models/{mine}/events")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        task = asyncio.create_task(read_events(client, f"/v1/models/{mine}/events", 3, headers=auth_headers("acme")))
        while app.hub.subscribers("acme") < 1:
            await asyncio.sleep(0.02)
        run = ev.TrainingProgress(run_id=uuid.uuid4(), stage="adapt_am", percent=60.0, message="MLLR", eta_seconds=42.5)
        for env in (
            status_changed("globex", 1, 2, mine),  # another tenant's (a guessed id): never shown
            status_changed("acme", 1, 2, other),  # the same tenant's other model: not this stream's
            status_changed("acme", 2, 3, mine),
            ev.wrap(run, tenant_id="acme", model_id=mine),
        ):
            app.hub.publish(to_live(env))
        got = await asyncio.wait_for(task, 10)
    assert [n for n, _ in got] == ["ready", "status", "progress"]
    assert got[1][1]["model_id"] == str(mine) and got[1][1]["new_status"] == 3
    assert (got[2][1]["stage"], got[2][1]["percent"], got[2][1]["eta_seconds"]) == ("adapt_am", 60.0, 42.5)


async def test_the_stream_needs_a_token(console) -> None:
    _, url = console
    async with httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/api/events")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    private, public = generate_key_pair()
    other_key = issue_token(AuthSettings(public_key=public, private_key=private), "acme")
    async with httpx.AsyncClient(base_url=url, cookies={COOKIE: other_key}) as client:
        r = await client.get("/api/events")
        assert r.status_code == 401


async def test_sign_in_with_an_api_key_sets_an_http_only_strict_cookie_for_the_stream_only(stack) -> None:
    identity = build_identity(settings_for(IdentitySettings, stack, VOXTRAIN_AUTH__PRIVATE_KEY=PRIVATE_KEY))
    async with serving(identity.app, "identity") as identity_url, httpx.AsyncClient(base_url=identity_url) as ids:
        r = await ids.post("/v1/api-keys", json={"label": "console", "scopes": ["read"]}, headers=auth_headers("acme"))
        key, key_id = r.json()["key"], r.json()["id"]
        app = build(settings(sse_heartbeat_seconds=0.2, identity_url=identity_url), feed=FakeFeed())
        async with serving(app.app, "console") as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            r = await client.post("/api/session", json={"token": auth_headers("acme")["Authorization"][7:]})
            assert r.status_code == 422, "a raw token is no sign-in"
            r = await client.post("/api/session", json={"api_key": "vtk_nonsense"})
            assert r.status_code == 401 and "set-cookie" not in r.headers and "not valid" in r.text
            r = await client.post("/api/session", json={"api_key": key})
            assert r.status_code == 200 and r.json()["tenant_id"] == "acme" and r.json()["scopes"] == ["read"]
            assert 0 < r.json()["expires_in"] <= 60 and r.json()["expires_at"] > time.time()
            token = r.json()["access_token"]
            cookie = r.headers["set-cookie"]
            assert f"{COOKIE}={token}" in cookie and f"Path={COOKIE_PATH}" in cookie
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
            # the cookie alone (as EventSource sends it) opens the stream
            [(name, data)] = await read_events(client, f"{url}/api/events", 1)
            assert (name, data) == ("ready", {"tenant_id": "acme"})
            r = await client.delete("/api/session")
            assert r.status_code == 204 and "Max-Age=0" in r.headers["set-cookie"]
            # revoked: signing in again (what the page does before the token expires) is refused
            assert (await ids.delete(f"/v1/api-keys/{key_id}", headers=auth_headers("acme"))).status_code == 204
            r = await client.post("/api/session", json={"api_key": key})
            assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


async def test_the_pages_are_served_with_a_strict_content_security_policy(console) -> None:
    _, url = console
    async with httpx.AsyncClient(base_url=url) as client:
        for path in ("/", "/static/js/app.js", "/static/app.css"):
            r = await client.get(path)
            assert r.status_code == 200, path
            assert "default-src 'self'" in r.headers["content-security-policy"]
            assert r.headers["x-content-type-options"] == "nosniff"
        # the console's own settings only: the product's rules come from the APIs (/api/vocabulary, ...)
        assert (await client.get("/api/config")).json() == {"resumable_threshold_bytes": 64 * 1024**2}


def test_a_console_refuses_to_start_without_a_public_key_or_with_the_signing_key(monkeypatch) -> None:
    from voxtrain_shared.settings import SettingsError, load

    monkeypatch.delenv("VOXTRAIN_AUTH__PUBLIC_KEY", raising=False)
    with pytest.raises(SettingsError, match="VOXTRAIN_AUTH__PUBLIC_KEY"):
        load(ConsoleSettings)
    monkeypatch.setenv("VOXTRAIN_AUTH__PUBLIC_KEY", "dev")
    with pytest.raises(SettingsError, match="not an Ed25519 public key"):
        load(ConsoleSettings)
    monkeypatch.setenv("VOXTRAIN_AUTH__PUBLIC_KEY", VERIFY_AUTH.public_key)
    monkeypatch.setenv("VOXTRAIN_AUTH__PRIVATE_KEY", PRIVATE_KEY)
    with pytest.raises(SettingsError, match="must not be given to console"):
        load(ConsoleSettings)
