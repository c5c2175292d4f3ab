"""Where things live (cache, state dir), which ports are used, and the generated secrets.

Environment variables (all optional):

- ``VOXTRAIN_STACK_DIR``: state dir (data, logs, pid files, secrets); default ``<repo>/.voxtrain/stack``.
- ``XDG_CACHE_HOME``: installs are cached in ``${XDG_CACHE_HOME:-~/.cache}/voxtrain``.
- ``VOXTRAIN_STACK_PORT_OFFSET``: added to every default port (run a second stack beside the first).
- ``VOXTRAIN_STACK_<NAME>_PORT``: one port, e.g. ``VOXTRAIN_STACK_KAFKA_PORT=29092``; names are the
  fields of :class:`Ports`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ENV_PREFIX = "VOXTRAIN_STACK_"


def cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/voxtrain``: installed servers, shared by every checkout."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voxtrain"


def repo_root() -> Path:
    """The workspace this package was installed from (the folder with ``uv.lock``), else the cwd."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "uv.lock").is_file() and (parent / "deploy" / "local").is_dir():
            return parent
    return Path.cwd()


def default_state_dir() -> Path:
    """``$VOXTRAIN_STACK_DIR``, else ``<repo>/.voxtrain/stack``."""
    env = os.environ.get(ENV_PREFIX + "DIR")
    return Path(env).resolve() if env else repo_root() / ".voxtrain" / "stack"


@dataclasses.dataclass(frozen=True)
class Ports:
    """TCP ports on 127.0.0.1 for the servers and the services."""

    kafka: int = 19092
    kafka_controller: int = 19093
    postgres: int = 15432
    minio: int = 19000
    minio_console: int = 19001
    models: int = 8101
    datasets: int = 8102
    validator: int = 8103
    trainer: int = 8104
    webhooks: int = 8105
    identity: int = 8106
    console: int = 8100  #: the voxtrain web console (not MinIO's, which is minio_console)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Ports:
        """Defaults shifted by ``VOXTRAIN_STACK_PORT_OFFSET``, then ``VOXTRAIN_STACK_<NAME>_PORT``."""
        offset = int(environ.get(ENV_PREFIX + "PORT_OFFSET", "0"))
        values = {}
        for field in dataclasses.fields(cls):
            var = f"{ENV_PREFIX}{field.name.upper()}_PORT"
            default = field.default
            assert isinstance(default, int)  # every port has a default
            values[field.name] = int(environ[var]) if var in environ else default + offset
        return cls(**values)

    @classmethod
    def overridden_in_env(cls, environ: Mapping[str, str] = os.environ) -> bool:
        """True when the environment asks for any port other than the defaults."""
        return any(
            (k.startswith(ENV_PREFIX) and k.endswith("_PORT")) or k == ENV_PREFIX + "PORT_OFFSET" for k in environ
        )


@dataclasses.dataclass(frozen=True)
class Secrets:
    """Generated on first use and kept in ``<state>/secrets.json`` (mode 0600); never hard-coded.

    ``minio_access_key``/``minio_secret_key`` are MinIO's root user (the stack and operators only);
    ``storage_users`` holds each storage service's own, least-privileged key pair
    (``{service: {"access_key", "secret_key"}}``, see voxtrain_shared.storage_access)."""

    postgres_password: str
    minio_access_key: str
    minio_secret_key: str
    #: the development token-signing key pair (Ed25519, URL-safe base64 of the raw 32 bytes): the private key
    #: goes only to the identity service and to the operator's shell (``voxtrain-stack env``), the public one to all
    signing_private_key: str
    signing_public_key: str
    storage_users: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)

    @classmethod
    def generate(cls) -> Secrets:
        private, public = _signing_key_pair()
        return cls(
            postgres_password=secrets.token_urlsafe(24),  # URL-safe: it goes into a DSN as is
            minio_access_key="voxtrain-" + secrets.token_hex(6),
            minio_secret_key=secrets.token_urlsafe(30),
            signing_private_key=private,
            signing_public_key=public,
            storage_users=_storage_users({}),
        )

    @classmethod
    def load(cls, saved: dict[str, Any]) -> tuple[Secrets, bool]:
        """The secrets of a ``secrets.json``, completed with new ones an older stack's file lacks and without
        fields no longer used; True when the file should be written again."""
        fields = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in saved.items() if k in fields}
        if known.keys() == fields:
            return cls(**known), saved.keys() != fields
        return cls(**{**dataclasses.asdict(cls.generate()), **known}), True

    def with_storage_users(self) -> Secrets:
        """These secrets plus a key pair for every storage service that has none yet."""
        return dataclasses.replace(self, storage_users=_storage_users(self.storage_users))


def _signing_key_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    key = Ed25519PrivateKey.generate()
    return b64(key.private_bytes_raw()), b64(key.public_key().public_bytes_raw())


def _storage_users(existing: Mapping[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    from voxtrain_shared.storage_access import STORAGE_SERVICES, Credential

    users = dict(existing)
    for service in STORAGE_SERVICES:
        if service not in users:
            users[service] = dataclasses.asdict(Credential.generate(service))
    return users


class StateDir:
    """A stack's state dir: ``data/<server>``, ``logs/<name>.log``, ``run/<name>.pid``, secrets, ports."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).resolve() if path is not None else default_state_dir()
        self.logs = self.path / "logs"
        self.run = self.path / "run"

    def data(self, name: str) -> Path:
        return self.path / "data" / name

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def create(self) -> None:
        for d in (self.path, self.logs, self.run, self.path / "data"):
            d.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise start/stop of this stack across processes (two pytest runs, make run + test)."""
        self.create()
        with open(self.path / ".lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def secrets(self) -> Secrets:
        """The stack's secrets, generated and written (0600) on first call."""
        file = self.path / "secrets.json"
        if file.exists():
            loaded, completed = Secrets.load(json.loads(file.read_text()))
            value = loaded.with_storage_users()  # a storage service added since the file was written
            if not completed and value == loaded:
                return value
            file.unlink()
        else:
            value = Secrets.generate()
        self.create()
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(dataclasses.asdict(value), f, indent=2)
        return value

    def saved_ports(self) -> Ports | None:
        """The ports the stack was last started with, if it ever was."""
        file = self.path / "ports.json"
        return Ports(**json.loads(file.read_text())) if file.exists() else None

    def save_ports(self, ports: Ports) -> None:
        (self.path / "ports.json").write_text(json.dumps(dataclasses.asdict(ports), indent=2))

    def ports(self, explicit: Ports | None = None) -> Ports:
        """Explicit ports, else ports asked for in the environment, else the saved ones, else defaults."""
        if explicit is not None:
            return explicit
        if Ports.overridden_in_env():
            return Ports.from_env()
        return self.saved_ports() or Ports.from_env()
