"""`pip install ./client` works on its own: the package imports only the standard library, itself and the
dependencies its pyproject declares (nothing of the workspace)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

CLIENT = Path(__file__).parents[2] / "client"
#: distribution name -> the module it installs, where they differ
MODULE_OF = {"httpx-sse": "httpx_sse", "google-crc32c": "google_crc32c"}


def test_the_client_imports_only_the_stdlib_itself_and_its_declared_dependencies() -> None:
    declared = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[ ]", d, maxsplit=1)[0] for d in declared}
    allowed = {MODULE_OF.get(n, n) for n in names} | set(sys.stdlib_module_names) | {"voxtrain_client", "__future__"}
    found: dict[str, str] = {}
    for source in (CLIENT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                found.update({a.name.split(".")[0]: source.name for a in node.names})
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found[node.module.split(".")[0]] = source.name
    assert {"httpx", "httpx_sse", "typer", "pydantic"} <= set(found), "the walk sees the imports"
    assert {m: f for m, f in found.items() if m not in allowed} == {}
