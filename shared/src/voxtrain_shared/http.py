"""The HTTP edge every service shares: error rendering, correlation ids, health and metrics.

No request ends in a bare 500: an error that escapes a route is classified (:mod:`voxtrain_shared.faults`);
a dependency that is away answers ``503`` with code ``dependency_unavailable``, the dependency's name and a
``Retry-After`` (the correlation middleware answers it); anything else ``500`` with code ``internal_error``
and the correlation id to quote (an ``Exception`` handler, which Starlette calls and then re-raises the error
so the server logs it).
``/health/ready`` runs the service's checks and adds what :class:`~voxtrain_shared.health.Health` knows
(a consumer waiting for PostgreSQL, a relay that cannot publish), naming every missing dependency.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, Rejected
from .faults import classify, dependency_message
from .health import Health
from .logs import get_logger
from .metrics import HTTP_REQUESTS
from .settings import BaseServiceSettings
from .vocab import ErrorCode

log = get_logger(__name__)
RETRY_AFTER_SECONDS = 5

#: How long a server keeps an idle HTTP connection open. A client that reuses a pooled connection just as the server
#: closes it gets a connection reset instead of an answer, so every client of ours (the console's proxy, an Ingress)
#: must drop idle connections sooner than this. uvicorn's default of 5 s equals httpx's pool expiry: that race.
KEEP_ALIVE_SECONDS = 75


def serve(
    app: FastAPI,
    settings: BaseServiceSettings,
    *,
    loop: str = "asyncio",
    http: str = "h11",
    graceful_shutdown_seconds: int | None = None,
) -> None:
    """Run ``app`` with uvicorn on the configured host and port, as every service and the console do.

    ``loop``/``http``: uvicorn's choices; a service that depends on uvloop and httptools (the datasets service, for
    streamed uploads) passes theirs, the others keep the pure-Python pair whatever else is installed in the
    environment. ``graceful_shutdown_seconds``: how long a stop waits for open requests (None: until they end; the
    console's live-status streams never do, so it passes a few seconds)."""
    import uvicorn

    uvicorn.run(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        loop=loop,
        http=http,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=graceful_shutdown_seconds,
    )


#: How long the console's proxy keeps an idle connection to a service: well under :data:`KEEP_ALIVE_SECONDS`.
CLIENT_KEEP_ALIVE_SECONDS = 15.0

Check = Callable[[], Awaitable[None]]
CORRELATION_HEADER = "X-Correlation-ID"
_STATUS_CODES = {
    401: ErrorCode.UNAUTHORIZED,
    402: ErrorCode.INSUFFICIENT_CREDITS,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    409: ErrorCode.CONFLICT,
}


def correlation_id(request: Request) -> uuid.UUID:
    """The request's correlation id (from the header, else a new one)."""
    cid: uuid.UUID = request.state.correlation_id
    return cid


def unavailable_response(exc: Exception) -> JSONResponse | None:
    """503 ``dependency_unavailable`` when ``exc`` says a dependency is away; None for any other error."""
    fault = classify(exc)
    if not fault.transient:
        return None
    log.warning("request_dependency_unavailable", dependency=fault.dependency or "unknown", error=fault.reason)
    body = ApiError(
        503,
        ErrorCode.DEPENDENCY_UNAVAILABLE,
        dependency_message(fault.dependency),
        {"dependency": fault.dependency or "unknown"},
    ).body()
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def internal_error_response(cid: object) -> JSONResponse:
    """500 ``internal_error`` naming the correlation id to quote."""
    body = ApiError(
        500,
        ErrorCode.INTERNAL_ERROR,
        f"The request failed because of an internal error; quote correlation id {cid} when you report it.",
    ).body()
    return JSONResponse(body, status_code=500, headers={CORRELATION_HEADER: str(cid)})


def install(app: FastAPI, checks: dict[str, Check], health: Health | None = None) -> None:
    """Add error handlers, the correlation-id middleware, ``/health/*`` and ``/metrics``."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        msg = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return JSONResponse(
            ApiError(422, ErrorCode.VALIDATION_FAILED, f"Invalid request: {msg}", details).body(), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, ErrorCode.VALIDATION_FAILED)
        return JSONResponse(ApiError(exc.status_code, code, str(exc.detail)).body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, _exc: Exception) -> JSONResponse:
        return internal_error_response(getattr(request.state, "correlation_id", "unknown"))

    app.add_middleware(_Correlate)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        """The process answers (no dependency is checked)."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"])
    async def ready() -> JSONResponse:
        """Every dependency of this service answers."""
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout=5)
                results[name] = "ok"
            except Exception as exc:  # report, don't raise: this is a probe
                results[name] = f"unavailable: {exc!r}"[:300]
        blocked = health.problems() if health is not None else {}
        missing = sorted({n for n, v in results.items() if v != "ok"} | set(health.missing() if health else ()))
        ok = not missing and not blocked
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": results, "blocked": blocked, "missing": missing},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)


class _Correlate:
    """Binds the request's correlation id (``X-Correlation-ID``, else a new one) to its logs and ``request.state``,
    echoes it on the response, counts the request, and answers ``503`` when a dependency is away.

    A plain ASGI middleware, not Starlette's ``BaseHTTPMiddleware``: that one wraps every ``receive`` of the
    body in a task group, which costs a streamed multi-GB upload a large share of its CPU time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = Headers(scope=scope).get(CORRELATION_HEADER)
        try:
            cid = uuid.UUID(raw) if raw else uuid.uuid4()
        except ValueError:
            cid = uuid.uuid4()
        scope.setdefault("state", {})["correlation_id"] = cid
        status: int | None = None

        async def echoed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[CORRELATION_HEADER] = str(cid)
            await send(message)

        structlog.contextvars.bind_contextvars(correlation_id=str(cid))
        try:
            await self.app(scope, receive, echoed)
        except Exception as exc:  # a dependency that is away: 503; anything else goes on to `_internal`
            unavailable = unavailable_response(exc)
            if unavailable is None or status is not None:
                raise
            await unavailable(scope, receive, echoed)
        finally:
            structlog.contextvars.unbind_contextvars("correlation_id")
            route = scope.get("route")
            HTTP_REQUESTS.labels(scope["method"], getattr(route, "path", "unmatched"), str(status or 500)).inc()


#: Statuses of refusals that mean the same in every service (a service's own map may add to them).
REFUSAL_STATUS = {ErrorCode.INSUFFICIENT_CREDITS: 402}


def answer_refusals(app: FastAPI, status_of: dict[ErrorCode, int], default: int = 422) -> None:
    """Render a domain :class:`~voxtrain_shared.errors.Rejected` as the API's error body, with the status
    ``status_of`` (or :data:`REFUSAL_STATUS`) gives its code (``default`` otherwise)."""
    statuses = {**REFUSAL_STATUS, **status_of}

    @app.exception_handler(Rejected)
    async def _rejected(_request: Request, exc: Rejected) -> JSONResponse:
        error = ApiError(statuses.get(exc.code, default), exc.code, exc.message, exc.details)
        return JSONResponse(error.body(), status_code=error.status)
