"""``vt``: voxtrain from the command line.

Settings come from ``VT_URL`` and ``VT_TOKEN`` (or ``$XDG_CONFIG_HOME/vt/config.toml``). Every command
prints a table or a line for people, or JSON with ``--json`` for scripts; a refusal prints voxtrain's error
code and message and exits with 1.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from .api import ApiError, Client, Model
from .config import ClientConfig, ConfigError
from .upload import Uploader, UploadRefused, expand, plan_for

app = typer.Typer(help="voxtrain: train custom speech-to-text models.", no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="Custom models.", no_args_is_help=True)
datasets_app = typer.Typer(help="A model's datasets.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(datasets_app, name="datasets")

out = Console()
err = Console(stderr=True)
T = TypeVar("T")
JSON = typer.Option(False, "--json", help="print JSON for scripts")
FINAL = {4, 5}


@contextmanager
def client() -> Iterator[Client]:
    try:
        config = ClientConfig.load()
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
    except UploadRefused as exc:
        err.print(f"[red]refused[/red]: {exc}")
        raise typer.Exit(1) from None


def emit(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def dump(model: Model) -> dict[str, Any]:
    return model.model_dump(mode="json")


def status_text(m: Model) -> str:
    s = m.status
    progress = (m.model_extra or {}).get("run", {}).get("progress") or {}
    text = f"{s['code']} {s['label']}"
    if s["code"] == 3 and progress:
        text += f" — {progress.get('stage', '')} {progress.get('percent', 0):.0f}%"
        if (eta := progress.get("eta_seconds")) is not None:
            text += f", about {int(eta) // 60}m{int(eta) % 60:02d}s left"
    return text


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
    extra = m.model_extra or {}
    if err_info := extra.get("last_error"):
        out.print(f"[red]{err_info.get('code')}[/red]: {err_info.get('message')}")
    if metrics := (extra.get("run") or {}).get("metrics"):
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
    wait: bool = typer.Option(False, "--wait", help="follow the status until it ends"),
    interval: float = typer.Option(2.0, help="seconds between status checks with --wait"),
    as_json: bool = JSON,
) -> None:
    """Train a model. With --wait: a live status line; exit 1 if it fails."""
    with client() as c:
        call(lambda: c.train(model_id))
        if not wait:
            out.print(f"training queued for {model_id}; follow it with: vt models show {model_id}")
            return
        m = _follow(c, model_id, interval, quiet=as_json)
    if as_json:
        emit(dump(m))
    if m.status["code"] == 5:
        e = (m.model_extra or {}).get("last_error") or {}
        err.print(f"[red]failed[/red] {e.get('code', '')}: {e.get('message', '')}")
        raise typer.Exit(1)
    if not as_json:
        out.print(f"[green]{status_text(m)}[/green]: transcribe with `vt transcribe {model_id} FILE`")


def _follow(c: Client, model_id: str, interval: float, quiet: bool) -> Model:
    with err.status("queued…", spinner="dots") as line:
        while True:
            m = call(lambda: c.get_model(model_id))
            if not quiet:
                line.update(status_text(m))
            if m.status["code"] in FINAL:
                return m
            time.sleep(interval)


@app.command()
def transcribe(model_id: str, audio: Path, as_json: bool = JSON) -> None:
    """Transcribe an audio file with a trained model (or `base`)."""
    with client() as c:
        result = call(lambda: c.transcribe(model_id, audio))
    emit(result) if as_json else out.print(result.get("text", ""))
