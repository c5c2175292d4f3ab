"""The ``voxtrain`` command: operations on a running system."""

from __future__ import annotations

import typer
from pydantic_settings import BaseSettings, SettingsConfigDict

from .auth import issue_token
from .settings import ENV_PREFIX, NESTED, AuthSettings

app = typer.Typer(help="voxtrain operations", no_args_is_help=True)


class _CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="ignore")
    auth: AuthSettings


@app.command()
def token(tenant: str, ttl_seconds: int = typer.Option(None, help="lifetime; default from settings")) -> None:
    """Print a bearer token for TENANT (needs VOXTRAIN_AUTH__JWT_SECRET)."""
    try:
        settings = _CliSettings()
    except Exception:
        typer.echo("Set VOXTRAIN_AUTH__JWT_SECRET to the services' JWT secret "
                   "(`make run` prints it; `voxtrain-stack env` shows the local one).", err=True)
        raise typer.Exit(2) from None
    try:
        typer.echo(issue_token(settings.auth, tenant, ttl_seconds))
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.callback()
def _main() -> None:
    """voxtrain operations."""
