"""The ``voxtrain`` command: operations on a running system (the work itself is in :mod:`voxtrain_shared.ops`).

Settings come from the same environment variables as the services' (``VOXTRAIN_POSTGRES__DSN``,
``VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS``), so the command works inside any service's pod. Signing tokens
(``token``, ``api-keys``, the operator routes) needs the signing key ``VOXTRAIN_AUTH__PRIVATE_KEY``, which only
the identity service and operators hold. Output is a table for people, or JSON with ``--json``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import typer
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from . import ops
from .auth import ALL_SCOPES, generate_key_pair, issue_token, parse_scopes, public_key_of
from .settings import ENV_PREFIX, NESTED, AuthSettings, KafkaSettings, MinioSettings, PostgresSettings
from .topics import dead_letter

app = typer.Typer(help="voxtrain operations", no_args_is_help=True)
dlt_app = typer.Typer(help="Dead-letter topics: what consumers gave up on, and sending it back.", no_args_is_help=True)
app.add_typer(dlt_app, name="dlt")
credits_app = typer.Typer(
    help="Tenants' credits (through the models service, which owns the ledger).", no_args_is_help=True
)
app.add_typer(credits_app, name="credits")
keys_app = typer.Typer(
    help="Tenants' API keys (through the identity service; an operator makes a tenant's first key).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="api-keys")
storage_app = typer.Typer(
    help="Object storage: the bucket and each service's own user and policy.", no_args_is_help=True
)
app.add_typer(storage_app, name="storage")
T = TypeVar("T")

JSON_OPTION = typer.Option(False, "--json", help="print JSON instead of a table")
MODELS_URL_OPTION = typer.Option(
    "http://127.0.0.1:8101",
    "--models-url",
    envvar="VOXTRAIN_MODELS_URL",
    help="base URL of the models service (for --overdue, redrive and credits)",
)
IDENTITY_URL_OPTION = typer.Option(
    "http://127.0.0.1:8106",
    "--identity-url",
    envvar="VOXTRAIN_IDENTITY_URL",
    help="base URL of the identity service",
)
SCHEMAS_HELP = "comma-separated schemas of the services' outboxes"
NO_SIGNING_KEY = (
    "Set VOXTRAIN_AUTH__PRIVATE_KEY to the signing key (`voxtrain-stack env` shows the local one; "
    "in a cluster it is in the identity service's secret)."
)


class _SigningAuth(BaseModel):
    private_key: SecretStr
    public_key: str | None = None
    issuer: str = "voxtrain"
    audience: str = "voxtrain-api"
    token_ttl_seconds: int = 30 * 24 * 3600


class _CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="ignore")
    auth: _SigningAuth


def _signing() -> AuthSettings:
    """The operator's signing settings (the public key defaults to the private key's)."""
    try:
        a = _CliSettings().auth
        private = a.private_key.get_secret_value()
        return AuthSettings(
            public_key=a.public_key or public_key_of(private),
            private_key=a.private_key,
            issuer=a.issuer,
            audience=a.audience,
            token_ttl_seconds=a.token_ttl_seconds,
        )
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors() if e["type"] != "missing")
        raise _fail(f"{problems}. {NO_SIGNING_KEY}" if problems else NO_SIGNING_KEY) from None
    except ValueError as exc:
        raise _fail(f"{exc}. {NO_SIGNING_KEY}") from None


class _DbSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="ignore")
    postgres: PostgresSettings


class _KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="ignore")
    kafka: KafkaSettings = KafkaSettings()


class _StorageUser(BaseModel):
    access_key: str
    secret_key: SecretStr


class _StorageSettings(BaseSettings):
    """An administrator's MinIO credential (``VOXTRAIN_MINIO__*``) and the services' own key pairs
    (``VOXTRAIN_STORAGE_USERS__<SERVICE>__ACCESS_KEY`` / ``__SECRET_KEY``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="ignore")
    minio: MinioSettings
    storage_users: dict[str, _StorageUser] = {}


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _db() -> PostgresSettings:
    try:
        db = _DbSettings().postgres
        if not db.dsn.get_secret_value():
            raise ValueError("empty")
        return db
    except (ValidationError, ValueError):
        raise _fail(
            "Set VOXTRAIN_POSTGRES__DSN to the services' database "
            "(postgresql://user:password@host:port/db; `voxtrain-stack env` shows the local one)."
        ) from None


def _kafka() -> KafkaSettings:
    try:
        return _KafkaSettings().kafka
    except ValidationError as exc:
        raise _fail(f"invalid Kafka settings: {exc}") from None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    from aiokafka.errors import KafkaError

    try:
        return asyncio.run(coro)
    except ops.OpsError as exc:
        raise _fail(str(exc)) from None
    except (TimeoutError, OSError) as exc:
        raise _fail(f"cannot reach the server: {exc!r}") from None
    except asyncpg.PostgresError as exc:
        raise _fail(f"PostgreSQL: {exc}") from None
    except KafkaError as exc:
        raise _fail(f"Kafka: {exc!r}") from None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _print(rows: list[dict[str, Any]], columns: Sequence[str], as_json: bool, empty: str) -> None:
    """A table of ``columns`` (or every field as JSON)."""
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=2, ensure_ascii=False))
        return
    if not rows:
        typer.echo(empty)
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _schemas(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


SCOPES_HELP = "comma-separated: read, write, train"


def _scopes(value: str) -> list[str]:
    try:
        return sorted(parse_scopes(value))
    except ValueError as exc:
        raise _fail(str(exc)) from None


@app.command()
def token(
    tenant: str,
    ttl_seconds: int = typer.Option(None, help="lifetime; default from settings"),
    scopes: str = typer.Option(",".join(sorted(ALL_SCOPES)), help=SCOPES_HELP),
) -> None:
    """Print a bearer token for TENANT, signed with VOXTRAIN_AUTH__PRIVATE_KEY (operators and service-to-service
    calls; tenants use API keys)."""
    settings = _signing()
    try:
        typer.echo(issue_token(settings, tenant, ttl_seconds, scopes=parse_scopes(scopes)))
    except ValueError as exc:
        raise _fail(str(exc)) from None


@app.command()
def keypair() -> None:
    """Print a new Ed25519 signing key pair as environment lines (VOXTRAIN_AUTH__PRIVATE_KEY goes to the identity
    service and operators only; VOXTRAIN_AUTH__PUBLIC_KEY to every service)."""
    private, public = generate_key_pair()
    typer.echo(f"VOXTRAIN_AUTH__PRIVATE_KEY={private}\nVOXTRAIN_AUTH__PUBLIC_KEY={public}")


def _tenant_token(tenant: str) -> str:
    """A short-lived token for TENANT with every scope, signed by the operator (subject ``operator``)."""
    try:
        return issue_token(_signing(), tenant, 300, subject="operator")
    except ValueError as exc:
        raise _fail(str(exc)) from None


@keys_app.command("create")
def api_keys_create(
    tenant: str,
    label: str = typer.Option("created by an operator", help="what the key is for"),
    scopes: str = typer.Option(",".join(sorted(ALL_SCOPES)), help=SCOPES_HELP),
    expires_in_days: int = typer.Option(None, min=1, help="default: never expires"),
    identity_url: str = IDENTITY_URL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create an API key for TENANT (e.g. its first one) and print it: it is shown this once."""
    row = _ops_call(ops.create_api_key, identity_url, _tenant_token(tenant), label, _scopes(scopes), expires_in_days)
    if as_json:
        _print([row], ops.API_KEY_COLUMNS, True, "")
        return
    typer.echo(row["key"])
    typer.echo(
        f"API key {row['id']} for {tenant} ({row['scopes']}): shown this once, store it safely. "
        "Exchange it at POST /v1/auth/token, or set VT_API_KEY for the vt CLI.",
        err=True,
    )


@keys_app.command("list")
def api_keys_list(tenant: str, identity_url: str = IDENTITY_URL_OPTION, as_json: bool = JSON_OPTION) -> None:
    """TENANT's API keys (never their secrets)."""
    rows = _ops_call(ops.list_api_keys, identity_url, _tenant_token(tenant))
    _print(rows, ops.API_KEY_COLUMNS, as_json, f"{tenant} has no API keys")


@keys_app.command("revoke")
def api_keys_revoke(tenant: str, key_id: UUID, identity_url: str = IDENTITY_URL_OPTION) -> None:
    """Revoke one of TENANT's API keys (tokens already exchanged for it end within a minute)."""
    _ops_call(ops.revoke_api_key, identity_url, _tenant_token(tenant), key_id)
    typer.echo(f"revoked {key_id}")


@app.command()
def migrate(
    service: str = typer.Argument(..., help=f"one of {', '.join(ops.SERVICES)}"),
    schema: str = typer.Option(None, help="default: VOXTRAIN_POSTGRES__SCHEMA, else the service name"),
) -> None:
    """Apply SERVICE's database migrations and exit (the Kubernetes migration Jobs run this)."""
    db = _db()
    target = schema or db.schema_name or service
    applied = _run(ops.migrate_service(db.dsn.get_secret_value(), service, target))
    typer.echo(
        f"{service}: schema {target} is up to date"
        + (f"; applied {', '.join(applied)}" if applied else " (nothing to apply)")
    )


def _operator_token() -> str:
    return issue_token(_signing(), "operator", 300, operator=True)


def _ops_call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ops.OpsError as exc:
        raise _fail(str(exc)) from None


@app.command()
def models(
    status: int = typer.Option(None, min=1, max=5, help="1 Not Running … 5 Failed; default: all"),
    tenant: str = typer.Option(None, help="only this tenant's models"),
    schema: str = typer.Option("models", help="the models service's schema"),
    limit: int = typer.Option(100, min=1),
    overdue: bool = typer.Option(
        False, "--overdue", help="only models at 2/3 whose supervision deadline passed (asks the models service)"
    ),
    models_url: str = MODELS_URL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Models by status, every tenant (read-only, through the models service's repository); with --overdue, the models
    waiting at 2/3 past their deadline, from the models service (needs VOXTRAIN_AUTH__PRIVATE_KEY)."""
    if overdue:
        rows = _ops_call(ops.overdue_models, models_url, _operator_token(), limit)
        _print(rows, ops.OVERDUE_COLUMNS, as_json, "no overdue models")
        return
    rows = _run(ops.list_models(_db().dsn.get_secret_value(), schema, status=status, tenant=tenant, limit=limit))
    _print(
        rows, ("id", "tenant", "name", "status", "status_name", "run_id", "error", "updated_at"), as_json, "no models"
    )


@app.command()
def redrive(
    model_id: UUID = typer.Argument(..., help="the model's id"),
    models_url: str = MODELS_URL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Ask again now for MODEL_ID's validation (at 2) or training (at 3), through the models service."""
    row = _ops_call(ops.redrive_model, models_url, _operator_token(), model_id)
    _print([row], ops.OVERDUE_COLUMNS, as_json, "")


@app.command()
def runs(
    status: str = typer.Option(None, help=f"one of {', '.join(ops.RUN_STATUSES)}; default: all"),
    schema: str = typer.Option("trainer", help="the trainer service's schema"),
    limit: int = typer.Option(100, min=1),
    as_json: bool = JSON_OPTION,
) -> None:
    """Training runs by status (read-only, through the trainer service's repository)."""
    rows = _run(ops.list_runs(_db().dsn.get_secret_value(), schema, status=status, limit=limit))
    _print(
        rows,
        (
            "run_id",
            "tenant",
            "model_id",
            "status",
            "attempt",
            "stage",
            "percent",
            "eta_seconds",
            "error",
            "owner",
            "started_at",
            "finished_at",
        ),
        as_json,
        "no runs",
    )


@app.command()
def history(
    model_id: UUID = typer.Argument(..., help="the model's id"),
    kafka: bool = typer.Option(
        False, "--kafka", help="scan the topics (and dead-letter topics) instead of the outboxes"
    ),
    schemas: str = typer.Option(",".join(ops.SERVICES), help=SCHEMAS_HELP),
    as_json: bool = JSON_OPTION,
) -> None:
    """A model's events in time order.

    By default from the services' outbox tables: every event voxtrain published about the model, kept
    after relaying, with whether it has been sent yet. With --kafka, from the topics keyed by the model:
    also commands other services sent and dead letters, as far back as Kafka retains them.
    """
    if kafka:
        k = _kafka()
        rows = _run(ops.history_from_kafka(k, model_id, k.topics.all()))
    else:
        rows = _run(ops.history_from_outbox(_db().dsn.get_secret_value(), model_id, _schemas(schemas)))
    _print(
        rows,
        ("occurred_at", "source", "type", "sent", "correlation_id", "summary"),
        as_json,
        f"no events for model {model_id}",
    )


@app.command()
def outbox(schemas: str = typer.Option(",".join(ops.SERVICES), help=SCHEMAS_HELP), as_json: bool = JSON_OPTION) -> None:
    """Events waiting in each service's outbox, the oldest one's age, and events parked as unpublishable."""
    rows = _run(ops.outbox_status(_db().dsn.get_secret_value(), _schemas(schemas)))
    _print(
        rows,
        ("schema", "present", "unsent", "oldest_age_seconds", "last_sent_at", "parked", "last_park_reason"),
        as_json,
        "no schemas",
    )


@dlt_app.command("list")
def dlt_list(
    topic: str = typer.Argument(..., help="the topic (its dead letters are in TOPIC.dlt)"), as_json: bool = JSON_OPTION
) -> None:
    """The messages in TOPIC.dlt, why they are there, and whether a replay already sent them back."""
    rows = _run(ops.dlt_list(_kafka(), topic))
    _print(
        rows,
        ("partition", "offset", "key", "type", "group", "attempts", "replayed", "reason"),
        as_json,
        f"{dead_letter(topic.removesuffix('.dlt'))} is empty",
    )


@dlt_app.command("replay")
def dlt_replay(
    topic: str = typer.Argument(..., help="the topic (its dead letters are in TOPIC.dlt)"),
    limit: int = typer.Option(None, min=1, help="replay at most this many"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would be replayed; send nothing"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Send the messages of TOPIC.dlt not replayed yet back to the topic they came from."""
    rows = _run(ops.dlt_replay(_kafka(), topic, limit=limit, dry_run=dry_run))
    _print(rows, ("partition", "offset", "key", "type", "target", "action"), as_json, "nothing to replay")


def _print_account(account: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(account, default=str, indent=2, ensure_ascii=False))
        return
    typer.echo(
        f"tenant {account['tenant_id']}: balance {account['balance']} credits "
        f"(held by trainings: {account['held']}, spent: {account['spent']})"
    )
    _print(account["entries"], ops.CREDIT_COLUMNS, False, "no ledger entries")


def _operator_name() -> str:
    import getpass

    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in this container
        return "operator"


@credits_app.command("show")
def credits_show(
    tenant: str = typer.Argument(..., help="the tenant id"),
    limit: int = typer.Option(50, min=1, max=500, help="latest entries to list"),
    models_url: str = MODELS_URL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """TENANT's balance and its latest ledger entries, newest first."""
    _print_account(_ops_call(ops.show_credits, models_url, _operator_token(), tenant, limit), as_json)


CREDITS_KEY_OPTION = typer.Option(
    None,
    "--key",
    help="idempotency key (letters, digits, . _ : -): running the command again with the same key posts nothing more",
)


@credits_app.command("grant")
def credits_grant(
    tenant: str = typer.Argument(..., help="the tenant id"),
    amount: int = typer.Argument(..., min=1, help="credits to add"),
    reason: str = typer.Option(..., "--reason", help="why (kept in the ledger, shown to the tenant)"),
    key: str | None = CREDITS_KEY_OPTION,
    models_url: str = MODELS_URL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add AMOUNT credits to TENANT's balance (a grant entry naming you and the reason)."""
    account = _ops_call(
        ops.post_credits, models_url, _operator_token(), tenant, "grant", amount, reason, _operator_name(), key
    )
    _print_account(account, as_json)


@credits_app.command("expire")
def credits_expire(
    tenant: str = typer.Argument(..., help="the tenant id"),
    amount: int = typer.Argument(..., min=1, help="credits to remove from the balance"),
    reason: str = typer.Option(..., "--reason", help="why (kept in the ledger, shown to the tenant)"),
    key: str | None = CREDITS_KEY_OPTION,
    models_url: str = MODELS_URL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Remove AMOUNT credits from TENANT's available balance (refused beyond it; held credits are untouched)."""
    account = _ops_call(
        ops.post_credits, models_url, _operator_token(), tenant, "expire", amount, reason, _operator_name(), key
    )
    _print_account(account, as_json)


@storage_app.command("provision")
def storage_provision() -> None:
    """Create the bucket and, per storage service, its policy and its user (idempotent; new secrets rotate).

    Runs with an administrator's credential in VOXTRAIN_MINIO__ACCESS_KEY/SECRET_KEY; each service's key pair in
    VOXTRAIN_STORAGE_USERS__<SERVICE>__ACCESS_KEY/SECRET_KEY (services: datasets, validator, trainer)."""
    from minio.error import MinioException

    from .storage_access import Credential, provision

    try:
        conf = _StorageSettings()
    except ValidationError as exc:
        raise _fail(f"invalid storage settings: {exc}") from None
    users = {name.lower(): u for name, u in conf.storage_users.items()}
    if not users:
        raise _fail("no service key pairs: set VOXTRAIN_STORAGE_USERS__<SERVICE>__ACCESS_KEY and __SECRET_KEY")
    try:
        provision(conf.minio, {n: Credential(u.access_key, u.secret_key.get_secret_value()) for n, u in users.items()})
    except (ValueError, MinioException, OSError) as exc:
        raise _fail(f"storage: {exc}") from None
    typer.echo(f"bucket {conf.minio.bucket}: users of {', '.join(sorted(users))} provisioned")


@storage_app.command("revoke")
def storage_revoke(access_keys: list[str]) -> None:
    """Remove service users by access key (the old key, once a rotated one is deployed everywhere)."""
    from minio.error import MinioException

    from .storage_access import revoke

    try:
        revoke(_StorageSettings().minio, access_keys)
    except (ValidationError, MinioException, OSError) as exc:
        raise _fail(f"storage: {exc}") from None
    typer.echo(f"removed {len(access_keys)} user(s)")


@app.callback()
def _main() -> None:
    """voxtrain operations."""
