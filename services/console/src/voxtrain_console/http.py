"""Routes of the console: the pages, sign-in, live events, the parts relay and the API proxy."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Body, Request
from fastapi.responses import FileResponse
from starlette.responses import Response, StreamingResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from voxtrain_shared.auth import InvalidToken
from voxtrain_shared.http import CLIENT_KEEP_ALIVE_SECONDS

from . import parts, proxy, session
from .live import Hub, sse_stream
from .settings import ConsoleSettings

STATIC = Path(__file__).parent / "static"
#: The pages load nothing from anywhere but this origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "media-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class Assets(StaticFiles):
    """Static files with the pages' security headers, revalidated on every load (no build step, no hashes)."""

    def file_response(self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(PAGE_HEADERS)
        return response


def page_config(settings: ConsoleSettings) -> dict[str, Any]:
    """The console's own settings the pages need. The product's rules come from the APIs themselves:
    ``/api/vocabulary`` (statuses, languages, dataset types) and ``/api/upload-limits``."""
    return {"resumable_threshold_bytes": settings.resumable_threshold_bytes}


def router(settings: ConsoleSettings, hub: Hub, client: httpx.AsyncClient, part_urls: parts.PartUrls) -> APIRouter:
    r = APIRouter()
    urls = {name: settings.upstream(name) for name in proxy.API_NAMES}

    def secure(request: Request) -> bool:
        if settings.secure_cookies is not None:
            return settings.secure_cookies
        return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"

    @r.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @r.get("/api/config", tags=["console"])
    async def config() -> dict[str, Any]:
        """The console's own settings for the pages (when to use resumable uploads)."""
        return page_config(settings)

    @r.post("/api/session", tags=["console"])
    async def sign_in(request: Request, api_key: str = Body(embed=True, max_length=200)) -> Response:
        """Exchange an API key for a short-lived token (at the identity API) and answer it; sets the cookie that
        lets this browser open ``/api/events``. The page calls this again before the token expires."""
        return await session.sign_in(client, urls["identity"], api_key, settings.auth, secure(request))

    @r.delete("/api/session", tags=["console"], status_code=204)
    async def sign_out(request: Request) -> Response:
        return session.sign_out(secure(request))

    @r.get("/api/events", tags=["console"])
    async def events(request: Request) -> Response:
        """Server-Sent Events: ``status`` (TrainingStatusChanged) and ``progress`` (TrainingProgress) of
        the signed-in tenant's models, nothing of any other tenant."""
        try:
            principal, expires = session.principal_of(request, settings.auth)
        except InvalidToken as exc:
            return proxy.error(401, "unauthorized", f"Sign in first ({exc}).")
        stream = sse_stream(hub, principal.tenant_id, settings.sse_heartbeat_seconds, expires)
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    @r.get("/v1/models/{model_id}/events", tags=["console"])
    async def model_events(model_id: uuid.UUID, request: Request) -> Response:
        """Server-Sent Events of one model for programs (``vt train --wait``), with the token in the
        Authorization header: ``ready``, then ``status`` and ``progress`` (with ``eta_seconds``) as they happen."""
        try:
            principal, expires = session.principal_of(request, settings.auth)
        except InvalidToken as exc:
            return proxy.error(401, "unauthorized", f"A valid bearer token is needed ({exc}).")
        stream = sse_stream(hub, principal.tenant_id, settings.sse_heartbeat_seconds, expires, model_id=str(model_id))
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    @r.put("/api/uploads/{model_id}/{upload_id}/parts/{number}", tags=["console"])
    async def put_part(model_id: str, upload_id: str, number: int, request: Request) -> Response:
        """One part of a resumable upload, streamed to storage (answers its ETag)."""
        if not (proxy.route(f"/api/uploads/{model_id}/{upload_id}") and 1 <= number <= 10_000):
            return proxy.error(404, "not_found", "No such upload part.")
        return await parts.put_part(client, part_urls, request, model_id, upload_id, number)

    @r.api_route("/api/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def forward(path: str, request: Request) -> Response:
        target = proxy.route(request.url.path)
        if target is None:
            return proxy.error(404, "not_found", f"No API at {request.url.path}.")
        return await proxy.relay(client, request, urls[target.api] + target.path, target.api)

    @r.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def gateway(path: str, request: Request) -> Response:
        """The public API under the console's URL, routed like the Ingress (one URL for `vt` locally)."""
        target = proxy.gateway_route(request.url.path)
        if target is None:
            return proxy.error(404, "not_found", f"No API at {request.url.path}.")
        return await proxy.relay(client, request, urls[target.api] + target.path, target.api)

    return r


def make_client(settings: ConsoleSettings, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    timeout = httpx.Timeout(connect=10.0, read=settings.upstream_timeout_seconds, write=120.0, pool=30.0)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=40, keepalive_expiry=CLIENT_KEEP_ALIVE_SECONDS)
    return httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport, follow_redirects=False)
