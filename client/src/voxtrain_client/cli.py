"""``vt``: voxtrain from the command line.

Settings come from ``VT_URL`` and ``VT_API_KEY`` (or ``VT_TOKEN``), or a profile of the config file (see
:mod:`voxtrain_client.config`). Every command prints a table or a line for people, or JSON with ``--json`` for
scripts; a refusal prints voxtrain's error code and message and exits with 1, a training that fails exits 1 with
its reason.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from .api import ApiError, Client, Delivery, Model, Truncated, Webhook
from .config import ClientConfig, ConfigError
from .follow import Follower, Snapshot, snapshot_of
from .upload import Uploader, UploadRefused, expand, plan_for

app = typer.Typer(help="voxtrain: train custom speech-to-text models.", no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="Custom models.", no_args_is_help=True)
datasets_app = typer.Typer(help="A model's datasets.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Endpoints of your backend that receive signed status changes.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(datasets_app, name="datasets")
app.add_typer(webhooks_app, name="webhooks")

out = Console()
err = Console(stderr=True)
T = TypeVar("T")
JSON = typer.Option(False, "--json", help="print JSON for scripts")
PROFILE: dict[str, str | None] = {"name": None}


@app.callback()
def main(
    profile: str = typer.Option(None, "--profile", "-p", help="profile of the config file (default: VT_PROFILE)"),
) -> None:
    """voxtrain: train custom speech-to-text models."""
    PROFILE["name"] = profile


@contextmanager
def client() -> Iterator[Client]:
    try:
        config = ClientConfig.load(profile=PROFILE["name"])
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    with Client(config) as c:
        yield c


def call(fn: Callable[[], T]) -> T:
    """Run an API call; a refusal is printed as code + message, exit 1."""
    try:
        return fn()
    except ApiError as exc:
        err.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(1) from None
    except (UploadRefused, Truncated) as exc:
        err.print(f"[red]refused[/red]: {exc}")
        raise typer.Exit(1) from None


def emit(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def dump(model: Model) -> dict[str, Any]:
    return model.model_dump(mode="json")


def status_text(m: Model) -> str:
    return snapshot_of(m, "poll").text()


def fail_reason(m: Model) -> str:
    e = m.last_error or {}
    return f"{e.get('code', 'failed')}: {e.get('message', 'no reason was given')}"


def models_table(models: list[Model]) -> Table:
    t = Table("id", "name", "language", "status", "auto-train")
    for m in models:
        t.add_row(m.id, m.name, m.language, status_text(m), "yes" if m.auto_train else "no")
    return t


# ---------------------------------------------------------------- models


@models_app.command("create")
def models_create(
    name: str,
    language: str = "en-US",
    description: str = typer.Option(None),
    auto_train: bool = typer.Option(True, help="train as soon as datasets are uploaded"),
    as_json: bool = JSON,
) -> None:
    """Create a model (status 1 Not Running)."""
    with client() as c:
        m = call(lambda: c.create_model(name, language, description, auto_train))
    emit(dump(m)) if as_json else out.print(f"created model {m.id} ({m.name}): {status_text(m)}")


@models_app.command("list")
def models_list(status: int = typer.Option(None, min=1, max=5, help="only this status"), as_json: bool = JSON) -> None:
    """Your models."""
    with client() as c:
        ms = call(lambda: c.list_models(status))
    emit([dump(m) for m in ms]) if as_json else out.print(models_table(ms))


@models_app.command("show")
def models_show(model_id: str, as_json: bool = JSON) -> None:
    """One model: status, datasets, last error, metrics."""
    with client() as c:
        m = call(lambda: c.get_model(model_id))
    if as_json:
        emit(dump(m))
        return
    out.print(models_table([m]))
    if m.last_error:
        out.print(f"[red]{fail_reason(m)}[/red]")
    if m.cost:
        out.print(f"cost: {m.cost.get('estimate')} credits (balance {m.cost.get('balance')})")
    if metrics := (m.run or {}).get("metrics"):
        out.print_json(json.dumps(metrics.get("evaluation", metrics), default=str))


@models_app.command("update")
def models_update(
    model_id: str,
    name: str = typer.Option(None),
    description: str = typer.Option(None),
    auto_train: bool = typer.Option(None, "--auto-train/--no-auto-train"),
    as_json: bool = JSON,
) -> None:
    """Change a model's name, description or auto-train (not while it is queued or training)."""
    with client() as c:
        m = call(lambda: c.update_model(model_id, name=name, description=description, auto_train=auto_train))
    emit(dump(m)) if as_json else out.print(f"updated {m.id}: {m.name}, auto-train {'on' if m.auto_train else 'off'}")


@models_app.command("delete")
def models_delete(model_id: str) -> None:
    """Delete a model and its datasets."""
    with client() as c:
        call(lambda: c.delete_model(model_id))
    out.print(f"deleted {model_id}")


# ---------------------------------------------------------------- datasets


@datasets_app.command("list")
def datasets_list(model_id: str, as_json: bool = JSON) -> None:
    """A model's datasets with their validation status."""
    with client() as c:
        ds = call(lambda: c.list_datasets(model_id))
    if as_json:
        emit([d.model_dump(mode="json") for d in ds])
        return
    t = Table("id", "type", "file", "size", "status", "finding")
    for d in ds:
        finding = ((d.validation or {}).get("error") or {}).get("message", "")
        t.add_row(d.id, d.type, d.file_name, f"{d.size:,}", d.status, finding)
    out.print(t)


@datasets_app.command("upload")
def datasets_upload(
    model_id: str,
    paths: list[Path] = typer.Argument(..., help="files or folders"),
    dataset_type: str = typer.Option("auto", "--type", help="auto, TRANSCRIPT, TEST, AUDIO or MANIFEST"),
    parallel: int = typer.Option(4, min=1, max=32, help="parts sent at once"),
    as_json: bool = JSON,
) -> None:
    """Upload files (any size): resumable, parallel parts; run the same command again to resume."""
    with client() as c:
        model = call(lambda: c.get_model(model_id))
        files = call(lambda: expand(paths))
        plan = call(lambda: plan_for(model_id, files, dataset_type, model.auto_train))
        if len(plan.batches) > 1 and not as_json:
            err.print(
                f"{len(files)} files go as {len(plan.batches)} uploads (at most 10 files each); "
                f"train once they are all in: vt train {model_id}"
            )
        with _bars(files, quiet=as_json) as advance:
            uploader = Uploader(c, parallel=parallel, progress=advance)
            datasets = call(lambda: uploader.run(plan))
    if as_json:
        emit([d.model_dump(mode="json") for d in datasets])
    else:
        earlier = f" ({uploader.earlier} more were uploaded by the interrupted run)" if uploader.earlier else ""
        out.print(f"uploaded {len(datasets)} datasets to {model_id}{earlier}; validation runs now")


@contextmanager
def _bars(files: list[Path], quiet: bool) -> Iterator[Callable[[str, int, int], None]]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=quiet or not sys.stderr.isatty()) as bars:
        total = bars.add_task("all files", total=sum(f.stat().st_size for f in files))
        tasks: dict[str, Any] = {}
        lock = threading.Lock()

        def advance(name: str, done: int, size: int) -> None:
            with lock:
                if name not in tasks:
                    tasks[name] = bars.add_task(name, total=size)
                bars.advance(tasks[name], done)
                bars.advance(total, done)

        yield advance


# ---------------------------------------------------------------- training and use


@app.command()
def train(
    model_id: str,
    wait: bool = typer.Option(False, "--wait", help="follow the status live until it ends"),
    interval: float = typer.Option(2.0, help="seconds between status checks while the live stream is away"),
    as_json: bool = JSON,
) -> None:
    """Train a model. With --wait: a live status line (stage, percent, time left); exit 1 if it fails."""
    with client() as c:
        call(lambda: c.train(model_id))
        if not wait:
            out.print(f"training queued for {model_id}; follow it with: vt models show {model_id}")
            return
        m = _follow(c, model_id, interval, quiet=as_json)
    if as_json:
        emit(dump(m))
    if m.code == 5:
        err.print(f"[red]failed[/red] {fail_reason(m)}")
        raise typer.Exit(1)
    if not as_json:
        out.print(f"[green]{status_text(m)}[/green]: transcribe with `vt transcribe {model_id} FILE`")


def _follow(c: Client, model_id: str, interval: float, quiet: bool) -> Model:
    """A status line that changes in place on a terminal; elsewhere one line per status or stage."""
    live = err.is_terminal and not quiet
    printed: list[tuple[int, str | None]] = []

    with err.status("queued…", spinner="dots") if live else contextlib.nullcontext() as line:

        def report(snap: Snapshot) -> None:
            if line is not None:
                line.update(snap.text())
            elif not quiet and (snap.code, snap.stage) not in printed[-1:]:
                printed.append((snap.code, snap.stage))
                err.print(f"{snap.text()}  [dim]({snap.via})[/dim]", highlight=False)

        return call(Follower(c, model_id, report, interval=interval).run)


@app.command()
def cancel(model_id: str, as_json: bool = JSON) -> None:
    """Stop a model's validation or training (at 2 Ready To Run or 3 Running); credits are refunded."""
    with client() as c:
        m = call(lambda: c.cancel(model_id))
    emit(dump(m)) if as_json else out.print(f"cancelled {model_id}: {status_text(m)}")


@app.command()
def credits(
    limit: int = typer.Option(20, min=1, max=500, help="entries of the history to show"),
    before: int = typer.Option(None, help="show entries older than this entry id (the next page)"),
    as_json: bool = JSON,
) -> None:
    """Your credit balance and its history (grants, reservations, charges, refunds), newest first."""
    with client() as c:
        cr = call(lambda: c.credits(limit, before))
    if as_json:
        emit(cr.model_dump(mode="json"))
        return
    out.print(f"balance: [bold]{cr.balance:,}[/bold] credits  (held by trainings: {cr.held:,}, spent: {cr.spent:,})")
    t = Table("when", "kind", "amount", "balance after", "model", "by", "why")
    for e in cr.entries:
        when = f"{e.created_at:%Y-%m-%d %H:%M}" if e.created_at else ""
        after = f"{e.balance_after:,}" if e.balance_after is not None else ""
        t.add_row(when, e.kind, f"{e.amount:,}", after, e.model_id or "", e.actor or "", e.reason or "")
    out.print(t)
    if cr.next_before is not None:
        out.print(f"older entries: vt credits --before {cr.next_before}")


@app.command()
def export(
    model_id: str,
    output: Path = typer.Option(None, "--output", "-o", help="file (or folder) to write; default: the server's name"),
    as_json: bool = JSON,
) -> None:
    """Download a trained model (status 4) as a .tar.gz for stock PocketSphinx; checked to be complete."""
    with client() as c, _download_bar(quiet=as_json) as advance:
        path = call(lambda: c.export(model_id, output, advance))
    size = path.stat().st_size
    emit({"model_id": model_id, "path": str(path), "size": size}) if as_json else out.print(
        f"saved {path} ({size:,} bytes)"
    )


@contextmanager
def _download_bar(quiet: bool) -> Iterator[Callable[[int, int | None], None]]:
    columns = (TextColumn("export"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=quiet or not err.is_terminal) as bar:
        task = bar.add_task("export", total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, advance=done, total=total)

        yield advance


@app.command()
def transcribe(model_id: str, audio: Path, as_json: bool = JSON) -> None:
    """Transcribe an audio file with a trained model (or `base`)."""
    with client() as c:
        result = call(lambda: c.transcribe(model_id, audio))
    emit(result) if as_json else out.print(result.get("text", ""))


# ---------------------------------------------------------------- webhooks


def webhooks_table(hooks: list[Webhook]) -> Table:
    t = Table("id", "url", "events", "enabled", "secret", "description")
    for w in hooks:
        state = "yes" if w.enabled else f"no: {w.disabled_reason or ''}"
        t.add_row(w.id, w.url, ",".join(w.events), state, f"…{w.secret_hint}", w.description or "")
    return t


def deliveries_table(ds: list[Delivery]) -> Table:
    t = Table("id", "event", "model", "state", "attempts", "last status", "latency", "error")
    for d in ds:
        latency = f"{d.last_latency_ms} ms" if d.last_latency_ms is not None else ""
        t.add_row(
            d.id,
            d.event_type,
            d.model_id or "",
            d.state,
            str(d.attempts),
            str(d.last_status or ""),
            latency,
            d.last_error or "",
        )
    return t


def hook_json(w: Webhook) -> dict[str, Any]:
    """The endpoint for scripts; ``secret`` only where voxtrain showed it (create, rotate)."""
    return w.model_dump(mode="json", exclude={"secret"} if w.secret is None else None)


def show_secret(w: Webhook) -> None:
    out.print(f"signing secret (shown this once, keep it): [bold]{w.secret}[/bold]")
    out.print("verify deliveries with voxtrain_client.webhooks.verify(secret, header, body)")


@webhooks_app.command("create")
def webhooks_create(
    url: str,
    events: list[str] = typer.Option(["status"], "--event", help="status and/or progress (repeat the option)"),
    description: str = typer.Option(None),
    as_json: bool = JSON,
) -> None:
    """Register an endpoint; prints its signing secret once."""
    with client() as c:
        w = call(lambda: c.create_webhook(url, events, description))
    if as_json:
        emit(hook_json(w))
        return
    out.print(f"created webhook {w.id} → {w.url} ({', '.join(w.events)})")
    show_secret(w)


@webhooks_app.command("list")
def webhooks_list(as_json: bool = JSON) -> None:
    """Your endpoints (only the last 4 characters of each secret)."""
    with client() as c:
        hooks = call(c.list_webhooks)
    emit([hook_json(w) for w in hooks]) if as_json else out.print(webhooks_table(hooks))


@webhooks_app.command("delete")
def webhooks_delete(webhook_id: str, as_json: bool = JSON) -> None:
    """Remove an endpoint: nothing more is sent to it."""
    with client() as c:
        call(lambda: c.delete_webhook(webhook_id))
    emit({"id": webhook_id, "deleted": True}) if as_json else out.print(f"deleted webhook {webhook_id}")


@webhooks_app.command("rotate")
def webhooks_rotate(webhook_id: str, as_json: bool = JSON) -> None:
    """A new signing secret (printed once); the old one stops signing at once."""
    with client() as c:
        w = call(lambda: c.rotate_webhook_secret(webhook_id))
    if as_json:
        emit(hook_json(w))
        return
    show_secret(w)


@webhooks_app.command("ping")
def webhooks_ping(webhook_id: str, as_json: bool = JSON) -> None:
    """Send a signed test event now and show how the endpoint answered (exit 1 if it did not accept it)."""
    with client() as c:
        d = call(lambda: c.ping_webhook(webhook_id))
    if as_json:
        emit(d.model_dump(mode="json"))
    else:
        out.print(deliveries_table([d]))
    if d.state != "delivered":
        raise typer.Exit(1)


@webhooks_app.command("deliveries")
def webhooks_deliveries(webhook_id: str, limit: int = typer.Option(100, min=1, max=500), as_json: bool = JSON) -> None:
    """The delivery log of an endpoint, newest first: state, attempts, status codes, latencies."""
    with client() as c:
        ds = call(lambda: c.webhook_deliveries(webhook_id, limit))
    emit([d.model_dump(mode="json") for d in ds]) if as_json else out.print(deliveries_table(ds))


@webhooks_app.command("redeliver")
def webhooks_redeliver(webhook_id: str, delivery_id: str, as_json: bool = JSON) -> None:
    """Send a delivery again (queued behind the model's pending deliveries, in order)."""
    with client() as c:
        d = call(lambda: c.redeliver(webhook_id, delivery_id))
    emit(d.model_dump(mode="json")) if as_json else out.print(f"delivery {d.id} queued again ({d.state})")
