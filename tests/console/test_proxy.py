"""The console's same-origin API: routing to the three APIs, what is forwarded, streaming, and the
relay of resumable-upload parts. Fast: the APIs and the storage are fakes behind an httpx transport."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.console.test_live import FakeFeed, settings
from tests.support import auth_headers
from voxtrain_console import proxy
from voxtrain_console.bootstrap import build
from voxtrain_console.proxy import Target, route

ACME = auth_headers("acme")
MID = "c1debae0-003e-4a40-b884-f7bd53bdac70"  # fixed: test ids must be the same in every xdist worker
UID = "ea815e83-2946-441b-b715-fcb1257db493"


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/api/models", Target("models", "/v1/models")),
        (f"/api/models/{MID}", Target("models", f"/v1/models/{MID}")),
        (f"/api/models/{MID}/train", Target("models", f"/v1/models/{MID}/train")),
        (f"/api/models/{MID}/cancel", Target("models", f"/v1/models/{MID}/cancel")),
        (f"/api/models/{MID}/export", Target("trainer", f"/v1/models/{MID}/export")),
        ("/api/credits", Target("models", "/v1/credits")),
        (f"/api/datasets/{MID}", Target("datasets", f"/v1/models/{MID}/datasets")),
        (f"/api/datasets/{MID}/{UID}/download", Target("datasets", f"/v1/models/{MID}/datasets/{UID}/download")),
        (f"/api/uploads/{MID}", Target("datasets", f"/v1/models/{MID}/uploads")),
        (f"/api/uploads/{MID}/{UID}/complete", Target("datasets", f"/v1/models/{MID}/uploads/{UID}/complete")),
        (f"/api/transcriptions/{MID}", Target("trainer", f"/v1/models/{MID}/transcriptions")),
        ("/api/transcriptions/base", Target("trainer", "/v1/models/base/transcriptions")),
        ("/api/vocabulary", Target("models", "/v1/vocabulary")),
        ("/api/upload-limits", Target("datasets", "/v1/upload-limits")),
    ],
)
def test_console_paths_map_onto_the_apis(path: str, target: Target) -> None:
    assert route(path) == target


@pytest.mark.parametrize(
    "path",
    [
        "/api/models/../admin",
        f"/api/datasets/{MID}/../../secrets",
        "/api/models/a//b",
        "/api/models/%2e%2e",
        "/api/datasets",
        "/api/transcriptions",
        f"/api/transcriptions/{MID}/x",
        "/api/validator/x",
        "/v1/models",
        "/api/models/.hidden",
        "/api/vocabulary/x",
        "/api/credits/x",
        f"/api/upload-limits/{MID}",
    ],
)
def test_no_path_escapes_its_prefix(path: str) -> None:
    assert route(path) is None


class Upstreams:
    """Fake APIs and storage behind the console: records requests, answers with ``handler``."""

    def __init__(self, handler: Callable[[httpx.Request], Any]) -> None:
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []
        self._handler = handler

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = b""
        async for chunk in request.stream:
            body += chunk
        self.bodies.append(body)
        result = self._handler(request)
        return await result if asyncio.iscoroutine(result) else result


class Chunks(httpx.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._data


class FakeTransport(httpx.AsyncBaseTransport):
    """Like httpx.MockTransport, but the request body is not read beforehand and the answer streams,
    as with a real connection."""

    def __init__(self, handler: Callable[[httpx.Request], Any]) -> None:
        self._handler = handler

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self._handler(request)
        return httpx.Response(answer.status_code, headers=answer.headers, stream=Chunks(answer.content))


@pytest.fixture
def console() -> Callable[[Callable[[httpx.Request], Any]], tuple[httpx.AsyncClient, Upstreams]]:
    made: list[httpx.AsyncClient] = []

    def make(handler: Callable[[httpx.Request], Any]) -> tuple[httpx.AsyncClient, Upstreams]:
        upstreams = Upstreams(handler)
        app = build(settings(), feed=FakeFeed(), transport=FakeTransport(upstreams))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app), base_url="http://console.test")
        made.append(client)
        return client, upstreams

    return make


async def test_a_request_goes_to_its_api_with_the_token_and_query_but_no_cookie(console) -> None:
    client, up = console(
        lambda r: httpx.Response(
            200,
            json={"items": []},
            headers={
                "X-Correlation-ID": "c0ffee00-0000-4000-8000-000000000000",
                "Set-Cookie": "upstream=1",
                "Connection": "close",
                "Server": "uvicorn",
            },
        )
    )
    r = await client.get(
        "/api/models",
        params={"status": 4, "limit": 200},
        headers={**ACME, "Cookie": "voxtrain_events=secret", "X-Forwarded-Host": "evil"},
    )
    assert r.status_code == 200 and r.json() == {"items": []}
    [sent] = up.requests
    assert str(sent.url) == "http://models.test/v1/models?status=4&limit=200"
    assert sent.headers["authorization"] == ACME["Authorization"]
    assert "cookie" not in sent.headers and "x-forwarded-host" not in sent.headers
    # one correlation id for the browser's request and the API call it caused
    assert sent.headers["x-correlation-id"] == r.headers["x-correlation-id"]
    assert "set-cookie" not in r.headers and "server" not in r.headers


async def test_errors_of_an_api_reach_the_page_unchanged(console) -> None:
    body = {"error": {"code": "model_locked", "message": "The model is Running: cannot modify"}}
    client, up = console(lambda r: httpx.Response(409, json=body))
    r = await client.patch(f"/api/models/{MID}", json={"name": "x"}, headers=ACME)
    assert r.status_code == 409 and r.json() == body
    assert up.requests[0].method == "PATCH" and up.bodies[0] == b'{"name":"x"}'


async def test_an_api_that_does_not_answer_is_a_502_in_words(console) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client, _ = console(down)
    r = await client.get("/api/datasets/" + MID, headers=ACME)
    assert r.status_code == 502
    assert r.json()["error"] == {
        "code": "upstream_unavailable",
        "message": "The datasets API is unavailable; try again later.",
    }


async def test_unknown_api_paths_are_404_not_forwarded(console) -> None:
    client, up = console(lambda r: httpx.Response(200))
    assert (await client.get("/api/validator/jobs", headers=ACME)).status_code == 404
    assert (await client.get("/api/models/..%2F..%2Fetc", headers=ACME)).status_code == 404
    assert up.requests == []


async def test_an_upload_streams_through_without_being_buffered(console) -> None:
    """Each chunk reaches the API before the browser sends the next: nothing waits for the whole body."""
    arrived = asyncio.Event()

    class Streaming(Upstreams):
        async def __call__(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            n = 0
            async for chunk in request.stream:
                n += len(chunk)
                arrived.set()
            return httpx.Response(201, json={"received": n})

    upstreams = Streaming(lambda r: None)
    app = build(settings(), feed=FakeFeed(), transport=FakeTransport(upstreams))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app), base_url="http://console.test")

    async def browser() -> AsyncIterator[bytes]:
        for _ in range(5):
            arrived.clear()
            yield b"x" * 65536
            await asyncio.wait_for(arrived.wait(), 5)  # fails if the console held the body back

    r = await client.post(
        f"/api/datasets/{MID}?type=auto",
        content=browser(),
        headers={**ACME, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 201 and r.json() == {"received": 5 * 65536}
    [sent] = upstreams.requests
    assert str(sent.url) == f"http://datasets.test/v1/models/{MID}/datasets?type=auto"
    assert sent.headers["content-type"] == "multipart/form-data; boundary=b"


# ---------------------------------------------------------------- parts of a resumable upload


def upload_view(urls: dict[int, str], received: dict[int, int] | None = None, state: str = "open") -> dict:
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    return {
        "id": UID,
        "state": state,
        "part_count": 3,
        "part_size": 5 * 2**20,
        "parts_received": [{"part_number": n, "size": s, "etag": "e"} for n, s in (received or {}).items()],
        "part_urls": [
            {"part_number": n, "size": 10 if n == 3 else 5 * 2**20, "url": u, "expires_at": expires}
            for n, u in urls.items()
        ],
    }


def signed(url: str, part: dict) -> str:
    """The URL the fake datasets API signs for ``part`` (its checksum in the query, where a test can see it)."""
    return f"{url}{'&' if '?' in url else '?'}signed={quote(part['checksum_sha256'], safe='')}"


def storage_and_datasets(view: dict, storage_status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "datasets.test":
            if request.headers.get("authorization") != ACME["Authorization"]:
                return httpx.Response(404, json={"error": {"code": "not_found", "message": "No upload"}})
            if request.method == "POST":  # a URL that signs the part's checksum
                assert request.url.path.endswith("/part-urls")
                [part] = json.loads(request.content)["parts"]
                unsigned = next(u for u in view["part_urls"] if u["part_number"] == part["part_number"])
                return httpx.Response(200, json={"part_urls": [{**unsigned, "url": signed(unsigned["url"], part)}]})
            assert request.method == "GET" and "content-length" not in request.headers
            return httpx.Response(200, json=view)
        assert request.url.host == "storage.test" and request.method == "PUT"
        return httpx.Response(
            storage_status, headers={"ETag": '"abc123"'}, text="" if storage_status == 200 else "<Error/>"
        )

    return handler


async def test_a_part_goes_to_the_presigned_url_the_datasets_api_gives_for_it(console) -> None:
    url = "http://storage.test/b/key?partNumber=3&uploadId=s3&X-Amz-Signature=sig"
    client, up = console(storage_and_datasets(upload_view({3: url})))
    r = await client.put(f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers=ACME)
    assert r.status_code == 200 and r.json() == {"part_number": 3, "size": 10, "etag": "abc123"}
    get, put = up.requests
    assert str(get.url) == f"http://datasets.test/v1/models/{MID}/uploads/{UID}"
    assert str(put.url) == url and up.bodies[1] == b"0123456789"
    assert "authorization" not in put.headers  # the signature in the URL is the storage's only credential
    # the URLs are kept until shortly before they expire: the next part needs no second look-up
    r = await client.put(f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers=ACME)
    assert r.status_code == 200 and [q.url.host for q in up.requests] == [
        "datasets.test",
        "storage.test",
        "storage.test",
    ]


async def test_once_storage_wants_the_checksum_signed_parts_go_to_urls_that_sign_it(console) -> None:
    url = "http://storage.test/3?X-Amz-Signature=sig"

    def aws(request: httpx.Request) -> httpx.Response:  # refuses an x-amz-* header its URL does not sign
        if request.url.host == "storage.test" and "signed" not in request.url.params:
            return httpx.Response(403, text="<Message>There were headers present in the request which were not signed")
        return storage_and_datasets(upload_view({3: url}))(request)

    client, up = console(aws)
    r = await client.put(f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers=ACME)
    assert r.status_code == 502 and "send it again" in r.json()["error"]["message"]  # the page retries
    r = await client.put(f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers=ACME)
    assert r.status_code == 200, r.text
    sign, put = up.requests[-2:]
    checksum = base64.b64encode(hashlib.sha256(b"0123456789").digest()).decode()
    assert str(sign.url) == f"http://datasets.test/v1/models/{MID}/uploads/{UID}/part-urls"
    assert json.loads(up.bodies[-2]) == {"parts": [{"part_number": 3, "checksum_sha256": checksum}]}
    assert str(put.url) == signed(url, {"checksum_sha256": checksum}) and up.bodies[-1] == b"0123456789"
    assert put.headers["x-amz-checksum-sha256"] == checksum


async def test_a_part_goes_to_storage_with_its_checksum_as_the_page_sent_it_or_computed_here(console) -> None:
    client, up = console(storage_and_datasets(upload_view({3: "http://storage.test/3"})))
    sent = base64.b64encode(hashlib.sha256(b"0123456789").digest()).decode()
    r = await client.put(
        f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers={**ACME, "x-amz-checksum-sha256": sent}
    )
    assert r.status_code == 200 and up.requests[-1].headers["x-amz-checksum-sha256"] == sent
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    r = await client.put(  # passed on as the page sent it: storage is the one that checks it
        f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers={**ACME, "x-amz-checksum-sha256": wrong}
    )
    assert up.requests[-1].headers["x-amz-checksum-sha256"] == wrong
    r = await client.put(f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers=ACME)  # no WebCrypto
    assert r.status_code == 200 and up.requests[-1].headers["x-amz-checksum-sha256"] == sent
    assert up.bodies[-1] == b"0123456789"


async def test_a_part_storage_finds_damaged_is_a_retryable_502(console) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.test":
            return httpx.Response(400, text="<Error><Code>XAmzContentChecksumMismatch</Code></Error>")
        return storage_and_datasets(upload_view({3: "http://storage.test/3"}))(request)

    client, _ = console(handler)
    r = await client.put(f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers=ACME)
    assert r.status_code == 502 and "arrived damaged" in r.json()["error"]["message"]


async def test_a_part_of_the_wrong_size_or_number_is_refused_before_storage(console) -> None:
    client, up = console(storage_and_datasets(upload_view({1: "http://storage.test/1", 3: "http://storage.test/3"})))
    r = await client.put(f"/api/uploads/{MID}/{UID}/parts/3", content=b"too long for part three", headers=ACME)
    assert r.status_code == 422 and "exactly 10 bytes" in r.json()["error"]["message"]
    r = await client.put(f"/api/uploads/{MID}/{UID}/parts/2", content=b"x", headers=ACME)
    assert r.status_code == 422 and "Part 2 is not part of" in r.json()["error"]["message"]
    assert all(q.url.host == "datasets.test" for q in up.requests)


async def test_another_tenant_cannot_use_an_upload_nor_its_cached_urls(console) -> None:
    client, up = console(storage_and_datasets(upload_view({3: "http://storage.test/3"})))
    assert (
        await client.put(f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers=ACME)
    ).status_code == 200
    r = await client.put(f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers=auth_headers("globex"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert [q.url.host for q in up.requests] == ["datasets.test", "storage.test", "datasets.test"]


async def test_a_part_storage_already_has_is_not_sent_again(console) -> None:
    client, up = console(storage_and_datasets(upload_view({}, received={3: 10})))
    r = await client.put(f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers=ACME)
    assert r.status_code == 200 and r.json()["already_received"] is True
    assert [q.url.host for q in up.requests] == ["datasets.test"]


async def test_storage_refusing_a_part_is_a_retryable_502(console) -> None:
    client, up = console(storage_and_datasets(upload_view({3: "http://storage.test/3"}), storage_status=403))
    r = await client.put(f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers=ACME)
    assert r.status_code == 502 and r.json()["error"]["code"] == "storage_unavailable"
    # the cached URLs were dropped (an expired signature, say): the retry asks for fresh ones
    await client.put(f"/api/uploads/{MID}/{UID}/parts/3", content=b"0123456789", headers=ACME)
    assert [q.url.host for q in up.requests] == ["datasets.test", "storage.test", "datasets.test", "storage.test"]


async def test_a_completed_upload_takes_no_more_parts(console) -> None:
    client, _ = console(storage_and_datasets(upload_view({}, state="completed")))
    r = await client.put(f"/api/uploads/{MID}/{UID}/parts/1", content=b"x", headers=ACME)
    assert r.status_code == 409


@pytest.mark.parametrize(
    ("path", "api", "upstream"),
    [
        ("/v1/models", "models", "/v1/models"),
        ("/v1/models/m1/train", "models", "/v1/models/m1/train"),
        ("/v1/models/m1/datasets/d1", "datasets", "/v1/models/m1/datasets/d1"),
        ("/v1/models/m1/uploads/complete", "datasets", "/v1/models/m1/uploads/complete"),
        ("/v1/models/m1/transcriptions", "trainer", "/v1/models/m1/transcriptions"),
        ("/v1/models/m1/cancel", "models", "/v1/models/m1/cancel"),
        ("/v1/models/m1/export", "trainer", "/v1/models/m1/export"),
        ("/v1/transcriptions/j1", "trainer", "/v1/transcriptions/j1"),
        ("/v1/credits", "models", "/v1/credits"),
        ("/v1/vocabulary", "models", "/v1/vocabulary"),
        ("/v1/upload-limits", "datasets", "/v1/upload-limits"),
        ("/v1/webhooks/w1/deliveries", "webhooks", "/v1/webhooks/w1/deliveries"),
        ("/v1/api-keys", "identity", "/v1/api-keys"),
        ("/v1/api-keys/k1", "identity", "/v1/api-keys/k1"),
        ("/v1/auth/token", "identity", "/v1/auth/token"),
    ],
)
def test_the_gateway_routes_public_paths_like_the_ingress(path: str, api: str, upstream: str) -> None:
    target = proxy.gateway_route(path)
    assert target is not None and (target.api, target.path) == (api, upstream)


@pytest.mark.parametrize(
    "path", ["/v1/models/../admin", "/v1/other", "/v2/models", "/v1/models/%2e%2e/x", "/v1/transcriptions/j1/x"]
)
def test_the_gateway_routes_nothing_else(path: str) -> None:
    assert proxy.gateway_route(path) is None


def test_the_proxy_lets_go_of_an_idle_connection_before_a_service_closes_it() -> None:
    """A pooled connection reused just as the service closes it for idleness fails with a reset, not an answer
    (uvicorn's and httpx's defaults are both 5 s: CI saw a 502 ``upstream_unavailable`` on an upload from that)."""
    from voxtrain_console.http import make_client
    from voxtrain_shared.http import CLIENT_KEEP_ALIVE_SECONDS, KEEP_ALIVE_SECONDS

    client = make_client(settings())
    pool = client._transport._pool  # type: ignore[attr-defined]  # httpx exposes the expiry only here

    assert pool._keepalive_expiry == CLIENT_KEEP_ALIVE_SECONDS
    assert CLIENT_KEEP_ALIVE_SECONDS * 2 < KEEP_ALIVE_SECONDS  # a wide margin for a loaded event loop
