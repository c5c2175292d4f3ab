"""Limits on request bodies before any of it is read (an ASGI middleware every service installs).

- A request that sends a body (POST, PUT, PATCH, DELETE) to a ``/v1`` route must carry a valid bearer token:
  without one it is answered 401 *before its body is read* — an anonymous client cannot make a service read
  100 MB. The exceptions are the routes that exist to get a token (``OPEN_PATHS``).
- Bodies of JSON routes are capped (``HttpSettings.max_body_bytes``): a declared ``Content-Length`` over the cap
  is refused at once, a chunked body once the cap is passed — 413 ``request_too_large``. The streamed uploads
  (``STREAMED_BODIES``: datasets and transcription audio) are not capped here: their routes count what arrives
  against their own, larger limits (``file_too_large``).

The route handlers still verify tokens and scopes as before; this is the gate in front of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .errors import ApiError
from .vocab import ErrorCode

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
App = Callable[[Scope, Receive, Send], Any]

#: routes whose bodies are files, streamed and limited by the route itself
STREAMED_BODIES = (
    re.compile(r"^/v1/models/[^/]+/datasets$"),
    re.compile(r"^/v1/models/[^/]+/transcriptions$"),
)
#: routes a caller without a token may send a body to (they hand out tokens)
OPEN_PATHS = frozenset({"/v1/auth/token"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _TooLarge(Exception):
    pass


class BodyGuard:
    """``authenticate(header)`` raises :class:`ApiError` (401) for a missing or invalid bearer token."""

    def __init__(self, app: App, *, authenticate: Callable[[str | None], object], max_body_bytes: int) -> None:
        self.app, self._authenticate, self.max_body_bytes = app, authenticate, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        if path not in OPEN_PATHS:
            try:
                self._authenticate(headers.get("authorization"))
            except ApiError as exc:
                await _answer(send, exc)
                return
        if any(p.match(path) for p in STREAMED_BODIES):
            await self.app(scope, receive, send)
            return
        cap = self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await _answer(send, too_large(int(declared), cap))
            return
        received, started = 0, False

        async def counted() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise _TooLarge
            return message

        async def watched(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:
                raise
            await _answer(send, too_large(None, cap))


def too_large(declared: int | None, cap: int) -> ApiError:
    size = f"{declared:,} bytes" if declared is not None else f"more than {cap:,} bytes"
    return ApiError(
        413,
        ErrorCode.REQUEST_TOO_LARGE,
        f"The request body is {size}; this endpoint takes at most {cap:,} bytes of JSON. Files go to the upload "
        "routes (POST /v1/models/{id}/datasets or a resumable upload).",
        {"max_bytes": cap},
    )


async def _answer(send: Send, exc: ApiError) -> None:
    body = json.dumps(exc.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    # the body was not read: tell the client the connection ends, so it stops sending
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
