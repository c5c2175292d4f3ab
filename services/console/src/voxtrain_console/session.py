"""Sign-in for the live status stream.

The pages send the tenant token as ``Authorization: Bearer …`` on every API call, but a browser's
EventSource cannot set headers. So signing in (``POST /api/session`` with the token) also sets an
HttpOnly, SameSite=Strict cookie scoped to ``/api/events`` only: scripts cannot read it, other sites
cannot send it, and it reaches no other path (the proxy never forwards cookies anyway). It lasts
until the token expires; ``DELETE /api/session`` (sign out) removes it. Tokens never go in URLs.
"""

from __future__ import annotations

import time

import jwt
from fastapi import Request
from starlette.responses import JSONResponse, Response

from voxtrain_shared.auth import InvalidToken, Principal, bearer, verify_token
from voxtrain_shared.settings import AuthSettings

COOKIE = "voxtrain_events"
COOKIE_PATH = "/api/events"


def expires_at(token: str) -> float:
    """The token's ``exp`` (only call after :func:`verify_token` accepted it)."""
    return float(jwt.decode(token, options={"verify_signature": False}).get("exp", 0))


def principal_of(request: Request, settings: AuthSettings) -> tuple[Principal, float]:
    """The tenant of the events cookie, else of the Authorization header, and when its token expires."""
    token = request.cookies.get(COOKIE) or bearer(request.headers.get("authorization"))
    return verify_token(settings, token), expires_at(token)


def sign_in(token: str, settings: AuthSettings, secure: bool) -> Response:
    """Check ``token``; answer the tenant and set the events cookie, or 401."""
    token = token.strip().removeprefix("Bearer ").strip()
    try:
        principal = verify_token(settings, token)
    except InvalidToken as exc:
        return JSONResponse(
            {
                "error": {
                    "code": "unauthorized",
                    "message": f"This token is not valid ({exc}). Get one with `voxtrain token TENANT`.",
                }
            },
            status_code=401,
        )
    exp = expires_at(token)
    response = JSONResponse({"tenant_id": principal.tenant_id, "expires_at": int(exp)})
    response.set_cookie(
        COOKIE,
        token,
        max_age=max(0, int(exp - time.time())),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    return response


def sign_out(secure: bool) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure)
    return response
