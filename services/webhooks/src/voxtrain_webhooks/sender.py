"""Sends deliveries over HTTP (httpx): no redirects, a timeout, and no private addresses.

The endpoint's host is resolved before each attempt and every address it resolves to must be public (or
loopback, when ``allow_insecure`` is set for development and tests), so a name that points into the
deployment's own network is never called.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import httpx

from .domain import Attempt, address_allowed


class HttpSender:
    def __init__(
        self, *, timeout: float, allow_insecure: bool, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport)
        self._allow_insecure = allow_insecure

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> Attempt:
        started = time.perf_counter()

        def elapsed() -> int:
            return int((time.perf_counter() - started) * 1000)

        refused = await self._refused_address(url)
        if refused:
            return Attempt(None, elapsed(), refused)
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Attempt(None, elapsed(), f"{type(exc).__name__}: {exc}"[:500])
        return Attempt(response.status_code, elapsed())

    async def _refused_address(self, url: str) -> str | None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443)
        except OSError as exc:
            return f"cannot resolve {host}: {exc}"
        for info in infos:
            address = str(info[4][0])
            if not address_allowed(address, allow_loopback=self._allow_insecure):
                return f"{host} resolves to {address}, a private or reserved address; not called"
        return None
