"""Wires the webhooks service: the one place that builds its dependencies."""

from __future__ import annotations

from pathlib import Path

from voxtrain_shared import events as ev
from voxtrain_shared.http import answer_refusals
from voxtrain_shared.kafka import Handler
from voxtrain_shared.service import Service
from voxtrain_shared.settings import WebhooksSettings

from . import consumers, handlers, http, workers
from .domain import RetryPolicy
from .sender import HttpSender

MIGRATIONS = Path(__file__).parent / "migrations"
DISPATCH_POLL_SECONDS = 1.0


def build(
    settings: WebhooksSettings, *, sender: handlers.Sender | None = None, clock: handlers.Clock = handlers.utc_now
) -> Service:
    """The service; tests may pass their own ``sender`` (default: HTTP) and ``clock``."""
    svc = Service(
        settings,
        migrations=MIGRATIONS,
        title="voxtrain webhooks",
        description="Signed deliveries of status changes (and progress) to tenants' HTTPS endpoints.",
    )
    uow = handlers.unit_of_work(lambda: svc.pool, svc.schema, svc.topics)
    http_sender = HttpSender(timeout=settings.timeout_seconds, allow_insecure=settings.allow_insecure_urls)
    send = sender or http_sender
    policy = RetryPolicy(settings.first_retry_seconds, settings.max_retry_seconds, settings.retry_for_seconds)
    dispatcher = workers.dispatcher(
        uow, send, policy, clock, concurrency=settings.concurrency, every=DISPATCH_POLL_SECONDS, health=svc.health
    )
    svc.app.include_router(http.router(uow, settings, send, clock))
    answer_refusals(svc.app, http.STATUS_OF)

    def waking(handler: Handler) -> Handler:
        async def handle(env: ev.Envelope) -> None:
            await handler(env)
            dispatcher.wake()

        return handle

    t = svc.topics
    svc.consumer(t.status, "status", waking(consumers.published(uow, "webhooks.status")), types=consumers.STATUS_TYPES)
    svc.consumer(
        t.training_events,
        "progress",
        waking(consumers.published(uow, "webhooks.progress")),
        types=consumers.PROGRESS_TYPES,
    )

    async def start(s: Service) -> None:
        s.background(dispatcher.run(s.stopping))

    async def stop(_: Service) -> None:
        await http_sender.close()

    svc.on_start(start)
    svc.on_stop(stop)
    return svc
