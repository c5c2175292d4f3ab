"""``voxtrain-contracts``: write docs/asyncapi.json and docs/openapi/<service>.json, or check them."""

from __future__ import annotations

from pathlib import Path

import typer

from .files import docs_drift, write_docs
from .services import ContractsError

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    out: Path = typer.Option(Path("docs"), help="folder of the generated contracts"),
    check: bool = typer.Option(False, "--check", help="only report drift (exit 1), write nothing"),
) -> None:
    """Generate the contracts from the code (or, with --check, report where the files differ)."""
    try:
        if check:
            drift = docs_drift(out)
            for line in drift:
                typer.echo(line, err=True)
            if drift:
                typer.echo("run `make docs` and commit the result", err=True)
                raise typer.Exit(1)
            typer.echo("contracts are up to date")
            return
        for path in write_docs(out):
            typer.echo(f"wrote {path}")
    except ContractsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
