"""The voxtrain services and the web console as local background processes (for ``make run``).

Contract with each service: the console script ``voxtrain-<name>`` serves HTTP on
``VOXTRAIN_HTTP__HOST``:``VOXTRAIN_HTTP__PORT`` and answers ``GET /health/live`` with 200 once it runs.
The console also gets the base URLs of the three APIs it serves the pages over.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from . import procs
from .config import Ports, Secrets, StateDir
from .procs import StackError

SERVICES = ("models", "datasets", "validator", "trainer", "webhooks", "identity", "console")
#: The APIs behind the console's same-origin ``/api/...`` (its settings' ``<name>_url``).
CONSOLE_UPSTREAMS = ("models", "datasets", "trainer", "webhooks", "identity")
_MINIO_KEYS = ("VOXTRAIN_MINIO__ACCESS_KEY", "VOXTRAIN_MINIO__SECRET_KEY")


def _marker(name: str) -> str:
    return f"voxtrain-{name}"


def running_pid(state: StateDir, name: str) -> int | None:
    return procs.running_pid(state, name, _marker(name))


def script(name: str) -> str:
    """The path of ``voxtrain-<name>``: beside this Python (the workspace venv), else on PATH."""
    beside = Path(sys.executable).parent / f"voxtrain-{name}"
    found = str(beside) if beside.is_file() else shutil.which(f"voxtrain-{name}")
    if found is None:
        raise StackError(f"voxtrain-{name} is not installed: run `uv sync --all-packages` in the repository.")
    return found


def service_env(name: str, endpoints_env: Mapping[str, str], ports: Ports, secrets: Secrets) -> dict[str, str]:
    """The environment of one service: the servers' endpoints, its port, the development public key that
    verifies tokens (the signing key only for identity, the issuer; for the console, where the APIs are).
    A storage service gets its own MinIO key pair (its policy allows only what it does); the others get none.
    ``endpoints_env`` carries MinIO's root keys: they are not passed on."""
    storage = {k: v for k, v in endpoints_env.items() if k not in _MINIO_KEYS}
    own = secrets.storage_users.get(name)
    if own is not None:
        storage |= {"VOXTRAIN_MINIO__ACCESS_KEY": own["access_key"], "VOXTRAIN_MINIO__SECRET_KEY": own["secret_key"]}
    env = {
        **storage,
        "VOXTRAIN_ENVIRONMENT": "local",
        "VOXTRAIN_AUTH__PUBLIC_KEY": secrets.signing_public_key,
        "VOXTRAIN_HTTP__HOST": "127.0.0.1",
        "VOXTRAIN_HTTP__PORT": str(getattr(ports, name)),
    }
    if name == "identity":
        env["VOXTRAIN_AUTH__PRIVATE_KEY"] = secrets.signing_private_key
    if name == "webhooks":
        env["VOXTRAIN_ALLOW_INSECURE_URLS"] = "true"  # local receivers on http://127.0.0.1 (never in production)
    if name == "console":
        env.update(
            {f"VOXTRAIN_{api.upper()}_URL": f"http://127.0.0.1:{getattr(ports, api)}" for api in CONSOLE_UPSTREAMS}
        )
    return env


def live(port: int) -> bool:
    """True when ``GET /health/live`` on 127.0.0.1:``port`` answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_services(
    state: StateDir, endpoints_env: Mapping[str, str], ports: Ports, secrets: Secrets, timeout: float
) -> dict[str, str]:
    """(Re)start every service and wait for its ``/health/live``; return ``{name: base URL}``.

    Services already running for this state dir are restarted (so ``make run`` picks up code changes).
    On a failure the services started here are stopped again and :class:`StackError` carries the log tail.
    """
    stop_services(state)
    pids: dict[str, int] = {}
    try:
        for name in SERVICES:
            port = getattr(ports, name)
            if procs.port_open(port):
                raise StackError(
                    f"{name}: port {port} on 127.0.0.1 is taken by another process. Stop it, or choose "
                    f"another port: VOXTRAIN_STACK_{name.upper()}_PORT or VOXTRAIN_STACK_PORT_OFFSET."
                )
            env = {**os.environ, **service_env(name, endpoints_env, ports, secrets)}
            pids[name] = procs.spawn(state, name, [script(name)], env=env, cwd=state.path)
        for name, pid in pids.items():
            port = getattr(ports, name)
            procs.wait_until(
                functools.partial(live, port),
                what=f"voxtrain-{name} (pid {pid}, GET http://127.0.0.1:{port}/health/live)",
                timeout=timeout,
                pid=pid,
                log=state.log(name),
            )
    except BaseException:
        stop_services(state)
        raise
    return {name: f"http://127.0.0.1:{getattr(ports, name)}" for name in SERVICES}


def stop_services(state: StateDir, timeout: float = 15.0) -> None:
    """Stop the services of this state dir (SIGTERM, then SIGKILL after ``timeout``)."""
    for name in SERVICES:
        pid = running_pid(state, name)
        if pid is not None:
            procs.terminate(pid, timeout=timeout)
        state.pid_file(name).unlink(missing_ok=True)
