"""The same-origin API of the console: ``/api/…`` paths forwarded to the three public APIs.

| console path                                  | API      | path                                        |
|-----------------------------------------------|----------|---------------------------------------------|
| ``/api/models[/…]``                           | models   | ``/v1/models[/…]``                          |
| ``/api/models/{model_id}/export``             | trainer  | ``/v1/models/{model_id}/export``            |
| ``/api/credits``                              | models   | ``/v1/credits``                             |
| ``/api/datasets/{model_id}[/…]``              | datasets | ``/v1/models/{model_id}/datasets[/…]``      |
| ``/api/uploads/{model_id}[/…]``               | datasets | ``/v1/models/{model_id}/uploads[/…]``       |
| ``/api/transcriptions/{model_id}``            | trainer  | ``/v1/models/{model_id}/transcriptions``    |
| ``/api/vocabulary``                           | models   | ``/v1/vocabulary``                          |
| ``/api/upload-limits``                        | datasets | ``/v1/upload-limits``                       |

Bodies stream both ways (an upload of gigabytes is never held in memory); the caller's
``Authorization`` header is forwarded as is, so each API applies its own tenant rules. Cookies are
not forwarded.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from fastapi import Request
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, Response, StreamingResponse

from voxtrain_shared.http import CORRELATION_HEADER
from voxtrain_shared.logs import get_logger

log = get_logger(__name__)
_SEGMENT = re.compile(r"^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,199}$")
#: Request headers an API may need; everything else (cookies, hop-by-hop headers) stays here.
REQUEST_HEADERS = ("authorization", "content-type", "content-length", "accept", "if-none-match")
#: Response headers worth passing back to the browser.
RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "content-encoding",
    "content-disposition",
    "location",
    "retry-after",
    "etag",
    "cache-control",
    CORRELATION_HEADER.lower(),
)
#: One-segment paths and their API: the product's vocabulary (models), the upload limits (datasets), and
#: the token's tenant's credits (models: it owns the ledger).
SINGLE = {"vocabulary": "models", "upload-limits": "datasets", "credits": "models"}
API_NAMES = {
    "models": "models API",
    "datasets": "datasets API",
    "trainer": "transcription API",
    "webhooks": "webhooks API",
    "identity": "identity API",
}


@dataclass(frozen=True)
class Target:
    """Where a console path goes: which API and which path there."""

    api: str
    path: str


def route(path: str) -> Target | None:
    """The API path for a console ``/api/…`` path; None when the path is not proxied or not safe.

    Every segment must be a plain name (letters, digits, ``-_.~``, not ``.``/``..``), so no path
    can escape the prefix it was routed by.
    """
    if not path.startswith("/api/"):
        return None
    parts = path[len("/api/") :].rstrip("/").split("/")
    if not all(_SEGMENT.match(p) for p in parts):
        return None
    head, rest = parts[0], parts[1:]
    if head in SINGLE and not rest:
        return Target(SINGLE[head], f"/v1/{head}")
    if head == "models":
        if len(rest) == 2 and rest[1] == "export":
            return Target("trainer", f"/v1/models/{rest[0]}/export")
        return Target("models", "/".join(["/v1/models", *rest]))
    if head in ("datasets", "uploads") and rest:
        model_id, tail = rest[0], rest[1:]
        return Target("datasets", "/".join(["/v1/models", model_id, head, *tail]))
    if head == "transcriptions" and len(rest) == 1:
        return Target("trainer", f"/v1/models/{rest[0]}/transcriptions")
    return None


def gateway_route(path: str) -> Target | None:
    """The API for a public ``/v1/…`` path, routed as the Ingress routes it (deploy/k8s/base/ingress.yaml),
    so that locally the console's URL serves the whole public API (e.g. for the ``vt`` command line)."""
    if not path.startswith("/v1/"):
        return None
    parts = path[len("/v1/") :].rstrip("/").split("/")
    if not all(_SEGMENT.match(p) for p in parts):
        return None
    head, rest = parts[0], parts[1:]
    clean = "/v1/" + "/".join(parts)
    if head in SINGLE and not rest:
        return Target(SINGLE[head], clean)
    if head == "webhooks":
        return Target("webhooks", clean)
    if head in ("api-keys", "auth"):
        return Target("identity", clean)
    if head == "transcriptions" and len(rest) == 1:  # asynchronous transcription jobs
        return Target("trainer", clean)
    if head == "models":
        sub = rest[1] if len(rest) > 1 else None
        if sub in ("datasets", "uploads"):
            return Target("datasets", clean)
        if sub in ("transcriptions", "export") and len(rest) == 2:
            return Target("trainer", clean)
        return Target("models", clean)
    return None


def error(status: int, code: str, message: str) -> JSONResponse:
    """The shared error body (``{"error": {"code", "message"}}``)."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def forwarded_headers(request: Request) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k in REQUEST_HEADERS}
    headers[CORRELATION_HEADER] = str(getattr(request.state, "correlation_id", "") or "")
    if not headers[CORRELATION_HEADER]:
        del headers[CORRELATION_HEADER]
    return headers


async def body_of(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, chunk by chunk."""
    async for chunk in request.stream():
        if chunk:
            yield chunk


def has_body(request: Request) -> bool:
    return "content-length" in request.headers or "transfer-encoding" in request.headers


async def relay(client: httpx.AsyncClient, request: Request, url: str, api: str) -> Response:
    """Send ``request`` to ``url`` and stream the answer back."""
    query = request.url.query  # as sent: repeated keys and encoding kept
    upstream_request = client.build_request(
        request.method,
        f"{url}?{query}" if query else url,
        headers=forwarded_headers(request),
        content=body_of(request) if has_body(request) else None,
    )
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.TimeoutException:
        return error(504, "upstream_timeout", f"The {API_NAMES[api]} did not answer in time; try again.")
    except httpx.TransportError as exc:
        log.warning("upstream_unavailable", api=api, error=repr(exc))
        return error(502, "upstream_unavailable", f"The {API_NAMES[api]} is unavailable; try again later.")
    headers = {k: v for k, v in upstream.headers.items() if k.lower() in RESPONSE_HEADERS}
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=headers,
        background=BackgroundTask(upstream.aclose),
    )
