"""How requests carry credentials: a bearer token as given, or an API key exchanged for short-lived tokens.

An API key is exchanged at ``POST /v1/auth/token`` (``{"api_key": …}`` → ``{"access_token", "token_type",
"expires_in"}``) when the first request needs it, again shortly before the token expires, and again once when
voxtrain answers 401 (the token was revoked or the clock is off). The key itself is sent only to that endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator

import httpx

TOKEN_PATH = "/v1/auth/token"
#: re-exchange this long before the token's expiry, so a request never leaves with a token about to lapse
EXPIRY_MARGIN_SECONDS = 30.0


class AuthError(Exception):
    """The API key could not be exchanged for a token; the message says why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


class BearerToken(httpx.Auth):
    """A token used as is (``VT_TOKEN``)."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class ApiKeyAuth(httpx.Auth):
    """An API key (``VT_API_KEY``) exchanged for bearer tokens; thread-safe (uploads send from threads)."""

    def __init__(self, api_key: str, base_url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._api_key = api_key
        self._token_url = base_url.rstrip("/") + TOKEN_PATH
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.RLock()  # held only while exchanging, never across the request itself
        self.exchanges = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                yield from self._exchange()
            sent = self._token
        request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        if response.status_code == 401:
            with self._lock:
                if self._token == sent:  # another thread may have exchanged meanwhile
                    yield from self._exchange()
                sent = self._token
            request.headers["Authorization"] = f"Bearer {sent}"
            yield request

    def _exchange(self) -> Generator[httpx.Request, httpx.Response, None]:
        started = self._clock()
        response = yield httpx.Request("POST", self._token_url, json={"api_key": self._api_key})
        response.read()
        if not response.is_success:
            try:
                err = response.json().get("error", {})
            except ValueError:
                err = {}
            code = err.get("code") or f"http_{response.status_code}"
            message = err.get("message") or "the API key was not accepted"
            raise AuthError(response.status_code, code, f"{message} (exchanging VT_API_KEY at {self._token_url})")
        body = response.json()
        self._token = str(body["access_token"])
        lifetime = float(body.get("expires_in") or 0)
        self._expires_at = started + max(0.0, lifetime - min(EXPIRY_MARGIN_SECONDS, lifetime / 2))
        self.exchanges += 1


def auth_for(url: str, token: str | None, api_key: str | None) -> httpx.Auth:
    if api_key:
        return ApiKeyAuth(api_key, url)
    if token:
        return BearerToken(token)
    raise ValueError("an API key or a token is needed")
