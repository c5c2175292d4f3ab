"""Helpers for tests: unique names, settings built from the stack, an independent Kafka reader."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer

from voxtrain_shared.auth import ALL_SCOPES, Scope, generate_key_pair, issue_token
from voxtrain_shared.settings import AuthSettings

#: The test services' token keys: generated per test process (no key in the repository). Services get only the
#: public key (as in production); tests sign their tokens with the private one, like the identity service.
PRIVATE_KEY, PUBLIC_KEY = generate_key_pair()
#: Settings that verify what the test services verify (no private key).
VERIFY_AUTH = AuthSettings(public_key=PUBLIC_KEY)
#: Settings that sign tokens the test services accept (what the identity service and the operator CLI hold).
ISSUER_AUTH = AuthSettings(public_key=PUBLIC_KEY, private_key=PRIVATE_KEY)


def free_ports(n: int) -> list[int]:
    """``n`` TCP ports on 127.0.0.1 that were free a moment ago (for a server of a test's own)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


#: This test process's mark inside every name :func:`unique` makes: at the end of the session the Kafka topics that
#: carry it are deleted (``_stack.forget``), and no other run's, on a stack shared by several runs.
RUN_TAG = uuid.uuid4().hex[:6]


def unique(prefix: str) -> str:
    """A name no other test (or test run) uses: tests isolate by names, not teardown."""
    return f"{prefix}_{RUN_TAG}{uuid.uuid4().hex[:8]}"


def service_env(stack: Any, **extra: str) -> dict[str, str]:
    """Environment for a service's settings pointing at the test stack."""
    env = {
        "VOXTRAIN_ENVIRONMENT": "test",
        "VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "VOXTRAIN_POSTGRES__DSN": stack.postgres_dsn,
        "VOXTRAIN_MINIO__ENDPOINT": stack.minio_endpoint,
        "VOXTRAIN_MINIO__ACCESS_KEY": stack.minio_access_key,
        "VOXTRAIN_MINIO__SECRET_KEY": stack.minio_secret_key,
        "VOXTRAIN_AUTH__PUBLIC_KEY": PUBLIC_KEY,
        # Every test has its own topics; one partition each keeps a whole run under the broker's open-file limit
        # (the chaos suite runs its services with the default partitions and two replicas).
        "VOXTRAIN_KAFKA__TOPIC_PARTITIONS": "1",
    }
    env.update(extra)
    return env


class TopicReader:
    """An independent aiokafka consumer in its own group, reading topics from the beginning."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=unique("reader"),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.records: list[Any] = []

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def read(self, count: int, timeout: float = 30.0) -> list[Any]:
        """Wait until at least ``count`` records arrived; return all seen so far."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.records) < count:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"expected {count} records, got {len(self.records)}")
            batch = await self._consumer.getmany(timeout_ms=int(min(left, 1.0) * 1000))
            for recs in batch.values():
                self.records.extend(recs)
        return self.records

    async def until(self, predicate: Any, timeout: float = 30.0) -> list[Any]:
        """Read until ``predicate(records)`` is true (or fail after ``timeout``)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self.records):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not met within {timeout}s; got {len(self.records)} records")
            batch = await self._consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                self.records.extend(recs)
        return self.records

    async def settle(self, seconds: float = 2.0) -> list[Any]:
        """Keep reading for ``seconds`` (to prove nothing more arrives)."""
        end = asyncio.get_running_loop().time() + seconds
        while (left := end - asyncio.get_running_loop().time()) > 0:
            batch = await self._consumer.getmany(timeout_ms=int(left * 1000))
            for recs in batch.values():
                self.records.extend(recs)
        return self.records


def auth_headers(tenant: str, scopes: frozenset[Scope] = ALL_SCOPES, **claims: Any) -> dict[str, str]:
    """Bearer token headers for ``tenant`` (every scope unless told), signed with the test services' key."""
    return {"Authorization": "Bearer " + issue_token(ISSUER_AUTH, tenant, scopes=scopes, **claims)}


class running:
    """``async with running(service) as client``: start a voxtrain Service, yield an httpx client on its app."""

    def __init__(self, service: Any) -> None:
        self.service = service

    async def __aenter__(self) -> Any:
        import httpx

        await self.service.start()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.service.app), base_url="http://testserver", timeout=60
        )
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self.service.stop()


def settings_for(cls: Any, stack: Any, **extra: str) -> Any:
    """Settings of ``cls`` for the test stack with a unique schema and topic namespace (isolation)."""
    import os
    from unittest import mock

    isolated = {
        "VOXTRAIN_POSTGRES__SCHEMA": unique("s"),
        "VOXTRAIN_KAFKA__TOPIC_NAMESPACE": unique("ns"),
        "VOXTRAIN_MINIO__BUCKET": unique("b").replace("_", "-"),
    }
    env = service_env(stack, **{**isolated, **extra})
    with mock.patch.dict(os.environ, env):
        return cls()


class storage_users:
    """``with storage_users(stack, bucket) as env``: the bucket plus one least-privileged MinIO user per storage
    service (voxtrain_shared.storage_access), provisioned with the stack's administrator credential; ``env[svc]``
    holds the settings that give ``svc`` its own credential. Users and policies are removed afterwards."""

    def __init__(self, stack: Any, bucket: str) -> None:
        from voxtrain_shared.settings import MinioSettings
        from voxtrain_shared.storage_access import STORAGE_SERVICES, Credential

        self.admin = MinioSettings(
            endpoint=stack.minio_endpoint,
            access_key=stack.minio_access_key,
            secret_key=stack.minio_secret_key,
            bucket=bucket,
        )
        self.credentials = {svc: Credential.generate(svc) for svc in STORAGE_SERVICES}

    def settings(self, service: str, credential: Any = None) -> Any:
        """MinIO settings with ``service``'s own credential (or ``credential``)."""
        c = credential or self.credentials[service]
        own = {"access_key": c.access_key, "secret_key": c.secret_key}
        return self.admin.model_validate({**self.admin.model_dump(), **own})

    def env(self, service: str) -> dict[str, str]:
        c = self.credentials[service]
        return {"VOXTRAIN_MINIO__ACCESS_KEY": c.access_key, "VOXTRAIN_MINIO__SECRET_KEY": c.secret_key}

    def __enter__(self) -> storage_users:
        from voxtrain_shared.storage_access import provision

        provision(self.admin, self.credentials)
        return self

    def __exit__(self, *exc: object) -> None:
        from voxtrain_shared.storage_access import revoke

        revoke(self.admin, [c.access_key for c in self.credentials.values()], services=list(self.credentials))


async def publish(bootstrap: str, topic: str, *envelopes: Any, headers: dict[str, str] | None = None) -> None:
    """Publish envelopes as another service would (plain aiokafka producer)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for env in envelopes:
            await producer.send_and_wait(
                topic, env.to_bytes(), key=env.key(), headers=[(k, v.encode()) for k, v in (headers or {}).items()]
            )
    finally:
        await producer.stop()


async def eventually(probe: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Await ``probe()`` until it returns a truthy value (or fail after ``timeout``)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


class serving:
    """``async with serving(service.app) as url``: the app on a real port of 127.0.0.1 (for clients outside the
    process, such as the ``voxtrain`` command); the service itself is started by :class:`running`."""

    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="off", log_level="warning")
        self._server = uvicorn.Server(config)

    async def __aenter__(self) -> str:
        self._task = asyncio.create_task(self._server.serve())
        await eventually(lambda: asyncio.sleep(0.1, self._server.started))
        return f"http://127.0.0.1:{self.port}"

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        await self._task
