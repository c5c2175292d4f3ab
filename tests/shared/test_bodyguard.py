"""The gate in front of every service's routes: anonymous bodies are refused unread, JSON bodies are capped."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support import PUBLIC_KEY, auth_headers
from voxtrain_shared.auth import authenticate
from voxtrain_shared.bodyguard import BodyGuard
from voxtrain_shared.settings import AuthSettings

CAP = 64 * 1024
TOKEN = auth_headers("acme")["Authorization"]


class Client:
    """Drives the middleware with a body of ``size`` bytes in 64 KiB chunks and records what was read."""

    def __init__(self, app_reads_body: bool = True) -> None:
        self.app_calls = 0
        self.app_reads_body = app_reads_body

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            self.app_calls += 1
            while self.app_reads_body:
                message = await receive()
                if not message.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        settings = AuthSettings(public_key=PUBLIC_KEY)
        self.guard = BodyGuard(app, authenticate=lambda h: authenticate(settings, h), max_body_bytes=CAP)

    async def send(
        self, method: str, path: str, size: int, *, token: str | None = None, declare: bool = True
    ) -> tuple[int, dict[str, Any], int]:
        headers = [(b"content-type", b"application/json")]
        if token:
            headers.append((b"authorization", token.encode()))
        if declare:
            headers.append((b"content-length", str(size).encode()))
        scope = {"type": "http", "method": method, "path": path, "headers": headers}
        chunk, sent = 64 * 1024, 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            n = min(chunk, size - sent)
            sent += n
            return {"type": "http.request", "body": b"x" * n, "more_body": sent < size}

        out: list[dict[str, Any]] = []

        async def reply(message: dict[str, Any]) -> None:
            out.append(message)

        await self.guard(scope, receive, reply)
        body = b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")
        return out[0]["status"], (json.loads(body) if out[0]["status"] != 200 else {}), sent


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_an_anonymous_100_mb_body_is_refused_without_reading_a_byte() -> None:
    c = Client()
    status, body, read = run(c.send("POST", "/v1/models", 100 * 1024 * 1024))
    assert (status, body["error"]["code"], read, c.app_calls) == (401, "unauthorized", 0, 0)
    status, _, read = run(c.send("POST", "/v1/models", 100 * 1024 * 1024, token="Bearer not-a-token"))
    assert (status, read, c.app_calls) == (401, 0, 0)


def test_streamed_upload_routes_are_gated_by_the_token_too_but_not_capped_here() -> None:
    c = Client()
    assert run(c.send("POST", "/v1/models/m1/datasets", 10 * CAP))[0::2] == (401, 0)
    status, _, read = run(c.send("POST", "/v1/models/m1/datasets", 10 * CAP, token=TOKEN))
    assert (status, read) == (200, 10 * CAP)


def test_a_declared_json_body_over_the_cap_is_refused_unread() -> None:
    c = Client()
    status, body, read = run(c.send("POST", "/v1/models", CAP + 1, token=TOKEN))
    assert (status, body["error"]["code"], read, c.app_calls) == (413, "request_too_large", 0, 0)
    assert body["error"]["details"] == {"max_bytes": CAP}
    assert f"at most {CAP:,} bytes" in body["error"]["message"]


def test_an_undeclared_json_body_is_cut_once_it_passes_the_cap() -> None:
    c = Client()
    status, body, read = run(c.send("PATCH", "/v1/models/m1", 100 * CAP, token=TOKEN, declare=False))
    assert (status, body["error"]["code"]) == (413, "request_too_large")
    assert read <= 2 * CAP  # stopped at the first chunk over the cap, not after 100 of them


def test_bodies_within_the_cap_open_routes_and_reads_pass() -> None:
    c = Client()
    assert run(c.send("POST", "/v1/models", CAP, token=TOKEN))[0] == 200
    assert run(c.send("POST", "/v1/auth/token", 100))[0] == 200  # exchanges a key: no token yet
    assert run(c.send("GET", "/v1/models", 0))[0] == 200  # the route itself asks for the token
    assert run(c.send("POST", "/health/ready", 10))[0] == 200
    assert run(c.send("POST", "/v1/auth/token", CAP + 1))[0] == 413  # open, but capped


@pytest.mark.integration
async def test_a_real_service_answers_401_before_a_100_mb_body_is_sent(stack) -> None:
    """Over a real socket: the client declares 100 MB, sends only the headers, and still gets its answer."""
    from tests.support import running, serving, settings_for
    from voxtrain_models.bootstrap import build
    from voxtrain_shared.settings import ModelsSettings

    svc = build(settings_for(ModelsSettings, stack))
    async with running(svc), serving(svc.app) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n" + b"{" * 1024
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert head.startswith(b"HTTP/1.1 401"), head
        writer.close()
