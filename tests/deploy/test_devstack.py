"""The local stack (voxtrain_devstack): real servers answer, a second start reuses them, errors are actionable."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import stat
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from minio import Minio
from minio.error import S3Error

from tests.support import free_ports
from voxtrain_devstack import Endpoints, Ports, StackError, StateDir, ensure_up, procs, status, stop
from voxtrain_devstack.servers import Minio as MinioServer
from voxtrain_devstack.servers import kafka_has_broker
from voxtrain_devstack.services import SERVICES, service_env
from voxtrain_shared import settings
from voxtrain_shared.auth import public_key_of


@pytest.mark.integration
async def test_the_stack_answers(stack: Endpoints) -> None:
    name = f"probe-{uuid.uuid4().hex[:10]}"

    conn = await asyncpg.connect(stack.postgres_dsn)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()

    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(name, b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        name, bootstrap_servers=stack.kafka_bootstrap, group_id=name, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await consumer.getone()
        assert record.value == b"hello"
    finally:
        await consumer.stop()

    client = Minio(stack.minio_endpoint, stack.minio_access_key, stack.minio_secret_key, secure=False)
    client.make_bucket(name)
    client.put_object(name, "object", io.BytesIO(b"bytes"), 5)
    assert client.get_object(name, "object").read() == b"bytes"


def test_endpoints_env_names_are_settings_fields() -> None:
    endpoints = Endpoints("127.0.0.1:1", "postgresql://u:p@127.0.0.1:2/voxtrain", "127.0.0.1:3", "a", "b")
    assert set(endpoints.as_env()) <= settings.env_var_names(settings.DatasetsSettings)


def test_each_storage_service_gets_its_own_minio_key_and_no_service_the_root_key(tmp_path: Path) -> None:
    secrets = StateDir(tmp_path).secrets()
    endpoints = Endpoints("127.0.0.1:1", "postgresql://u:p@127.0.0.1:2/voxtrain", "127.0.0.1:3", "root", "root-secret")
    envs = {name: service_env(name, endpoints.as_env(), Ports(), secrets) for name in SERVICES}
    for name in ("datasets", "validator", "trainer"):
        assert envs[name]["VOXTRAIN_MINIO__ACCESS_KEY"] == secrets.storage_users[name]["access_key"]
        assert envs[name]["VOXTRAIN_MINIO__SECRET_KEY"] == secrets.storage_users[name]["secret_key"]
    for name in ("models", "webhooks", "console"):
        assert "VOXTRAIN_MINIO__ACCESS_KEY" not in envs[name] and "VOXTRAIN_MINIO__SECRET_KEY" not in envs[name]
    assert not any("root-secret" in env.values() for env in envs.values())
    assert len({envs[n]["VOXTRAIN_MINIO__ACCESS_KEY"] for n in ("datasets", "validator", "trainer")}) == 3


def test_a_secrets_file_gains_missing_storage_users_and_keeps_the_rest(tmp_path: Path) -> None:
    old = {
        "postgres_password": "p",
        "minio_access_key": "root",
        "minio_secret_key": "s",
        "signing_private_key": "private",
        "signing_public_key": "public",
        "storage_users": {"validator": {"access_key": "v", "secret_key": "vs"}},  # a service added since
    }
    (tmp_path / "secrets.json").write_text(json.dumps(old))
    os.chmod(tmp_path / "secrets.json", 0o600)
    upgraded = StateDir(tmp_path).secrets()
    assert (upgraded.postgres_password, upgraded.minio_access_key, upgraded.signing_public_key) == (
        "p",
        "root",
        "public",
    )
    assert set(upgraded.storage_users) == {"datasets", "validator", "trainer"}
    assert upgraded.storage_users["validator"] == {"access_key": "v", "secret_key": "vs"}
    assert StateDir(tmp_path).secrets() == upgraded  # written once, then read back as is
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600


def test_ports_come_from_offset_and_single_overrides() -> None:
    ports = Ports.from_env({"VOXTRAIN_STACK_PORT_OFFSET": "1000", "VOXTRAIN_STACK_POSTGRES_PORT": "25000"})
    assert (ports.kafka, ports.postgres, ports.models) == (20092, 25000, 9101)
    assert Ports.from_env({}) == Ports()


@pytest.mark.integration
def test_ensure_up_starts_once_then_reuses_and_stop_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [v for v in os.environ if v.startswith("VOXTRAIN_STACK_")]:
        monkeypatch.delenv(var)
    kafka, controller, postgres, minio, console = free_ports(5)
    ports = Ports(kafka=kafka, kafka_controller=controller, postgres=postgres, minio=minio, minio_console=console)
    state = tmp_path / "stack"
    try:
        first = ensure_up(state, ports)
        pids = {row.name: row.pid for row in status(state) if row.name in ("kafka", "postgres", "minio")}
        assert all(pids.values()), pids

        again = ensure_up(state)  # no ports: the saved ones
        assert again == first
        assert {row.name: row.pid for row in status(state) if row.name in pids} == pids
        assert first.kafka_bootstrap == f"127.0.0.1:{kafka}" and kafka_has_broker(kafka)
        assert first.postgres_dsn.endswith(f"@127.0.0.1:{postgres}/voxtrain")

        secrets_file = state / "secrets.json"
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        assert first.minio_secret_key in secrets_file.read_text()
        assert first.minio_access_key != "minioadmin" and len(first.minio_secret_key) >= 32

        # `up` created the bucket and the validator's own user, which may read datasets but write nothing
        validator = StateDir(state).secrets().storage_users["validator"]
        v = Minio(first.minio_endpoint, validator["access_key"], validator["secret_key"], secure=False)
        assert v.bucket_exists("voxtrain")
        with pytest.raises(S3Error) as refused:
            v.put_object("voxtrain", "tenants/t/models/m/datasets/d/data", io.BytesIO(b"x"), 1)
        assert refused.value.code == "AccessDenied"

        with pytest.raises(StackError, match="already runs"):
            ensure_up(state, Ports(kafka=free_ports(1)[0]))
    finally:
        stop(state)
        pg_data = state / "data" / "postgres"
        if pg_data.is_symlink():  # kept outside tmp_path because the server user cannot reach it
            shutil.rmtree(pg_data.resolve(), ignore_errors=True)
    assert all(row.pid is None for row in status(state))
    assert not any(procs.port_open(p) for p in (kafka, controller, postgres, minio, console))


def test_a_server_that_dies_is_reported_with_its_log_tail(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    pid = procs.spawn(state, "crashy", ["sh", "-c", "echo starting; echo 'FATAL: bad config line 3' >&2; exit 3"])
    with pytest.raises(StackError) as error:
        procs.wait_until(lambda: False, what="crashy", timeout=30, pid=pid, log=state.log("crashy"))
    assert "crashy exited before it was ready" in str(error.value)
    assert "FATAL: bad config line 3" in str(error.value)


def test_a_server_that_never_gets_ready_times_out_with_its_log_tail(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    pid = procs.spawn(state, "slow", ["sh", "-c", "echo still warming up; exec sleep 60"])
    try:
        with pytest.raises(StackError, match=r"slow was not ready after 1 s(.|\n)*still warming up"):
            procs.wait_until(lambda: False, what="slow", timeout=1, pid=pid, log=state.log("slow"))
        assert procs.running_pid(state, "slow", "sleep 60") == pid
    finally:
        procs.terminate(pid, signal.SIGTERM, timeout=5)
    assert procs.running_pid(state, "slow", "sleep 60") is None


def test_a_port_taken_by_someone_else_is_refused_with_a_way_out(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = MinioServer(StateDir(tmp_path), Ports(minio=port, minio_console=free_ports(1)[0]), None, None)
        with pytest.raises(StackError, match=rf"port {port} .* taken(.|\n)*VOXTRAIN_STACK_PORT_OFFSET"):
            server.start()


def test_secrets_hold_a_signing_key_pair_and_an_older_stacks_file_is_completed(tmp_path) -> None:
    state = StateDir(tmp_path)
    state.create()
    older = {"postgres_password": "pw", "minio_access_key": "ak", "minio_secret_key": "sk", "jwt_secret": "old"}
    (tmp_path / "secrets.json").write_text(json.dumps(older))
    secrets = state.secrets()
    assert (secrets.postgres_password, secrets.minio_access_key, secrets.minio_secret_key) == ("pw", "ak", "sk")
    assert public_key_of(secrets.signing_private_key) == secrets.signing_public_key
    saved = json.loads((tmp_path / "secrets.json").read_text())
    assert "jwt_secret" not in saved and saved["signing_public_key"] == secrets.signing_public_key
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert state.secrets() == secrets  # kept from now on
