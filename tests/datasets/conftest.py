"""Fixtures of the datasets tests: one running service per module (isolated by schema, topics, bucket)."""

from __future__ import annotations

import io
import uuid
from dataclasses import asdict
from datetime import UTC, datetime

import pytest

from tests.support import auth_headers, eventually, publish, running, settings_for
from voxtrain_datasets.bootstrap import Datasets as Built
from voxtrain_datasets.bootstrap import assemble
from voxtrain_datasets.handlers.sweeping import sweep
from voxtrain_datasets.storage import S3ObjectStore
from voxtrain_shared import events as ev
from voxtrain_shared.settings import DatasetsSettings
from voxtrain_shared.storage import make_client
from voxtrain_shared.vocab import ModelStatus

MiB = 1024**2
#: Small limits so tests cross them with small files: a 12 MiB cap and 5 MiB parts (S3's minimum).
LIMIT = 12 * MiB
PART = 5 * MiB


class SpyStore(S3ObjectStore):
    """The real store, remembering every key it started writing (to prove nothing is left there) and counting
    the objects it read back whole."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.written: list[str] = []
        self.read_backs = 0  #: objects read whole to hash them

    async def sha256_of(self, key):
        self.read_backs += 1
        return await super().sha256_of(key)

    async def put(self, key, data, content_type):
        self.written.append(key)
        await super().put(key, data, content_type)

    async def start_multipart(self, key, content_type, *, checksum=None):
        self.written.append(key)
        return await super().start_multipart(key, content_type, checksum=checksum)

    async def leftovers(self, prefix: str) -> list[str]:
        """Objects under ``prefix`` plus unfinished multipart uploads of any key written under it."""
        found = await self.keys(prefix)
        for key in {k for k in self.written if k.startswith(prefix)}:
            found += [f"{key} (upload {u[:8]})" for u in await self.incomplete_uploads(key)]
        return found


def spy_store(settings: DatasetsSettings) -> SpyStore:
    return SpyStore(make_client(settings.minio), make_client(settings.minio, public=True), settings.minio.bucket)


class Datasets:
    """A running datasets service, its HTTP client, and helpers to drive it as other services would."""

    def __init__(self, built: Built, store: SpyStore, client, stack) -> None:
        self.service, self.deps, self.store, self.client, self.stack = built.service, built.deps, store, client, stack
        self.topics = built.service.topics

    async def new_model(self, tenant: str = "acme", status: ModelStatus | None = None) -> uuid.UUID:
        """Announce a model as the models service would, and wait until this service knows it."""
        mid = uuid.uuid4()
        await publish(
            self.stack.kafka_bootstrap,
            self.topics.models,
            ev.wrap(ev.ModelCreated(name=f"m-{mid.hex[:6]}", language="en-US"), tenant_id=tenant, model_id=mid),
        )
        await self.wait_status(mid, ModelStatus.NOT_RUNNING, tenant)
        if status is not None and status is not ModelStatus.NOT_RUNNING:
            await self.set_status(mid, status, tenant)
        return mid

    async def set_status(self, mid: uuid.UUID, new: ModelStatus, tenant: str = "acme") -> None:
        msg = ev.TrainingStatusChanged(
            old_status=None, new_status=new, status_name=new.name, badge=new.badge, reason="test"
        )
        await publish(self.stack.kafka_bootstrap, self.topics.status, ev.wrap(msg, tenant_id=tenant, model_id=mid))
        await self.wait_status(mid, new, tenant)

    async def wait_status(self, mid: uuid.UUID, status: ModelStatus, tenant: str = "acme") -> None:
        async def seen() -> bool:
            r = await self.client.get(f"/v1/models/{mid}/datasets", headers=auth_headers(tenant))
            return r.status_code == 200 and r.json()["model"]["status"] == status.value

        await eventually(seen, timeout=30, interval=0.1)

    async def upload(
        self, mid: uuid.UUID, files: list[tuple[str, bytes]], tenant: str = "acme", type_: str | None = None, **kw
    ):
        data = {"type": type_} if type_ is not None else {}
        parts = [("files", (n, io.BytesIO(b), "application/octet-stream")) for n, b in files]  # streamed in chunks
        return await self.client.post(
            f"/v1/models/{mid}/datasets", headers=auth_headers(tenant), data=data, files=parts, **kw
        )

    async def listing(self, mid: uuid.UUID, tenant: str = "acme") -> list[dict]:
        r = await self.client.get(f"/v1/models/{mid}/datasets", headers=auth_headers(tenant))
        assert r.status_code == 200, r.text
        return r.json()["datasets"]

    def prefix(self, mid: uuid.UUID, tenant: str = "acme") -> str:
        return f"tenants/{tenant}/models/{mid}/"

    async def sweep(self, at_time: datetime | None = None) -> dict[str, int]:
        """One sweeper round as of ``at_time`` (the step the service's sweeper loop runs)."""
        return asdict(await sweep(self.deps, at_time))

    async def pending_objects(self) -> dict[str, bool]:
        """Objects the service tracks (not owned by a dataset), and whether each is abandoned."""
        async with self.deps.uow.reading() as repo:
            return dict(await repo.pending_objects())

    async def handled(self, consumer: str, event_id: uuid.UUID) -> bool:
        """Whether this service's ``consumer`` has handled the message (its inbox has the id)."""
        async with self.service.pool.acquire() as conn:  # the shared inbox table, read as a test
            return bool(
                await conn.fetchval("SELECT 1 FROM inbox WHERE consumer=$1 AND event_id=$2", consumer, event_id)
            )

    async def object_bytes(self, key: str) -> bytes:
        def read() -> bytes:
            resp = self.store._client.get_object(self.store.bucket, key)
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()

        return await self.store.run(read)


@pytest.fixture(scope="module")
async def datasets(stack):
    settings = settings_for(
        DatasetsSettings, stack, VOXTRAIN_MAX_FILE_BYTES=str(LIMIT), VOXTRAIN_PART_SIZE_BYTES=str(PART)
    )
    store = spy_store(settings)
    built = assemble(settings, store=store, sweep_every=3600)
    async with running(built.service) as client:
        yield Datasets(built, store, client, stack)


def at(seconds_from_now: float) -> datetime:
    from datetime import timedelta

    return datetime.now(UTC) + timedelta(seconds=seconds_from_now)
