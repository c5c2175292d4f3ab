"""Rendering deploy/k8s for the tests with the real kustomize.

:func:`real_kustomize` finds one: ``$VOXTRAIN_KUSTOMIZE``, the cached build, ``kustomize`` on PATH,
``kubectl kustomize``, or else it builds one with ``go install`` from the Go module proxy into
``${XDG_CACHE_HOME:-~/.cache}/voxtrain/kustomize`` (once; Go is already needed for MinIO).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
#: The newest release that builds with the Go of these machines (v5.8 needs Go 1.27).
KUSTOMIZE_VERSION = "v5.7.1"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def render(folder: Path) -> list[dict[str, Any]]:
    """``kustomize build folder`` with the real kustomize (a test fails, never skips, without one)."""
    command, where = real_kustomize()
    if command is None:
        raise AssertionError(f"no kustomize to render deploy/k8s with: {where}")
    return render_with(command, folder)


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a workload (None for other kinds)."""
    if doc["kind"] in WORKLOADS:
        return doc["spec"]["template"]["spec"]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


# ---------------------------------------------------------------- the real kustomize


def _cache_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "voxtrain" / "kustomize" / KUSTOMIZE_VERSION


def real_kustomize() -> tuple[list[str] | None, str]:
    """A command that runs ``kustomize build`` (``[..., DIR]``), or None and why there is none."""
    if env := os.environ.get("VOXTRAIN_KUSTOMIZE"):
        return [env, "build"], env
    cached = _cache_dir() / "kustomize"
    if cached.is_file():
        return [str(cached), "build"], str(cached)
    if path := shutil.which("kustomize"):
        return [path, "build"], path
    if (kubectl := shutil.which("kubectl")) and subprocess.run(
        [kubectl, "kustomize", "--help"], capture_output=True, timeout=60
    ).returncode == 0:
        return [kubectl, "kustomize"], f"{kubectl} kustomize"
    go = shutil.which("go", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/go/bin"]))
    if go is None:
        return None, "no kustomize, kubectl or Go here to build one"
    folder = cached.parent
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cached.is_file():
            with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-") as tmp:
                done = subprocess.run(
                    [go, "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
                    env={**os.environ, "GOBIN": tmp, "CGO_ENABLED": "0"},
                    capture_output=True,
                    text=True,
                    timeout=540,
                )
                if done.returncode != 0:
                    return None, f"`go install {KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}` failed: {done.stderr[-2000:]}"
                os.replace(Path(tmp) / "kustomize", cached)
    return [str(cached), "build"], str(cached)


def render_with(command: list[str], folder: Path) -> list[dict[str, Any]]:
    done = subprocess.run([*command, str(folder)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} {folder} failed:\n{done.stderr}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]
