"""Fixtures of the shared-infrastructure tests: private servers that a test may stop, kill and restart.

Never the shared test servers (``stack``): an outage test starts its own PostgreSQL (or Kafka) with
``voxtrain_devstack.server`` in a temporary state dir, on free ports of its own.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from voxtrain_devstack import Endpoints, Ports, Server, server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class Private:
    """A private server and the endpoints of its stack (only its own entry is meaningful)."""

    server: Server
    endpoints: Endpoints


def _private(name: str, state: Path) -> Iterator[Private]:
    ports = Ports(**{f.name: _free_port() for f in dataclasses.fields(Ports)})
    srv, endpoints = server(name, state, ports)
    srv.up(timeout=180)
    try:
        yield Private(srv, endpoints)
    finally:
        srv.stop()


@pytest.fixture
def private_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    """A PostgreSQL of this test alone (durable settings, as `make run` runs it)."""
    yield from _private("postgres", tmp_path_factory.mktemp("pg-stack"))


@pytest.fixture
def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    """A Kafka of this test alone."""
    yield from _private("kafka", tmp_path_factory.mktemp("kafka-stack"))


@pytest.fixture
def private_minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    """A MinIO of this test alone."""
    yield from _private("minio", tmp_path_factory.mktemp("minio-stack"))
