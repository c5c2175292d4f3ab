"""Where the tests' Kafka, PostgreSQL and MinIO come from — always real servers, chosen in this order:

1. servers named in the environment: ``VOXTRAIN_TEST_KAFKA_BOOTSTRAP``, ``VOXTRAIN_TEST_POSTGRES_DSN``,
   ``VOXTRAIN_TEST_MINIO_ENDPOINT``, ``VOXTRAIN_TEST_MINIO_ACCESS_KEY``, ``VOXTRAIN_TEST_MINIO_SECRET_KEY``
   (all five, or none);
2. containers (testcontainers) when a Docker engine answers;
3. local processes: :func:`voxtrain_devstack.ensure_up` (installs once, reuses running servers).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from voxtrain_devstack import Endpoints, ensure_up, versions
from voxtrain_devstack.topics import delete_topics

ENV_VARS = {
    "kafka_bootstrap": "VOXTRAIN_TEST_KAFKA_BOOTSTRAP",
    "postgres_dsn": "VOXTRAIN_TEST_POSTGRES_DSN",
    "minio_endpoint": "VOXTRAIN_TEST_MINIO_ENDPOINT",
    "minio_access_key": "VOXTRAIN_TEST_MINIO_ACCESS_KEY",
    "minio_secret_key": "VOXTRAIN_TEST_MINIO_SECRET_KEY",
}
REPO = Path(__file__).resolve().parents[1]


def from_env() -> Endpoints | None:
    """Endpoints named in ``VOXTRAIN_TEST_*``; None when none is set; an error when only some are."""
    values = {field: os.environ.get(var) for field, var in ENV_VARS.items()}
    if not any(values.values()):
        return None
    missing = [ENV_VARS[f] for f, v in values.items() if not v]
    if missing:
        raise RuntimeError(f"set all of the VOXTRAIN_TEST_* server variables or none; missing: {', '.join(missing)}")
    return Endpoints(**values)


def docker_answers() -> bool:
    """True when a Docker engine (not only the client) responds."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # no SDK, no socket, no engine: all mean "no Docker here"
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http_ok(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")
        time.sleep(0.5)


@contextlib.contextmanager
def containers() -> Iterator[Endpoints]:
    """The same server versions as docker-compose.yml, in throw-away containers."""
    import docker
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.postgres import PostgresContainer

    password = secrets.token_urlsafe(16)
    access_key, secret_key = "voxtrain-" + secrets.token_hex(4), secrets.token_urlsafe(24)
    kafka_port = _free_port()
    # MinIO ships no images any more: build ours (deploy/Dockerfile, target minio) at the pinned version.
    minio_image = f"voxtrain/minio:{versions.MINIO_VERSION}"
    docker.from_env().images.build(
        path=str(REPO),
        dockerfile="deploy/Dockerfile",
        target="minio",
        tag=minio_image,
        buildargs={"MINIO_VERSION": versions.MINIO_VERSION},
    )
    kafka = (
        DockerContainer(versions.KAFKA_IMAGE)
        .with_bind_ports(9092, kafka_port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{kafka_port}")
        .with_env("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    )
    minio = (
        DockerContainer(minio_image)
        .with_exposed_ports(9000)
        .with_env("MINIO_ROOT_USER", access_key)
        .with_env("MINIO_ROOT_PASSWORD", secret_key)
    )
    postgres = PostgresContainer(
        versions.POSTGRES_IMAGE, username="voxtrain", password=password, dbname="voxtrain", driver=None
    )
    with kafka, minio, postgres:
        wait_for_logs(kafka, "Kafka Server started", timeout=120)
        minio_endpoint = f"{minio.get_container_host_ip()}:{minio.get_exposed_port(9000)}"
        _wait_http_ok(f"http://{minio_endpoint}/minio/health/ready", timeout=60)
        yield Endpoints(
            kafka_bootstrap=f"127.0.0.1:{kafka_port}",
            postgres_dsn=postgres.get_connection_url(),
            minio_endpoint=minio_endpoint,
            minio_access_key=access_key,
            minio_secret_key=secret_key,
        )


def forget(endpoints: Endpoints, tag: str) -> int:
    """Delete the Kafka topics whose names carry ``tag`` (the ones this test run made; see ``support.RUN_TAG``), so
    a server that outlives the run keeps no pile of them (see :mod:`voxtrain_devstack.topics`). Returns how many
    were deleted; a failure is only reported, never fails the session."""
    import asyncio

    try:
        return asyncio.run(delete_topics(endpoints.kafka_bootstrap, lambda topic: f"_{tag}" in topic))
    except Exception as exc:  # the run's verdict is the tests', not the clean-up's
        print(f"\nnot all of this run's Kafka topics (tag {tag}) could be deleted: {exc!r}")
        return 0


@contextlib.contextmanager
def provide() -> Iterator[Endpoints]:
    """The test servers, from the first source that is available (see the module docstring)."""
    named = from_env()
    if named is not None:
        yield named
    elif docker_answers():
        with containers() as endpoints:
            yield endpoints
    else:
        yield ensure_up()  # left running: the next test run reuses it; `make stop` stops it
