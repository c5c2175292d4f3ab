"""Wires the models service: the one place that builds its dependencies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from voxtrain_shared.service import Service
from voxtrain_shared.settings import ModelsSettings

from . import consumers, gauges, handlers, http, workers
from .credits import Policy, Rates

MIGRATIONS = Path(__file__).parent / "migrations"
SUPPORTED_LANGUAGES = ("en-US",)


def build(
    settings: ModelsSettings,
    *,
    gauge_every: float = gauges.REFRESH_SECONDS,
    clock: Callable[[], datetime] = workers.utc_now,
) -> Service:
    """The models service; ``clock`` is the supervisor's notion of now (tests move it forward)."""
    svc = Service(
        settings,
        migrations=MIGRATIONS,
        title="voxtrain models",
        description="Custom models and their training status (1 Not Running … 5 Failed).",
    )
    uow = handlers.unit_of_work(lambda: svc.pool, svc.schema, svc.topics)
    t = svc.topics
    rules = workers.policy(settings.supervision)
    c = settings.credits
    credits = Policy(Rates(c.per_audio_minute, c.per_thousand_words, c.minimum), c.free_allowance)
    svc.app.include_router(http.router(uow, SUPPORTED_LANGUAGES, credits))
    svc.app.include_router(http.ops_router(uow, rules))
    svc.app.include_router(http.credits_router(uow, credits))
    svc.consumer(t.datasets, "datasets", consumers.facts(uow, "datasets", credits))
    svc.consumer(t.validation, "validation", consumers.facts(uow, "validation", credits))
    svc.consumer(t.training_events, "training", consumers.facts(uow, "training", credits))
    svc.consumer(
        t.model_commands, "commands", consumers.commands(uow, settings.auth, "commands", SUPPORTED_LANGUAGES, credits)
    )

    supervisor = workers.supervisor(uow, rules, settings.supervision.every_seconds, clock=clock)

    async def start_background(s: Service) -> None:
        s.background(gauges.refresh_forever(lambda: s.pool, s.stopping, gauge_every))
        s.background(supervisor.run(s.stopping))

    svc.on_start(start_background)
    return svc
