"""The three servers as local processes: how each is prepared, started, probed and stopped.

Every server keeps its data in ``<state>/data/<name>`` and logs to ``<state>/logs/<name>.log``; it
listens on 127.0.0.1 only.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from . import procs
from .config import Ports, Secrets, StateDir
from .install import Installed, say
from .procs import StackError

DATABASE = "voxtrain"
PG_SUPERUSER = "voxtrain"


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without variables that would re-configure a server behind our back."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIO_", "PG", "KAFKA_", "JAVA_TOOL_OPTIONS"))}
    env.update(extra)
    return env


class Server(abc.ABC):
    """One server process of the stack. Subclasses say how to prepare, start and probe it."""

    name = ""
    stop_signal = signal.SIGTERM

    def __init__(self, state: StateDir, ports: Ports, secrets: Secrets, installed: Installed | None) -> None:
        self.state, self.ports, self.secrets, self._installed = state, ports, secrets, installed

    @property
    def installed(self) -> Installed:
        assert self._installed is not None, "servers are started only after install()"
        return self._installed

    @property
    def data(self) -> Path:
        return self.state.data(self.name)

    @property
    def log(self) -> Path:
        return self.state.log(self.name)

    @abc.abstractmethod
    def own_ports(self) -> list[int]:
        """The ports this server listens on; the first is the one clients use."""

    def marker(self) -> str:
        """A string in the server's command line that is unique to this state dir."""
        return str(self.data)

    def prepare(self) -> None:
        """Write config and initialise the data dir on first start (idempotent)."""
        self.data.mkdir(parents=True, exist_ok=True)

    @abc.abstractmethod
    def command(self) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that run the server in the foreground."""

    @abc.abstractmethod
    def ready(self) -> bool:
        """True once the server answers requests."""

    def after_ready(self) -> None:  # noqa: B027 - a hook: most servers need nothing here
        """One-time setup that needs the running server (idempotent)."""

    def running_pid(self) -> int | None:
        return procs.running_pid(self.state, self.name, self.marker())

    def start(self) -> int:
        """Reuse the running process of this state dir, else start one; returns its pid (not yet ready)."""
        pid = self.running_pid()
        if pid is not None:
            return pid
        for port in self.own_ports():
            if procs.port_open(port):
                raise StackError(
                    f"{self.name}: port {port} on 127.0.0.1 is taken by a process that is not this stack's "
                    f"(state dir {self.state.path}). Stop it, or run the stack on other ports, e.g. "
                    f"VOXTRAIN_STACK_PORT_OFFSET=1000 or VOXTRAIN_STACK_<NAME>_PORT."
                )
        self.prepare()
        cmd, env = self.command()
        return procs.spawn(self.state, self.name, cmd, env=env, cwd=self.state.path)

    def wait_ready(self, pid: int, timeout: float) -> None:
        """Wait until :meth:`ready`, then run :meth:`after_ready`; :class:`StackError` with the log tail if not."""
        what = f"{self.name} (pid {pid}, 127.0.0.1:{self.own_ports()[0]})"
        procs.wait_until(self.ready, what=what, timeout=timeout, pid=pid, log=self.log)
        self.after_ready()

    def stop(self, timeout: float = 30.0) -> None:
        pid = self.running_pid()
        if pid is not None:
            procs.terminate(pid, self.stop_signal, timeout)
        self.state.pid_file(self.name).unlink(missing_ok=True)

    def up(self, timeout: float = 120.0) -> None:
        """Start the server (or reuse it) and wait until it answers."""
        self.wait_ready(self.start(), timeout)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and wait until it is gone."""
        pid = self.running_pid()
        if pid is not None:
            procs.terminate(pid, signal.SIGKILL, timeout=30.0)
        self.state.pid_file(self.name).unlink(missing_ok=True)


class Kafka(Server):
    """Apache Kafka in KRaft mode, a single combined broker + controller node."""

    name = "kafka"

    def own_ports(self) -> list[int]:
        return [self.ports.kafka, self.ports.kafka_controller]

    @property
    def properties(self) -> Path:
        return self.data / "server.properties"

    def prepare(self) -> None:
        super().prepare()
        p, c = self.ports.kafka, self.ports.kafka_controller
        self.properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{c}",
                    f"listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={self.data / 'log'}",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )
        if (self.data / "log" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        with open(self.log, "ab") as out:
            done = subprocess.run(
                [
                    "java",
                    "-cp",
                    f"{self.installed.kafka_lib}/*",
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    f"--cluster-id={cluster_id}",  # one argument: a random id may start with "-"
                    "-c",
                    str(self.properties),
                    "-g",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_clean_env(),
            )
        if done.returncode != 0:
            raise StackError(procs.with_log("kafka: formatting the KRaft storage failed.", self.log))

    def command(self) -> tuple[list[str], dict[str, str]]:
        return [
            "java",
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            "-cp",
            f"{self.installed.kafka_lib}/*",
            "kafka.Kafka",
            str(self.properties),
        ], _clean_env()

    def ready(self) -> bool:
        return kafka_has_broker(self.ports.kafka)


def kafka_has_broker(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> bool:
    """Send a Metadata (v4) request; True when the answer lists at least one broker."""
    client_id = b"voxtrain-stack"
    # request header v1 (api_key 3 = Metadata, version 4, correlation id, client id), then the body:
    # topics = null (all), allow_auto_topic_creation = false
    request = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id + struct.pack(">i?", -1, False)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(request)) + request)
            size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
            response = _recv_exactly(sock, size)
    except (OSError, struct.error):
        return False
    # response header v0: correlation id; body v4: throttle_time_ms, then the brokers array's length
    correlation_id, _throttle, brokers = struct.unpack(">iii", response[:12])
    return correlation_id == 7 and brokers > 0


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


class Minio(Server):
    """MinIO, single drive, with root credentials from the stack's secrets."""

    name = "minio"

    def own_ports(self) -> list[int]:
        return [self.ports.minio, self.ports.minio_console]

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = _clean_env(
            MINIO_ROOT_USER=self.secrets.minio_access_key,
            MINIO_ROOT_PASSWORD=self.secrets.minio_secret_key,
            MINIO_UPDATE="off",
        )
        return [
            str(self.installed.minio),
            "server",
            "--address",
            f"127.0.0.1:{self.ports.minio}",
            "--console-address",
            f"127.0.0.1:{self.ports.minio_console}",
            str(self.data),
        ], env

    def after_ready(self) -> None:
        self.provision()

    def provision(self, bucket: str | None = None) -> None:
        """``bucket`` (default: the services' default one), and on it a least-privileged user and policy per
        storage service, with the keys of the stack's secrets (idempotent)."""
        from voxtrain_shared.settings import MinioSettings
        from voxtrain_shared.storage_access import Credential, provision

        admin = MinioSettings(
            endpoint=f"127.0.0.1:{self.ports.minio}",
            access_key=self.secrets.minio_access_key,
            secret_key=self.secrets.minio_secret_key,
            **({"bucket": bucket} if bucket else {}),
        )
        users = {name: Credential(**pair) for name, pair in self.secrets.storage_users.items()}
        for attempt in range(5):  # the admin API may lag a moment behind /minio/health/ready after a restart
            try:
                provision(admin, users)
                return
            except Exception as exc:  # minio's S3Error / ServerError / urllib3 errors: all mean "not provisioned"
                if attempt == 4:
                    message = f"minio: creating the services' users failed: {exc}"
                    raise StackError(procs.with_log(message, self.log)) from exc
                time.sleep(1.0)

    def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.ports.minio}/minio/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False


class Postgres(Server):
    """PostgreSQL with a password-protected superuser ``voxtrain`` and a database ``voxtrain``.

    PostgreSQL refuses to run as root: as root, it runs as the ``postgres`` user (Debian's package creates
    it) or a ``voxtrain`` system user created for it, and its data dir belongs to that user. When that
    user cannot reach the state dir (e.g. a checkout under /root), the data lives in
    ``/var/tmp/voxtrain-postgres-<hash>`` and ``<state>/data/postgres`` is a symlink to it.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, then exit cleanly

    def own_ports(self) -> list[int]:
        return [self.ports.postgres]

    @property
    def root(self) -> Path:
        """The real path of the data dir (it may be a symlink): the server user must not need to pass the link."""
        return self.data.resolve()

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    def marker(self) -> str:
        return str(self.pgdata)

    def _bin(self, tool: str) -> str:
        return str(self.installed.postgres_bin / tool)

    def _as_user(self) -> list[str]:
        """A prefix that runs a command as the unprivileged server user ([] when we are not root)."""
        if os.geteuid() != 0:
            return []
        user = _server_user()
        return ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}", "--init-groups", "--"]

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(_server_user())
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _make_data_dir(self) -> None:
        if self.data.exists():
            return
        parent = self.data.parent
        reachable = subprocess.run([*self._as_user(), "test", "-x", str(parent)], check=False).returncode == 0
        if reachable:
            self.data.mkdir()
        else:
            key = hashlib.sha256(str(self.state.path).encode()).hexdigest()[:12]
            elsewhere = Path("/var/tmp") / f"voxtrain-postgres-{key}"
            elsewhere.mkdir(mode=0o700, exist_ok=True)
            if elsewhere.stat().st_uid not in (0, pwd.getpwnam(_server_user()).pw_uid):
                raise StackError(f"postgres: {elsewhere} belongs to another user; remove it or set VOXTRAIN_STACK_DIR")
            self.data.symlink_to(elsewhere, target_is_directory=True)
            say(f"postgres: {parent} is not reachable by user {_server_user()}; its data lives in {elsewhere}")
        self._chown(self.root)

    def prepare(self) -> None:
        if self.data.is_symlink() and not self.data.resolve().exists():
            self.data.unlink()  # /var/tmp was cleaned: start afresh
        self._make_data_dir()
        sockets = self.root / "run"
        sockets.mkdir(exist_ok=True)
        self._chown(sockets)
        if (self.pgdata / "PG_VERSION").exists():
            return
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.secrets.postgres_password + "\n")
        os.chmod(pwfile, 0o600)
        self._chown(pwfile)
        try:
            with open(self.log, "ab") as out:
                done = subprocess.run(
                    [
                        *self._as_user(),
                        self._bin("initdb"),
                        "-D",
                        str(self.pgdata),
                        "-U",
                        PG_SUPERUSER,
                        "--auth=scram-sha-256",
                        f"--pwfile={pwfile}",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=_clean_env(),
                    cwd=self.root,
                )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise StackError(procs.with_log("postgres: initdb failed.", self.log))

    def command(self) -> tuple[list[str], dict[str, str]]:
        return [
            *self._as_user(),
            self._bin("postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.ports.postgres),
            "-k",
            str(self.root / "run"),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
            # Durable, as in production (fsync, synchronous_commit and full_page_writes keep their defaults):
            # the outbox and the inbox promise that a committed change and its Kafka effects go together,
            # which a crash must not break. Pinned here so a changed postgresql.conf cannot weaken it.
            "-c",
            "fsync=on",
            "-c",
            "synchronous_commit=on",
            "-c",
            "full_page_writes=on",
        ], _clean_env(HOME=str(self.root))

    def ready(self) -> bool:
        probe = [self._bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.ports.postgres), "-t", "2"]
        return subprocess.run(probe, stdin=subprocess.DEVNULL, env=_clean_env(), check=False).returncode == 0

    def _psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [
                self._bin("psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.ports.postgres),
                "-U",
                PG_SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_clean_env(PGPASSWORD=self.secrets.postgres_password, PGCONNECT_TIMEOUT="5"),
        )
        if done.returncode != 0:
            raise StackError(f"postgres: `{sql}` failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def after_ready(self) -> None:
        if self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'") != "1":
            self._psql(f'CREATE DATABASE "{DATABASE}"')


def _server_user() -> str:
    """The unprivileged user PostgreSQL runs as when we are root: ``postgres``, else ``voxtrain``."""
    for name in ("postgres", "voxtrain"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "voxtrain"],
        check=True,
    )
    return "voxtrain"


def all_servers(state: StateDir, ports: Ports, secrets: Secrets, installed: Installed | None) -> list[Server]:
    """The servers in start order."""
    return [cls(state, ports, secrets, installed) for cls in (Postgres, Minio, Kafka)]
