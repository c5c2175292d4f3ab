"""``voxtrain-console``: run the web console (pages, API proxy, live status)."""

from voxtrain_shared.http import serve
from voxtrain_shared.settings import load

from .bootstrap import build
from .settings import ConsoleSettings

SHUTDOWN_SECONDS = 5  # a stop waits this long for open requests: the live-status streams never end by themselves


def run() -> None:
    settings = load(ConsoleSettings)
    serve(build(settings).app, settings, graceful_shutdown_seconds=SHUTDOWN_SECONDS)
