"""The chaos stack's processes: the servers and every service replica, each killable and restartable."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from voxtrain_devstack import Ports, StateDir, install, procs, services
from voxtrain_devstack.servers import Minio as MinioServer
from voxtrain_devstack.servers import Server, all_servers
from voxtrain_devstack.stack import Endpoints, ensure_up
from voxtrain_shared.settings import AuthSettings

SERVICES = ("models", "datasets", "validator", "trainer")
SERVERS = ("kafka", "postgres", "minio")
#: What a round can kill. ``trainer-worker`` is the training child process of a trainer, not the service.
COMPONENTS = ("models", "datasets", "validator", "trainer", "trainer-worker", "kafka", "postgres", "minio")
REPLICA_PORT_STEP = 100
#: The longest a model waits with nobody answering before supervision fails it: deadline x (1 + redrives).
DEADLINE_SECONDS, MAX_REDRIVES = 20, 2
GIVE_UP_SECONDS = DEADLINE_SECONDS * (MAX_REDRIVES + 1)
#: Trainer runs and validator jobs of a killed replica are free again after this (well inside GIVE_UP_SECONDS).
LEASE_SECONDS = 12
T = TypeVar("T")


@dataclass
class Replica:
    service: str
    index: int
    port: int
    env: dict[str, str]

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class ChaosStack:
    """Servers of ``state`` on ``ports`` and ``replicas`` processes of each service, in a run namespace."""

    state: StateDir
    ports: Ports
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    replicas: int = 1
    endpoints: Endpoints | None = None
    #: signs the chaos tenant's tokens with the stack's development key (as the identity service would)
    signing: AuthSettings | None = None
    _servers: dict[str, Server] = field(default_factory=dict)
    _replicas: dict[str, list[Replica]] = field(default_factory=dict)

    @property
    def signing_auth(self) -> AuthSettings:
        assert self.signing is not None, "start the servers first"
        return self.signing

    @property
    def namespace(self) -> str:
        return f"chaos{self.run_id}"

    def start_servers(self) -> None:
        self.endpoints = ensure_up(self.state.path, self.ports)
        secrets = self.state.secrets()
        self.signing = AuthSettings(public_key=secrets.signing_public_key, private_key=secrets.signing_private_key)
        self._servers = {s.name: s for s in all_servers(self.state, self.ports, secrets, install())}
        minio = self._servers["minio"]
        assert isinstance(minio, MinioServer)
        minio.provision(self.bucket)  # the run's bucket, with the storage services' own users on it

    @property
    def bucket(self) -> str:
        return f"chaos-{self.run_id}"

    def service_env(self, name: str, port: int) -> dict[str, str]:
        assert self.endpoints is not None
        env = {**os.environ, **services.service_env(name, self.endpoints.as_env(), self.ports, self.state.secrets())}
        env.update(
            {
                "VOXTRAIN_HTTP__PORT": str(port),
                "VOXTRAIN_KAFKA__TOPIC_NAMESPACE": self.namespace,
                "VOXTRAIN_POSTGRES__SCHEMA": f"{name}_{self.run_id}",
                "VOXTRAIN_MINIO__BUCKET": self.bucket,
                # short deadlines, so that a lost answer is noticed within a round
                "VOXTRAIN_SUPERVISION__EVERY_SECONDS": "2",
                "VOXTRAIN_SUPERVISION__VALIDATION_SECONDS": str(DEADLINE_SECONDS * 3 // 4),
                "VOXTRAIN_SUPERVISION__START_SECONDS": str(DEADLINE_SECONDS),
                "VOXTRAIN_SUPERVISION__HEARTBEAT_SECONDS": str(DEADLINE_SECONDS),
                "VOXTRAIN_SUPERVISION__MAX_REDRIVES": str(MAX_REDRIVES),
                # ...and leases that fit inside them: a surviving replica must take over a dead one's run or job
                # before supervision gives up (with the defaults, trainer 60 s and validator 120 s, it would not)
                "VOXTRAIN_LEASE_SECONDS": str(LEASE_SECONDS),
                "VOXTRAIN_HEARTBEAT_SECONDS": "2",
                "VOXTRAIN_WORK_DIR": str(self.state.path / "work" / f"{name}-{port}"),
                "VOXTRAIN_LOG_LEVEL": "INFO",
            }
        )
        return env

    async def start_services(self, replicas: int, timeout: float = 120.0) -> None:
        """(Re)start ``replicas`` processes of every service and wait until each is live."""
        await self.stop_services()
        self.replicas = replicas
        self._replicas = {
            name: [
                Replica(
                    name,
                    i,
                    getattr(self.ports, name) + i * REPLICA_PORT_STEP,
                    self.service_env(name, getattr(self.ports, name) + i * REPLICA_PORT_STEP),
                )
                for i in range(replicas)
            ]
            for name in SERVICES
        }
        await asyncio.gather(*(self.start_replica(r, timeout) for rs in self._replicas.values() for r in rs))

    async def start_replica(self, r: Replica, timeout: float = 120.0) -> None:
        if procs.port_open(r.port):
            raise procs.StackError(f"{r.name}: port {r.port} is taken; choose another --port-offset")
        pid = procs.spawn(self.state, r.name, [services.script(r.service)], env=r.env, cwd=self.state.path)
        await asyncio.to_thread(
            procs.wait_until,
            lambda: services.live(r.port),
            what=f"{r.name} (pid {pid})",
            timeout=timeout,
            pid=pid,
            log=self.state.log(r.name),
        )

    def pid(self, name: str) -> int | None:
        return procs.running_pid(self.state, name, f"voxtrain-{name.split('-')[0]}")

    async def stop_services(self) -> None:
        for rs in self._replicas.values():
            for r in rs:
                pid = self.pid(r.name)
                if pid is not None:
                    await asyncio.to_thread(procs.terminate, pid, signal.SIGTERM, 15.0)

    def urls(self, service: str) -> list[str]:
        return [r.url for r in self._replicas[service]]

    def replicas_of(self, service: str) -> list[Replica]:
        return list(self._replicas[service])

    # ---------------------------------------------------------------- faults

    def kill(self, component: str) -> str | None:
        """SIGKILL ``component`` now (a random replica of a service, the whole process group of a server).

        Returns what was killed, or None when it did not run (a trainer with no training child)."""
        if component in SERVERS:
            pid = self._servers[component].running_pid()
            if pid is None:
                return None
            os.killpg(pid, signal.SIGKILL)  # like a container dying: the server and all its children
            return f"{component} (pid {pid})"
        if component == "trainer-worker":
            for name, child in self.training_workers():
                os.kill(child, signal.SIGKILL)
                return f"training worker of {name} (pid {child})"
            return None
        r = random.choice(self._replicas[component])
        pid = self.pid(r.name)
        if pid is None:
            return None
        os.kill(pid, signal.SIGKILL)  # only the service: what it started is left to its own devices
        return f"{r.name} (pid {pid})"

    def training_workers(self) -> list[tuple[str, int]]:
        """(trainer replica, pid) of every training process running now."""
        return [(r.name, child) for r in self._replicas["trainer"] for child in _training_children(self.pid(r.name))]

    async def restart(self, component: str, timeout: float = 180.0) -> None:
        """Start whatever of ``component`` does not run (idempotent)."""
        if component in SERVERS:
            server = self._servers[component]
            await asyncio.to_thread(
                procs.wait_until, lambda: server.running_pid() is None, what=f"{component} to exit", timeout=30
            )
            pid = await _retry(lambda: server.start(), attempts=10)
            await asyncio.to_thread(server.wait_ready, pid, timeout)
            return
        if component == "trainer-worker":
            return
        for r in self._replicas[component]:
            if self.pid(r.name) is None:
                await asyncio.to_thread(
                    procs.wait_until,
                    lambda r=r: not procs.port_open(r.port),
                    what=f"{r.name}'s port to be free",
                    timeout=30,
                )
                await self.start_replica(r, timeout)

    async def heal(self) -> list[str]:
        """Restart anything that is down (it crashed on its own, or a restart failed); returns what was."""
        down = [name for name in SERVERS if self._servers[name].running_pid() is None]
        down += [r.name for rs in self._replicas.values() for r in rs if self.pid(r.name) is None]
        for name in SERVERS:
            if name in down:
                await self.restart(name)
        for service in SERVICES:
            await self.restart(service)
        return down

    def cpu_seconds(self, name: str) -> float:
        """User + system CPU time the process ``name`` (a replica) used so far."""
        pid = self.pid(name)
        if pid is None:
            return 0.0
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _training_children(pid: int | None) -> list[int]:
    """Training processes (multiprocessing spawn children) of a trainer process."""
    if pid is None:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and "spawn_main" in procs.cmdline(int(entry.name)):
            found.append(int(entry.name))
    return found


async def _retry(fn: Callable[[], T], attempts: int, wait: float = 2.0) -> T:
    for attempt in range(attempts):
        try:
            return await asyncio.to_thread(fn)
        except procs.StackError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")
