"""The generated contracts as files under docs/: write them, or tell where they drifted from the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .asyncapi import asyncapi, openapi
from .services import built_services


def contract_documents() -> dict[str, dict[str, Any]]:
    """``{relative path under docs/: document}`` for every generated contract."""
    with built_services() as built:
        docs = {"asyncapi.json": asyncapi(built)}
        for b in built:
            docs[f"openapi/{b.name}.json"] = openapi(b.service)
    return docs


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_docs(out: Path) -> list[Path]:
    """Write every generated contract under ``out``; returns the files written."""
    written = []
    for rel, doc in contract_documents().items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump(doc))
        written.append(path)
    return written


def docs_drift(out: Path) -> list[str]:
    """The contracts under ``out`` that differ from what the code generates now (empty: up to date)."""
    drift = []
    for rel, doc in contract_documents().items():
        path = out / rel
        if not path.is_file():
            drift.append(f"{path}: missing")
        elif json.loads(path.read_text()) != json.loads(_dump(doc)):
            drift.append(f"{path}: differs from the code")
    return drift
