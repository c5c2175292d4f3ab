"""Unit tests of the datasets use cases: FakeUnitOfWork + in-memory repository and store (no servers)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta

import pytest

from tests.datasets.fakes import CRC32C, SHA256, FakeDatasetRepository, FakeObjectStore, part_checksum
from tests.fakes import FakeUnitOfWork
from voxtrain_datasets import consumers
from voxtrain_datasets import domain as d
from voxtrain_datasets.formdata import Field, FileData, FileEnd, FileStart, FormEvent
from voxtrain_datasets.handlers import Deps, deletes, reads, sessions, sweeping, uploads
from voxtrain_datasets.storage import PartRefused, StorageUnavailable
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


async def send_parts(w: World, s: d.UploadSession, data: bytes, checksums: bool = True) -> dict[int, str]:
    """PUT every part as an uploader would (with its checksum); returns the checksums sent."""
    sent: dict[int, str] = {}
    for n in range(1, s.part_count + 1):
        part = data[(n - 1) * s.part_size : n * s.part_size]
        sent[n] = part_checksum(part, s.checksum_algorithm)
        await w.store.upload_part(
            s.object_key, s.s3_upload_id, n, part, sent[n] if checksums else None, s.checksum_algorithm
        )
    return sent


async def test_a_resumable_upload_completes_once_without_reading_the_object_back(w: World) -> None:
    mid = await w.model()
    data = b"x" * (6 * MiB)
    st = await sessions.start_direct_upload(w.deps, w.ctx, mid, "big.flac", len(data), "auto")
    assert st.missing == [1, 2] and len(st.urls) == 2
    s = st.session
    assert w.store.checksummed[s.s3_upload_id] is SHA256  # storage demands and verifies a checksum per part
    sent = await send_parts(w, s, data)
    digest = hashlib.sha256(data).hexdigest()
    ds, created = await sessions.complete_direct_upload(w.deps, w.ctx, mid, d.Completion(s.id, digest.upper(), sent))
    assert created and (ds.size, ds.sha256, ds.source) == (len(data), digest, "direct")
    assert w.store.read_backs == 0 and w.store.objects[s.object_key] == data
    again, created = await sessions.complete_direct_upload(w.deps, w.ctx, mid, d.Completion(s.id))
    assert not created and again.id == ds.id
    assert len(w.uow.messages(ev.DatasetUploaded)) == 1


async def test_without_a_file_hash_the_object_is_read_once_to_compute_it(w: World) -> None:
    mid = await w.model()
    st = await sessions.start_direct_upload(w.deps, w.ctx, mid, "a.txt", 5, None)
    await send_parts(w, st.session, b"hello")
    ds, _ = await sessions.complete_direct_upload(w.deps, w.ctx, mid, d.Completion(st.session.id))
    assert ds.sha256 == hashlib.sha256(b"hello").hexdigest() and w.store.read_backs == 1


async def test_a_part_checksum_that_differs_from_storage_is_refused_and_the_upload_stays_open(w: World) -> None:
    mid = await w.model()
    data = b"y" * (6 * MiB)
    st = await sessions.start_direct_upload(w.deps, w.ctx, mid, "big.flac", len(data), "auto")
    sent = await send_parts(w, st.session, data)
    told = d.Completion(st.session.id, hashlib.sha256(data).hexdigest(), {**sent, 2: part_checksum(b"other")})
    with pytest.raises(d.Rejected) as err:
        await sessions.complete_direct_upload(w.deps, w.ctx, mid, told)
    assert err.value.code is ErrorCode.PART_CHECKSUM_MISMATCH and "part 2" in err.value.message
    assert err.value.details["parts"][0]["stored"] == sent[2]
    assert w.uow.emitted == [] and w.repo.sessions[st.session.id].state == "open"  # resumable: send part 2 again
    ds, created = await sessions.complete_direct_upload(w.deps, w.ctx, mid, d.Completion(st.session.id, None, sent))
    assert created and ds.size == len(data)


async def test_parts_stored_without_a_checksum_are_refused_and_listed_as_missing(w: World) -> None:
    """An upload opened before part checksums (an older session) has parts storage did not verify."""
    mid = await w.model()
    st = await sessions.start_direct_upload(w.deps, w.ctx, mid, "big.flac", 6 * MiB, "auto")
    s = st.session
    del w.store.checksummed[s.s3_upload_id]  # as storage has sessions opened before the change
    await send_parts(w, s, b"z" * (6 * MiB), checksums=False)
    with pytest.raises(d.Rejected) as err:
        await sessions.complete_direct_upload(w.deps, w.ctx, mid, d.Completion(s.id, "0" * 64))
    assert err.value.code is ErrorCode.PART_CHECKSUM_MISSING
    assert err.value.details == {"parts": [1, 2], "checksum_algorithm": "SHA256"}
    assert "x-amz-checksum-sha256" in err.value.message and w.repo.sessions[s.id].state == "open"
    again = await sessions.get_direct_upload(w.deps, TENANT, mid, s.id)  # so a resuming uploader sends them again
    assert again.missing == [1, 2] and [u.number for u in again.urls] == [1, 2]
    await send_parts(w, s, b"z" * (6 * MiB))
    ds, _ = await sessions.complete_direct_upload(w.deps, w.ctx, mid, d.Completion(s.id, "0" * 64))
    assert ds.sha256 == "0" * 64  # as the uploader gave it: recorded, not recomputed


async def test_part_urls_can_sign_each_part_checksum_while_the_session_is_open(w: World) -> None:
    mid = await w.model()
    s = (await sessions.start_direct_upload(w.deps, w.ctx, mid, "big.flac", 6 * MiB, "auto")).session
    c = part_checksum(b"z" * MiB)
    _, [url] = await sessions.sign_parts(w.deps, TENANT, mid, s.id, {2: c}, SHA256)
    assert (url.number, url.size) == (2, MiB) and url.url.endswith(f"&x-amz-checksum-sha256={c}")
    with pytest.raises(d.Rejected) as err:
        await sessions.sign_parts(w.deps, TENANT, mid, s.id, {1: c, 3: c})
    assert err.value.code is ErrorCode.VALIDATION_FAILED and err.value.details == {"parts": [3], "part_count": 2}
    with pytest.raises(d.Rejected) as err:
        await sessions.sign_parts(w.deps, "globex", mid, s.id, {1: c})
    assert err.value.code is ErrorCode.NOT_FOUND


async def test_a_session_may_choose_crc32c_part_checksums_and_completes_on_them(w: World) -> None:
    mid = await w.model()
    data = b"c" * (6 * MiB)
    st = await sessions.start_direct_upload(w.deps, w.ctx, mid, "big.flac", len(data), "auto", CRC32C)
    s = st.session
    assert s.checksum_algorithm is CRC32C and w.repo.sessions[s.id].checksum_algorithm is CRC32C
    assert w.store.checksummed[s.s3_upload_id] is CRC32C  # the multipart upload is opened with it
    with pytest.raises(PartRefused):  # a SHA-256 part checksum does not do for a CRC32C upload
        await w.store.upload_part(s.object_key, s.s3_upload_id, 1, data[:MiB], part_checksum(data[:MiB]), SHA256)
    sent = await send_parts(w, s, data)
    assert sent[2] == part_checksum(data[5 * MiB :], CRC32C) and len(sent[2]) == 8
    digest = hashlib.sha256(data).hexdigest()
    wrong = d.Completion(s.id, digest, {**sent, 2: part_checksum(b"other", CRC32C)}, CRC32C)
    with pytest.raises(d.Rejected) as err:
        await sessions.complete_direct_upload(w.deps, w.ctx, mid, wrong)
    assert err.value.code is ErrorCode.PART_CHECKSUM_MISMATCH and "CRC32C differs" in err.value.message
    assert err.value.details["parts"][0]["stored"] == sent[2]
    sha_sums = {n: part_checksum(data[(n - 1) * s.part_size : n * s.part_size]) for n in sent}
    with pytest.raises(d.Rejected) as err:  # checksums of another algorithm than the session's
        await sessions.complete_direct_upload(w.deps, w.ctx, mid, d.Completion(s.id, digest, sha_sums, SHA256))
    assert err.value.code is ErrorCode.VALIDATION_FAILED and "checksum_crc32c, not checksum_sha256" in err.value.message
    assert w.repo.sessions[s.id].state == "open" and w.uow.emitted == []
    ds, created = await sessions.complete_direct_upload(w.deps, w.ctx, mid, d.Completion(s.id, digest, sent, CRC32C))
    assert created and (ds.size, ds.sha256) == (len(data), digest)  # the dataset's identity stays the SHA-256
    assert w.store.read_backs == 0 and w.store.objects[s.object_key] == data


async def test_crc32c_parts_stored_without_a_checksum_are_refused_naming_the_crc32c_header(w: World) -> None:
    mid = await w.model()
    s = (await sessions.start_direct_upload(w.deps, w.ctx, mid, "big.flac", 6 * MiB, "auto", CRC32C)).session
    del w.store.checksummed[s.s3_upload_id]  # storage that took parts without a checksum
    await send_parts(w, s, b"z" * (6 * MiB), checksums=False)
    with pytest.raises(d.Rejected) as err:
        await sessions.complete_direct_upload(w.deps, w.ctx, mid, d.Completion(s.id, "0" * 64))
    assert err.value.code is ErrorCode.PART_CHECKSUM_MISSING
    assert err.value.details == {"parts": [1, 2], "checksum_algorithm": "CRC32C"}
    assert "x-amz-checksum-crc32c" in err.value.message
    assert (await sessions.get_direct_upload(w.deps, TENANT, mid, s.id)).missing == [1, 2]


async def test_part_urls_of_a_crc32c_session_sign_its_crc32c(w: World) -> None:
    mid = await w.model()
    s = (await sessions.start_direct_upload(w.deps, w.ctx, mid, "big.flac", 6 * MiB, "auto", CRC32C)).session
    c = part_checksum(b"z" * MiB, CRC32C)
    session, [url] = await sessions.sign_parts(w.deps, TENANT, mid, s.id, {2: c}, CRC32C)
    assert session.checksum_algorithm is CRC32C and url.url.endswith(f"&x-amz-checksum-crc32c={c}")
    with pytest.raises(d.Rejected) as err:
        await sessions.sign_parts(w.deps, TENANT, mid, s.id, {2: part_checksum(b"z" * MiB)}, SHA256)
    assert err.value.code is ErrorCode.VALIDATION_FAILED and err.value.details == {"checksum_algorithm": "CRC32C"}


async def test_storage_refuses_a_corrupted_part_and_a_part_without_its_checksum(w: World) -> None:
    mid = await w.model()
    s = (await sessions.start_direct_upload(w.deps, w.ctx, mid, "a.txt", 5, None)).session
    with pytest.raises(PartRefused):
        await w.store.upload_part(s.object_key, s.s3_upload_id, 1, b"hellO", part_checksum(b"hello"))
    with pytest.raises(PartRefused):
        await w.store.upload_part(s.object_key, s.s3_upload_id, 1, b"hello")
    assert await w.store.list_parts(s.object_key, s.s3_upload_id) == []


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
