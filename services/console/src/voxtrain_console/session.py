"""Sign-in with an API key, and the live status stream's cookie.

Signing in (``POST /api/session`` with an API key) exchanges the key at the identity API for a short-lived
token (60 s at most) and answers it; the pages send it as ``Authorization: Bearer …`` on every API call and
sign in again with the key before it expires, so the session lasts while the key is valid and ends within a
minute of its revocation. A browser's EventSource cannot set headers, so signing in also sets an HttpOnly,
SameSite=Strict cookie (the token) scoped to ``/api/events`` only: scripts cannot read it, other sites cannot
send it, and it reaches no other path (the proxy never forwards cookies anyway). It lasts until the token
expires; ``DELETE /api/session`` (sign out) removes it. Keys and tokens never go in URLs.
"""

from __future__ import annotations

import time

import httpx
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


def _refused(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def sign_in(
    client: httpx.AsyncClient, identity_url: str, api_key: str, settings: AuthSettings, secure: bool
) -> Response:
    """Exchange ``api_key`` for a token; answer it with the tenant and set the events cookie, or the refusal."""
    try:
        answer = await client.post(f"{identity_url}/v1/auth/token", json={"api_key": api_key.strip()})
    except httpx.HTTPError:
        return _refused(502, "upstream_unavailable", "The identity API is unavailable; try again later.")
    if answer.status_code != 200:
        try:
            return JSONResponse(answer.json(), status_code=answer.status_code)
        except ValueError:
            return _refused(502, "upstream_unavailable", "The identity API answered something unexpected.")
    token = str(answer.json().get("access_token", ""))
    try:
        principal = verify_token(settings, token)
    except InvalidToken as exc:
        return _refused(502, "upstream_unavailable", f"The identity API's token is not valid here ({exc}).")
    exp = expires_at(token)
    response = JSONResponse(
        {
            "tenant_id": principal.tenant_id,
            "access_token": token,
            "expires_in": max(0, int(exp - time.time())),
            "expires_at": int(exp),
            "scopes": sorted(principal.scopes),
        }
    )
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
