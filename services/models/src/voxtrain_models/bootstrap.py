"""Wires the models service: the one place that builds its dependencies."""

from __future__ import annotations

from pathlib import Path

from voxtrain_shared.service import Service
from voxtrain_shared.settings import ModelsSettings

from . import consumers, gauges, handlers, http

MIGRATIONS = Path(__file__).parent / "migrations"
SUPPORTED_LANGUAGES = ("en-US",)


def build(settings: ModelsSettings, *, gauge_every: float = gauges.REFRESH_SECONDS) -> Service:
    svc = Service(settings, migrations=MIGRATIONS, title="voxtrain models",
                  description="Custom models and their training status (1 Not Running … 5 Failed).")
    uow = handlers.unit_of_work(lambda: svc.pool, svc.schema, svc.topics)
    t = svc.topics
    svc.app.include_router(http.router(uow, SUPPORTED_LANGUAGES))
    svc.consumer(t.datasets, "datasets", consumers.facts(uow, "datasets"))
    svc.consumer(t.validation, "validation", consumers.facts(uow, "validation"))
    svc.consumer(t.training_events, "training", consumers.facts(uow, "training"))
    svc.consumer(t.model_commands, "commands",
                 consumers.commands(uow, settings.auth, "commands", SUPPORTED_LANGUAGES))

    async def start_gauges(s: Service) -> None:
        s.background(gauges.refresh_forever(lambda: s.pool, s.stopping, gauge_every))

    svc.on_start(start_gauges)
    return svc
