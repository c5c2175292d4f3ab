"""Running the ``voxtrain`` command in-process against the test stack."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from voxtrain_shared.cli import app


class Cli:
    """``await cli("models", "--json")``: the command with the stack's settings, off the event loop
    (the command runs its own ``asyncio.run``)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    async def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return await asyncio.to_thread(CliRunner().invoke, app, list(args), env={**self.env, **(env or {})})

    async def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        result = await self(*args, "--json", env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def cli(stack) -> Cli:
    return Cli(
        {"VOXTRAIN_POSTGRES__DSN": stack.postgres_dsn, "VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_bootstrap}
    )
