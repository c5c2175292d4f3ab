"""The whole system on real sockets for a browser: the four services and the console, each served by
uvicorn in this process on a free port, all on one topic namespace and bucket (like tests/e2e)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from tests.support import PRIVATE_KEY, VERIFY_AUTH, settings_for, unique
from voxtrain_console.bootstrap import Console
from voxtrain_console.bootstrap import build as build_console
from voxtrain_console.settings import ConsoleSettings
from voxtrain_datasets.bootstrap import build as build_datasets
from voxtrain_identity.bootstrap import build as build_identity
from voxtrain_models.bootstrap import build as build_models
from voxtrain_shared.http import KEEP_ALIVE_SECONDS
from voxtrain_shared.settings import (
    DatasetsSettings,
    IdentitySettings,
    KafkaSettings,
    ModelsSettings,
    TrainerSettings,
    ValidatorSettings,
    WebhooksSettings,
)
from voxtrain_trainer.bootstrap import build as build_trainer
from voxtrain_validator.bootstrap import build as build_validator
from voxtrain_webhooks.bootstrap import build as build_webhooks

MiB = 1024**2


def listening_socket() -> socket.socket:
    """A socket bound to a free port on 127.0.0.1 (handed to uvicorn: no race for the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving(app: Any, name: str) -> AsyncIterator[str]:
    """Serve ``app`` (its lifespan included) on a free port; yields its base URL."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=3,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,  # as the services run
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn-{name}")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"{name} did not start")
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)
        sock.close()


@dataclass
class System:
    urls: dict[str, str]
    console: Console
    namespace: str

    @property
    def console_url(self) -> str:
        return self.urls["console"]


@asynccontextmanager
async def running_system(
    stack: Any,
    work_dir: Path,
    models_env: dict[str, str] | None = None,
    *,
    webhooks: bool = False,
    **console: Any,
) -> AsyncIterator[System]:
    """models, datasets, validator, trainer, identity (and with ``webhooks`` the webhooks service, allowed to
    call 127.0.0.1, retrying within a second) and the console on real ports; ``models_env``: more of the models
    service's environment (e.g. its credits settings); ``console``: the console's settings overrides."""
    namespace = unique("console")
    shared = {
        "VOXTRAIN_KAFKA__TOPIC_NAMESPACE": namespace,
        "VOXTRAIN_MINIO__BUCKET": unique("console").replace("_", "-"),
    }
    async with AsyncExitStack() as stack_:
        urls: dict[str, str] = {}
        for name, cls, build, extra in (
            ("models", ModelsSettings, build_models, models_env or {}),
            ("datasets", DatasetsSettings, build_datasets, {"VOXTRAIN_PART_SIZE_BYTES": str(5 * MiB)}),
            ("validator", ValidatorSettings, build_validator, {}),
            ("trainer", TrainerSettings, build_trainer, {"VOXTRAIN_WORK_DIR": str(work_dir / "trainer")}),
            ("identity", IdentitySettings, build_identity, {"VOXTRAIN_AUTH__PRIVATE_KEY": PRIVATE_KEY}),
        ):
            svc = build(settings_for(cls, stack, **shared, **extra))
            urls[name] = await stack_.enter_async_context(serving(svc.app, name))
        if webhooks:
            hooks = build_webhooks(
                settings_for(
                    WebhooksSettings,
                    stack,
                    **shared,
                    VOXTRAIN_ALLOW_INSECURE_URLS="true",
                    VOXTRAIN_FIRST_RETRY_SECONDS="0.3",
                    VOXTRAIN_MAX_RETRY_SECONDS="1",
                )
            )
            urls["webhooks"] = await stack_.enter_async_context(serving(hooks.app, "webhooks"))
            console = {"webhooks_url": urls["webhooks"], **console}
        settings = ConsoleSettings(
            auth=VERIFY_AUTH,
            kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap, topic_namespace=namespace),
            models_url=urls["models"],
            datasets_url=urls["datasets"],
            trainer_url=urls["trainer"],
            identity_url=urls["identity"],
            environment="test",
            **console,
        )
        app = build_console(settings)
        urls["console"] = await stack_.enter_async_context(serving(app.app, "console"))
        await app.feed.wait_ready(60)
        yield System(urls, app, namespace)
