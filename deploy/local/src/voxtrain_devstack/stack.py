"""The stack as a whole: bring it up (idempotently), describe it, stop it."""

from __future__ import annotations

import dataclasses
import os

from . import services
from .config import Ports, Secrets, StateDir
from .install import install, say
from .procs import StackError
from .servers import DATABASE, PG_SUPERUSER, Server, all_servers

#: Ports that belong to the servers; the services' ports may change between runs without a restart.
_SERVER_PORTS = ("kafka", "kafka_controller", "postgres", "minio", "minio_console")


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """How to reach the servers. The same shape whatever runs them (local processes, containers, CI)."""

    kafka_bootstrap: str  #: ``host:port``
    postgres_dsn: str  #: ``postgresql://user:password@host:port/voxtrain``
    minio_endpoint: str  #: ``host:port`` (plain HTTP)
    minio_access_key: str
    minio_secret_key: str

    def as_env(self) -> dict[str, str]:
        """The services' settings (``VOXTRAIN_*``) that point them at these servers."""
        return {
            "VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "VOXTRAIN_POSTGRES__DSN": self.postgres_dsn,
            "VOXTRAIN_MINIO__ENDPOINT": self.minio_endpoint,
            "VOXTRAIN_MINIO__ACCESS_KEY": self.minio_access_key,
            "VOXTRAIN_MINIO__SECRET_KEY": self.minio_secret_key,
            "VOXTRAIN_MINIO__SECURE": "false",
        }


def endpoints_for(ports: Ports, secrets: Secrets) -> Endpoints:
    return Endpoints(
        kafka_bootstrap=f"127.0.0.1:{ports.kafka}",
        postgres_dsn=f"postgresql://{PG_SUPERUSER}:{secrets.postgres_password}@127.0.0.1:{ports.postgres}/{DATABASE}",
        minio_endpoint=f"127.0.0.1:{ports.minio}",
        minio_access_key=secrets.minio_access_key,
        minio_secret_key=secrets.minio_secret_key,
    )


def _server_ports(ports: Ports) -> tuple[int, ...]:
    return tuple(getattr(ports, name) for name in _SERVER_PORTS)


def _check_port_change(state: StateDir, wanted: Ports, secrets: Secrets) -> None:
    saved = state.saved_ports()
    if saved is None or _server_ports(saved) == _server_ports(wanted):
        return
    running = [s.name for s in all_servers(state, saved, secrets, None) if s.running_pid() is not None]
    if running:
        raise StackError(
            f"The stack in {state.path} already runs ({', '.join(running)}) on other ports: {saved}.\n"
            "Stop it first (voxtrain-stack down), or use another state dir (VOXTRAIN_STACK_DIR) for the new ports."
        )


def ensure_up(
    state_dir: str | os.PathLike[str] | None = None,
    ports: Ports | None = None,
    *,
    timeout: float = 120.0,
) -> Endpoints:
    """Make sure Kafka, PostgreSQL and MinIO of this state dir run and answer; return their endpoints.

    Idempotent: servers already running for this state dir (pid file + command line + readiness probe)
    are reused; missing ones are installed (cached) and started. ``ports``: see :meth:`StateDir.ports`.
    Raises :class:`StackError` (with the server's log tail) when a server does not become ready in
    ``timeout`` seconds, a port is taken by someone else, or an install step is missing.
    """
    state = StateDir(state_dir)
    with state.lock():
        wanted = state.ports(ports)
        secrets = state.secrets()
        _check_port_change(state, wanted, secrets)
        servers = all_servers(state, wanted, secrets, install())
        started = {}
        for server in servers:
            fresh = server.running_pid() is None
            started[server] = server.start()
            if fresh:
                say(f"starting {server.name} on 127.0.0.1:{server.own_ports()[0]} (log: {server.log})")
        for server, pid in started.items():
            server.wait_ready(pid, timeout)
        state.save_ports(wanted)
    return endpoints_for(wanted, secrets)


def server(name: str, state_dir: str | os.PathLike[str], ports: Ports) -> tuple[Server, Endpoints]:
    """One server (``postgres``, ``minio`` or ``kafka``) of the stack in ``state_dir``, to start, stop or kill on
    its own — e.g. an outage test's private server, on ports of its own — and the stack's endpoints."""
    state = StateDir(state_dir)
    with state.lock():
        secrets = state.secrets()
        _check_port_change(state, ports, secrets)
        state.save_ports(ports)
        by_name = {s.name: s for s in all_servers(state, ports, secrets, install())}
    if name not in by_name:
        raise StackError(f"no server {name!r}; there are {', '.join(by_name)}")
    return by_name[name], endpoints_for(ports, secrets)


def stop(state_dir: str | os.PathLike[str] | None = None) -> None:
    """Stop the services and the servers of this state dir (data is kept). A no-op when nothing runs."""
    state = StateDir(state_dir)
    with state.lock():
        services.stop_services(state)
        ports = state.ports()
        for server in reversed(all_servers(state, ports, state.secrets(), None)):
            if server.running_pid() is not None:
                say(f"stopping {server.name}")
            server.stop()


@dataclasses.dataclass(frozen=True)
class ProcessStatus:
    """One process of the stack: its name, pid (None when not running) and the port it serves on."""

    name: str
    pid: int | None
    port: int


def status(state_dir: str | os.PathLike[str] | None = None) -> list[ProcessStatus]:
    """Which servers and services of this state dir run, without starting anything."""
    state = StateDir(state_dir)
    ports = state.ports()
    result = [
        ProcessStatus(s.name, s.running_pid(), s.own_ports()[0])
        for s in all_servers(state, ports, state.secrets(), None)
    ]
    result += [
        ProcessStatus(name, services.running_pid(state, name), getattr(ports, name)) for name in services.SERVICES
    ]
    return result


def run_services(
    state_dir: str | os.PathLike[str] | None = None,
    ports: Ports | None = None,
    *,
    timeout: float = 90.0,
) -> dict[str, str]:
    """Bring the servers up, then (re)start the four services and the console; return ``{name: base URL}``.

    Each service gets :meth:`Endpoints.as_env`, ``VOXTRAIN_ENVIRONMENT=local``, its port and the stack's
    generated development token keys (see :func:`dev_env`).
    """
    endpoints = ensure_up(state_dir, ports)
    state = StateDir(state_dir)
    with state.lock():
        return services.start_services(state, endpoints.as_env(), state.ports(ports), state.secrets(), timeout)


def dev_env(state_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The environment a developer's (operator's) shell needs to talk to this stack (servers + the dev signing key).

    With it, ``voxtrain token TENANT`` and ``voxtrain api-keys create TENANT`` sign tokens the local services accept.
    """
    endpoints = ensure_up(state_dir)
    ports = StateDir(state_dir).ports()
    return {
        **endpoints.as_env(),
        "VOXTRAIN_ENVIRONMENT": "local",
        # where the operator commands find the services (``voxtrain credits``, ``voxtrain api-keys``, ...)
        "VOXTRAIN_MODELS_URL": f"http://127.0.0.1:{ports.models}",
        "VOXTRAIN_IDENTITY_URL": f"http://127.0.0.1:{ports.identity}",
        "VOXTRAIN_AUTH__PRIVATE_KEY": StateDir(state_dir).secrets().signing_private_key,
        "VOXTRAIN_AUTH__PUBLIC_KEY": StateDir(state_dir).secrets().signing_public_key,
    }
