"""Wires the console: the one place that builds its dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import httpx
from fastapi import FastAPI

from voxtrain_shared import http as shared_http
from voxtrain_shared import logs, tracing

from . import http, parts
from .feed import KafkaFeed
from .live import Hub
from .settings import ConsoleSettings

log = logs.get_logger(__name__)


class Feed(Protocol):
    """What feeds the hub: started and stopped with the app, ``ready`` once it receives events."""

    ready: bool

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Console:
    """The console process: the app, the hub of live events, the feed that fills it, the API client."""

    def __init__(
        self, settings: ConsoleSettings, *, feed: Feed | None = None, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.hub = Hub(settings.sse_queue_size)
        self.feed: Any = feed if feed is not None else KafkaFeed(settings.kafka, self.hub)
        self.client = http.make_client(settings, transport)
        self.app = FastAPI(
            title="voxtrain console",
            version="1.0.0",
            lifespan=self._lifespan,
            description="The Custom Models pages, a same-origin proxy to the voxtrain APIs, "
            "and live training status as Server-Sent Events.",
        )
        self.app.state.auth_settings = settings.auth
        self.app.state.console = self
        shared_http.install(self.app, {"kafka_feed": self._check_feed})
        self.app.include_router(
            http.router(settings, self.hub, self.client, parts.PartUrls(self.client, settings.upstream("datasets")))
        )
        self.app.mount("/static", http.Assets(directory=http.STATIC), name="static")
        self.tracing = tracing.setup(settings.service_name, app=self.app, clients=[self.client])

    async def start(self) -> None:
        logs.configure(self.settings.service_name, self.settings.log_level)
        await self.feed.start()
        log.info("service_started", service="console", port=self.settings.http.port)

    async def stop(self) -> None:
        self.hub.close()
        await self.feed.stop()
        await self.client.aclose()
        self.tracing.flush()
        log.info("service_stopped", service="console")

    @asynccontextmanager
    async def _lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def _check_feed(self) -> None:
        if not self.feed.ready:
            raise ConnectionError("not yet receiving events from Kafka")


def build(settings: ConsoleSettings, **kwargs: Any) -> Console:
    return Console(settings, **kwargs)
