"""``voxtrain-console``: run the web console (pages, API proxy, live status)."""

from voxtrain_shared.http import KEEP_ALIVE_SECONDS
from voxtrain_shared.settings import load

from .bootstrap import build
from .settings import ConsoleSettings


def run() -> None:
    settings = load(ConsoleSettings)
    import uvicorn

    uvicorn.run(
        build(settings).app,
        host=settings.http.host,
        port=settings.http.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
