"""Unit tests of the datasets use cases: FakeUnitOfWork + in-memory repository and store (no servers)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta

import pytest

from tests.datasets.fakes import FakeDatasetRepository, FakeObjectStore
from tests.fakes import FakeUnitOfWork
from voxtrain_datasets import consumers
from voxtrain_datasets import domain as d
from voxtrain_datasets.formdata import Field, FileData, FileEnd, FileStart, FormEvent
from voxtrain_datasets.handlers import Deps, deletes, reads, sessions, sweeping, uploads
from voxtrain_datasets.storage import StorageUnavailable
from voxtrain_shared import events as ev
from voxtrain_shared.kafka import Handler
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import DatasetType, ErrorCode, ModelStatus

MiB = 1024**2
TENANT = "acme"


class World:
    def __init__(self) -> None:
        self.repo = FakeDatasetRepository()
        self.uow = FakeUnitOfWork(self.repo)
        self.store = FakeObjectStore()
        self.deps = Deps(
            uow=self.uow,
            store=self.store,
            limits=d.Limits(max_file_bytes=12 * MiB, max_files=3, part_size=5 * MiB),
            session_ttl=timedelta(hours=1),
            presign_ttl=timedelta(minutes=5),
            unknown_model_grace=timedelta(0),
        )
        self.ctx = Context(TENANT, uuid.uuid4())

    async def model(self, status: ModelStatus = ModelStatus.NOT_RUNNING) -> uuid.UUID:
        mid = uuid.uuid4()
        await self.repo.model_status_changed(TENANT, mid, status, datetime.now(UTC))
        return mid

    async def deliver(self, consumer: Handler, mid: uuid.UUID, *messages: ev.Message) -> None:
        """Hand ``messages`` about ``mid`` to a consumer as Kafka would (each twice: redelivery)."""
        for msg in messages:
            env = ev.wrap(msg, tenant_id=TENANT, model_id=mid)
            await consumer(env)
            await consumer(env)


@pytest.fixture
def w() -> World:
    return World()


async def form(*files: tuple[str, bytes], type_: str | None = None) -> AsyncGenerator[FormEvent, None]:
    if type_ is not None:
        yield Field("type", type_)
    for name, data in files:
        yield FileStart("files", name, "application/octet-stream")
        yield FileData(data)
        yield FileEnd()


async def test_a_form_upload_records_every_file_and_publishes_one_batch(w: World) -> None:
    mid = await w.model()
    saved = await uploads.upload_form(w.deps, w.ctx, mid, None, form(("a.txt", b"words"), ("b.wav", b"RIFF")))
    assert [ds.type for ds in saved] == [DatasetType.TRANSCRIPT, DatasetType.AUDIO]
    assert {ds.object_key for ds in saved} == set(w.store.objects)
    assert w.store.objects[saved[0].object_key] == b"words"
    assert saved[0].sha256 == hashlib.sha256(b"words").hexdigest()
    msgs = w.uow.messages(ev.DatasetUploaded)
    assert [m.dataset.dataset_id for m in msgs if isinstance(m, ev.DatasetUploaded)] == [ds.id for ds in saved]
    assert all(isinstance(m, ev.DatasetUploaded) and m.batch == [ds.id for ds in saved] for m in msgs)
    assert w.repo.pending == {}  # every staged object now belongs to a record


async def test_a_refused_file_keeps_nothing_of_the_upload(w: World) -> None:
    mid = await w.model()
    with pytest.raises(d.Rejected) as err:
        await uploads.upload_form(w.deps, w.ctx, mid, None, form(("a.txt", b"words"), ("evil.exe", b"MZ")))
    assert err.value.code is ErrorCode.VALIDATION_FAILED
    assert w.store.objects == {} and w.repo.datasets == {} and w.uow.emitted == []
    assert w.repo.pending == {}


async def test_storage_down_mid_upload_leaves_the_objects_to_the_sweeper(w: World) -> None:
    mid = await w.model()

    async def dying() -> AsyncGenerator[FormEvent, None]:
        async for event in form(("a.txt", b"words")):
            yield event
        w.store.down = True
        yield FileStart("files", "b.txt", "text/plain")
        yield FileData(b"more")
        yield FileEnd()

    with pytest.raises(StorageUnavailable):
        await uploads.upload_form(w.deps, w.ctx, mid, None, dying())
    assert w.repo.datasets == {} and w.uow.emitted == []
    assert len(w.repo.pending) == 2 and all(p.abandoned for p in w.repo.pending.values())  # both files
    w.store.down = False
    assert (await sweeping.sweep(w.deps)).objects == 2
    assert w.store.objects == {} and w.repo.pending == {}


@pytest.mark.parametrize(
    "status,code",
    [
        (ModelStatus.READY_TO_RUN, ErrorCode.MODEL_LOCKED),
        (ModelStatus.RUNNING, ErrorCode.MODEL_LOCKED),
        (ModelStatus.SUCCESS, ErrorCode.INVALID_STATUS),
    ],
)
async def test_a_locked_or_final_model_refuses_uploads_and_deletes(
    w: World, status: ModelStatus, code: ErrorCode
) -> None:
    mid = await w.model()
    [ds] = await uploads.upload_form(w.deps, w.ctx, mid, None, form(("a.txt", b"words")))
    await w.repo.model_status_changed(TENANT, mid, status, datetime.now(UTC))
    with pytest.raises(d.Rejected) as err:
        await uploads.upload_form(w.deps, w.ctx, mid, None, form(("b.txt", b"more")))
    assert err.value.code is code
    with pytest.raises(d.Rejected) as err:
        await deletes.delete_dataset(w.deps, w.ctx, mid, ds.id)
    assert err.value.code is code
    assert list(w.repo.datasets) == [ds.id]


async def test_an_unknown_model_is_not_found(w: World) -> None:
    with pytest.raises(d.Rejected) as err:
        await reads.list_datasets(w.deps, TENANT, uuid.uuid4())
    assert err.value.code is ErrorCode.NOT_FOUND


async def test_deleting_a_dataset_publishes_it_and_removes_its_object(w: World) -> None:
    mid = await w.model()
    [ds] = await uploads.upload_form(w.deps, w.ctx, mid, None, form(("a.wav", b"RIFF")))
    await deletes.delete_dataset(w.deps, w.ctx, mid, ds.id)
    [deleted] = w.uow.messages(ev.DatasetDeleted)
    assert deleted == ev.DatasetDeleted(dataset_id=ds.id, dataset_type=DatasetType.AUDIO)
    assert w.store.objects == {} and w.repo.pending == {}
    assert (await reads.list_datasets(w.deps, TENANT, mid))[1] == []


async def test_a_resumable_upload_completes_once(w: World) -> None:
    mid = await w.model()
    data = b"x" * (6 * MiB)
    st = await sessions.start_direct_upload(w.deps, w.ctx, mid, "big.flac", len(data), "auto")
    assert st.missing == [1, 2] and len(st.urls) == 2
    s = st.session
    await w.store.upload_part(s.object_key, s.s3_upload_id, 1, data[: 5 * MiB])
    await w.store.upload_part(s.object_key, s.s3_upload_id, 2, data[5 * MiB :])
    ds, created = await sessions.complete_direct_upload(w.deps, w.ctx, mid, s.id, hashlib.sha256(data).hexdigest())
    assert created and ds.size == len(data) and ds.source == "direct"
    again, created = await sessions.complete_direct_upload(w.deps, w.ctx, mid, s.id, None)
    assert not created and again.id == ds.id
    assert len(w.uow.messages(ev.DatasetUploaded)) == 1


async def test_a_wrong_hash_discards_the_resumable_upload(w: World) -> None:
    mid = await w.model()
    st = await sessions.start_direct_upload(w.deps, w.ctx, mid, "a.txt", 5, None)
    await w.store.upload_part(st.session.object_key, st.session.s3_upload_id, 1, b"hello")
    with pytest.raises(d.Rejected) as err:
        await sessions.complete_direct_upload(w.deps, w.ctx, mid, st.session.id, "0" * 64)
    assert err.value.code is ErrorCode.VALIDATION_FAILED
    assert w.store.objects == {} and w.repo.sessions == {} and w.uow.emitted == []


async def test_the_sweeper_aborts_expired_sessions(w: World) -> None:
    mid = await w.model()
    st = await sessions.start_direct_upload(w.deps, w.ctx, mid, "a.txt", 5, None)
    assert (await sweeping.sweep(w.deps)).sessions == 0
    swept = await sweeping.sweep(w.deps, datetime.now(UTC) + timedelta(hours=2))
    assert swept.sessions == 1
    assert w.repo.sessions == {} and await w.store.incomplete_uploads(st.session.object_key) == []


async def test_a_verdict_for_a_deleted_dataset_changes_nothing(w: World) -> None:
    mid = await w.model()
    [ds] = await uploads.upload_form(w.deps, w.ctx, mid, None, form(("a.wav", b"RIFF")))
    await deletes.delete_dataset(w.deps, w.ctx, mid, ds.id)
    await w.deliver(
        consumers.validation(w.uow),
        mid,
        ev.ValidationPassed(dataset_id=ds.id, dataset_type=ds.type, file_name=ds.file_name),
        ev.ValidationFailed(
            dataset_id=ds.id,
            dataset_type=ds.type,
            file_name=ds.file_name,
            error=ev.ErrorInfo(code=ErrorCode.INVALID_AUDIO_FORMAT, message="late"),
        ),
    )
    await w.deliver(
        consumers.published(w.uow),
        mid,
        ev.DatasetUploaded(
            dataset=ev.DatasetObject(
                dataset_id=ds.id,
                dataset_type=ds.type,
                file_name=ds.file_name,
                bucket=ds.bucket,
                object_key=ds.object_key,
                size=ds.size,
                sha256=ds.sha256,
            )
        ),
    )
    assert len(w.uow.claimed) == 3  # each handled once, its redelivery skipped
    assert w.repo.datasets == {}


async def test_the_newest_verdict_wins(w: World) -> None:
    mid = await w.model()
    [ds] = await uploads.upload_form(w.deps, w.ctx, mid, None, form(("a.wav", b"RIFF")))
    passed = ev.wrap(
        ev.ValidationPassed(dataset_id=ds.id, dataset_type=ds.type, file_name=ds.file_name),
        tenant_id=TENANT,
        model_id=mid,
    )
    older = ev.wrap(
        ev.ValidationFailed(
            dataset_id=ds.id,
            dataset_type=ds.type,
            file_name=ds.file_name,
            error=ev.ErrorInfo(code=ErrorCode.INVALID_AUDIO_FORMAT, message="old"),
        ),
        tenant_id=TENANT,
        model_id=mid,
    )
    older = older.model_copy(update={"occurred_at": passed.occurred_at - timedelta(seconds=1)})
    await consumers.validation(w.uow)(passed)
    await consumers.validation(w.uow)(older)
    got = await reads.get_dataset(w.deps, TENANT, mid, ds.id)
    assert got.status is d.DatasetStatus.VALID and got.validation is not None
    assert got.validation["result"] == "passed"


async def test_late_facts_do_not_revive_a_deleted_model(w: World) -> None:
    mid = await w.model()
    [ds] = await uploads.upload_form(w.deps, w.ctx, mid, None, form(("a.wav", b"RIFF")))
    await w.deliver(consumers.models(w.uow), mid, ev.ModelDeleted())
    assert w.repo.pending[ds.object_key].abandoned  # its object is the sweeper's now
    await w.deliver(consumers.models(w.uow), mid, ev.ModelCreated(name="again", language="en-US"))
    await w.deliver(
        consumers.status(w.uow),
        mid,
        ev.TrainingStatusChanged(
            old_status=None, new_status=ModelStatus.FAILED, status_name="FAILED", badge="red", reason="late"
        ),
    )
    with pytest.raises(d.Rejected) as err:
        await uploads.upload_form(w.deps, w.ctx, mid, None, form(("b.txt", b"x")))
    assert err.value.code is ErrorCode.NOT_FOUND
