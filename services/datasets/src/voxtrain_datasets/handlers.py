"""Use cases of the datasets service. Dependencies come in as parameters (:class:`Deps`, :class:`Tx`).

Records and their events are written in one transaction (outbox); consumers record the handled
message in the inbox in that transaction. Bytes go to storage *before* that transaction, so every
object written is first noted in ``pending_objects``: a failed or abandoned upload leaves nothing
behind, even when storage or this process dies half-way (the sweeper finishes the clean-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from voxtrain_shared import events as ev
from voxtrain_shared import outbox
from voxtrain_shared.logs import get_logger
from voxtrain_shared.metrics import UPLOAD_BYTES, UPLOAD_SECONDS
from voxtrain_shared.uow import Context, Tx, UnitOfWork
from voxtrain_shared.vocab import DatasetType, ErrorCode, ModelStatus

from . import domain as d
from . import repository as repo
from .formdata import Field, FileData, FileEnd, FileStart, FormEvent
from .storage import ObjectStore, ObjectTooLarge, ReceivedPart, StorageUnavailable, StreamingWriter, UploadGone

log = get_logger(__name__)
#: A model id no event has mentioned yet may be one created a moment ago (its ModelCreated is on its
#: way through Kafka): wait this long for it before answering not_found.
UNKNOWN_MODEL_GRACE = timedelta(seconds=3)
#: A completion that has not finished after this long is presumed dead and may be taken over.
COMPLETION_STALL = timedelta(minutes=10)
DOWNLOAD_TTL = timedelta(minutes=15)


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWork
    store: ObjectStore
    limits: d.Limits
    session_ttl: timedelta
    presign_ttl: timedelta
    writer: Callable[..., StreamingWriter] = StreamingWriter
    unknown_model_grace: timedelta = UNKNOWN_MODEL_GRACE


@dataclass(frozen=True)
class PartUrl:
    number: int
    size: int
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class SessionState:
    session: d.UploadSession
    received: list[ReceivedPart]
    missing: list[int]
    urls: list[PartUrl]
    dataset: d.Dataset | None = None


def now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- guards


async def _status(deps: Deps, tenant_id: str, model_id: uuid.UUID) -> ModelStatus | None:
    """The projected status; a model no event has mentioned yet gets a short grace to appear."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.unknown_model_grace.total_seconds()
    while True:
        async with deps.uow.reading() as conn:
            status = await repo.model_status(conn, tenant_id, model_id)
            known = status is not None or await repo.model_known(conn, model_id)
            if known and status is None:  # it may have arrived between the two reads: read it again
                status = await repo.model_status(conn, tenant_id, model_id)
            if known or loop.time() >= deadline:
                if status is None:
                    log.info("model_not_in_projection", model_id=str(model_id),
                             waited=round(deps.unknown_model_grace.total_seconds() - (deadline - loop.time()), 2))
                return status
        await asyncio.sleep(0.1)


async def guard(deps: Deps, tenant_id: str, model_id: uuid.UUID, conn: asyncpg.Connection | None = None) -> None:
    """The model exists for the tenant and accepts dataset changes (given ``conn``: locked until commit)."""
    if conn is not None:
        d.check_model_accepts_changes(model_id, await repo.model_status(conn, tenant_id, model_id, lock=True))
        return
    d.check_model_accepts_changes(model_id, await _status(deps, tenant_id, model_id))


async def model_status(deps: Deps, tenant_id: str, model_id: uuid.UUID) -> ModelStatus:
    """The model's status (for reads); not found when unknown, deleted or another tenant's."""
    status = await _status(deps, tenant_id, model_id)
    if status is None:
        raise d.model_not_found(model_id)
    return status


# ---------------------------------------------------------------- recording datasets (both upload paths)


def _uploaded(ds: d.Dataset, batch: list[uuid.UUID]) -> ev.DatasetUploaded:
    return ev.DatasetUploaded(
        dataset=ev.DatasetObject(dataset_id=ds.id, dataset_type=ds.type, file_name=ds.file_name, bucket=ds.bucket,
                                 object_key=ds.object_key, size=ds.size, sha256=ds.sha256),
        content_type=ds.content_type,
        batch=batch,
    )


async def record(deps: Deps, ctx: Context, model_id: uuid.UUID, datasets: list[d.Dataset],
                 completed_sessions: list[uuid.UUID] = ()) -> list[d.Dataset]:  # type: ignore[assignment]
    """Record stored files as datasets and publish DatasetUploaded for each, in one transaction."""
    async with deps.uow(ctx) as tx:
        await guard(deps, ctx.tenant_id, model_id, tx.conn)  # the status may have changed while bytes flowed
        saved = [await repo.insert_dataset(tx.conn, ds) for ds in datasets]
        await repo.unstage_objects(tx.conn, [ds.object_key for ds in saved])
        for session_id in completed_sessions:
            await repo.set_session_state(tx.conn, session_id, "completed")
        batch = [ds.id for ds in saved]
        for ds in saved:
            await tx.emit(_uploaded(ds, batch), model_id)
    for ds in saved:
        log.info("dataset_uploaded", dataset_id=str(ds.id), model_id=str(model_id), dataset_type=ds.type.name,
                 size=ds.size, source=ds.source)
    return saved


async def forget_objects(deps: Deps, keys: list[str], *, storage_down: bool) -> None:
    """Remove objects that must not stay; what cannot be removed now is left to the sweeper."""
    if not keys:
        return
    removed = False
    if not storage_down:
        try:
            for key in keys:
                await deps.store.remove(key)
            removed = True
        except StorageUnavailable:
            pass
    try:
        async with deps.uow.reading() as conn:
            if removed:
                await repo.unstage_objects(conn, keys)  # nothing left to track
            else:
                await repo.abandon_objects(conn, keys)
    except (OSError, asyncpg.PostgresError) as exc:  # still staged: swept once older than the TTL
        log.warning("cleanup_deferred", keys=len(keys), error=repr(exc))


# ---------------------------------------------------------------- streamed form upload


class _NoFile:
    """A file input left empty by a browser: ``filename=""`` and no bytes."""


class FormUpload:
    """One multipart/form-data upload: checks each file as it starts, streams it to storage."""

    def __init__(self, deps: Deps, ctx: Context, model_id: uuid.UUID, query_type: str | None) -> None:
        self.deps, self.ctx, self.model_id = deps, ctx, model_id
        self.type_given = query_type is not None
        self.requested: DatasetType | None = d.parse_requested_type(query_type) if self.type_given else None
        self.stored: list[d.Dataset] = []
        self.started = 0
        self.current: d.Dataset | _NoFile | None = None
        self.writer: StreamingWriter | None = None

    async def handle(self, event: FormEvent) -> None:
        match event:
            case Field(name="type", value=value):
                self._type_field(value)
            case FileStart():
                await self._start(event)
            case FileData(data=data):
                await self._write(data)
            case FileEnd():
                await self._finish()

    def _type_field(self, value: str) -> None:
        if self.started:
            raise d.Rejected(ErrorCode.VALIDATION_FAILED,
                             "Send the 'type' field before the files in the form (or pass ?type=).")
        requested = d.parse_requested_type(value)
        if self.type_given and requested != self.requested:
            raise d.Rejected(ErrorCode.VALIDATION_FAILED, "The 'type' form field and ?type= disagree.")
        self.requested, self.type_given = requested, True

    async def _start(self, part: FileStart) -> None:
        if part.file_name == "":
            self.current = _NoFile()
            return
        self.started += 1
        limits = self.deps.limits
        d.check_file_count(self.started, limits.max_files)
        name = d.display_name(part.file_name)
        dataset_type = d.type_for_file(self.requested, name)
        dataset_id = uuid.uuid4()
        key = d.object_key(self.ctx.tenant_id, self.model_id, dataset_id)
        async with self.deps.uow.reading() as conn:
            await repo.stage_object(conn, key)  # before the first byte is stored
        self.current = d.Dataset(
            id=dataset_id, tenant_id=self.ctx.tenant_id, model_id=self.model_id, type=dataset_type,
            file_name=name, original_name=d.escaped_name(part.file_name), size=0, sha256="",
            content_type=d.content_type_for(name), bucket=self.deps.store.bucket, object_key=key, source="form",
        )
        self.writer = self.deps.writer(
            self.deps.store, key, self.current.content_type, limit=limits.max_file_bytes,
            part_size=d.streaming_part_size(limits.part_size, limits.max_file_bytes))

    async def _write(self, data: bytes | memoryview) -> None:
        if isinstance(self.current, _NoFile):
            if len(data):
                raise d.Rejected(ErrorCode.VALIDATION_FAILED, "A file part has no file name.")
            return
        assert self.writer is not None and isinstance(self.current, d.Dataset)
        try:
            await self.writer.write(data)
        except ObjectTooLarge as exc:
            raise d.file_too_large(self.current.file_name, exc.limit) from None

    async def _finish(self) -> None:
        if isinstance(self.current, d.Dataset) and self.writer is not None:
            obj = await self.writer.finish()
            self.stored.append(replace(self.current, size=obj.size, sha256=obj.sha256))
        self.current, self.writer = None, None

    async def discard(self, *, storage_down: bool) -> None:
        """Leave nothing of this upload behind (now, or through the sweeper)."""
        keys = [ds.object_key for ds in self.stored]
        if self.writer is not None and isinstance(self.current, d.Dataset):
            keys.append(self.current.object_key)
            try:
                await self.writer.abort(storage_down=storage_down)
            except StorageUnavailable:
                storage_down = True
        await forget_objects(self.deps, keys, storage_down=storage_down)


async def upload_form(deps: Deps, ctx: Context, model_id: uuid.UUID, query_type: str | None,
                      form: AsyncIterator[FormEvent]) -> list[d.Dataset]:
    """Stream every file of a form to storage, then record them all at once (or nothing at all)."""
    await guard(deps, ctx.tenant_id, model_id)  # before a byte is read
    upload = FormUpload(deps, ctx, model_id, query_type)
    started = time.perf_counter()
    try:
        async with aclosing(form):  # type: ignore[type-var]
            async for event in form:
                await upload.handle(event)
        d.check_file_count(len(upload.stored), deps.limits.max_files)
        datasets = await record(deps, ctx, model_id, upload.stored)
        UPLOAD_SECONDS.labels(mode="stream").observe(time.perf_counter() - started)
        UPLOAD_BYTES.labels(mode="stream").inc(sum(x.size for x in datasets))
        return datasets
    except BaseException as exc:
        try:
            await asyncio.shield(upload.discard(storage_down=isinstance(exc, StorageUnavailable)))
        except Exception as cleanup:  # the upload's own failure is what the client must see
            log.error("upload_cleanup_failed", error=repr(cleanup))
        raise


# ---------------------------------------------------------------- resumable direct upload


def part_urls(deps: Deps, s: d.UploadSession, numbers: list[int]) -> list[PartUrl]:
    """Presigned PUT URLs for parts, valid for the presign TTL but never past the session's expiry."""
    left = (s.expires_at - now()).total_seconds()
    ttl = timedelta(seconds=max(1, min(deps.presign_ttl.total_seconds(), left)))
    expires = now() + ttl
    return [PartUrl(n, s.plan.part_bytes(n), deps.store.presign_part(s.object_key, s.s3_upload_id, n, ttl), expires)
            for n in numbers]


async def start_direct_upload(deps: Deps, ctx: Context, model_id: uuid.UUID, file_name: str, size: int,
                              type_value: str | None) -> SessionState:
    """Open a multipart upload in storage; the client PUTs the parts to presigned URLs."""
    await guard(deps, ctx.tenant_id, model_id)
    name = d.display_name(file_name)
    dataset_type = d.type_for_file(d.parse_requested_type(type_value), name)
    d.check_size(name, size, deps.limits.max_file_bytes)
    plan = d.plan_parts(size, deps.limits.part_size)
    dataset_id = uuid.uuid4()
    key = d.object_key(ctx.tenant_id, model_id, dataset_id)
    content_type = d.content_type_for(name)
    upload_id = await deps.store.start_multipart(key, content_type)
    created = now()
    session = d.UploadSession(
        id=uuid.uuid4(), tenant_id=ctx.tenant_id, model_id=model_id, dataset_id=dataset_id, type=dataset_type,
        file_name=name, original_name=d.escaped_name(file_name), content_type=content_type, object_key=key,
        s3_upload_id=upload_id, size=size, part_size=plan.part_size, part_count=plan.count, state="open",
        created_at=created, expires_at=created + deps.session_ttl,
    )
    try:
        async with deps.uow.reading() as conn:
            session = await repo.insert_session(conn, session)
    except BaseException:
        await asyncio.shield(deps.store.abort(key, upload_id))
        raise
    log.info("upload_session_opened", session_id=str(session.id), model_id=str(model_id), size=size,
             parts=plan.count)
    numbers = list(range(1, plan.count + 1))
    return SessionState(session, [], numbers, part_urls(deps, session, numbers))


async def _session(deps: Deps, tenant_id: str, model_id: uuid.UUID, session_id: uuid.UUID) -> d.UploadSession:
    async with deps.uow.reading() as conn:
        s = await repo.get_session(conn, tenant_id, model_id, session_id)
    if s is None or (s.state != "completed" and s.expires_at <= now()):
        raise d.Rejected(ErrorCode.NOT_FOUND, f"No upload session {session_id} for this model (it may have expired).")
    return s


async def _dataset_of(deps: Deps, s: d.UploadSession) -> d.Dataset | None:
    async with deps.uow.reading() as conn:
        return await repo.get_dataset(conn, s.tenant_id, s.model_id, s.dataset_id)


async def get_direct_upload(deps: Deps, tenant_id: str, model_id: uuid.UUID, session_id: uuid.UUID) -> SessionState:
    """What storage has received so far, and fresh URLs for the parts still missing."""
    s = await _session(deps, tenant_id, model_id, session_id)
    if s.state == "completed":
        return SessionState(s, [], [], [], await _dataset_of(deps, s))
    try:
        received = await deps.store.list_parts(s.object_key, s.s3_upload_id)
    except UploadGone:  # being completed right now
        received = []
    have = {p.number for p in received}
    missing = [n for n in range(1, s.part_count + 1) if n not in have]
    return SessionState(s, received, missing, part_urls(deps, s, missing) if s.state == "open" else [])


async def _claim(deps: Deps, tenant_id: str, model_id: uuid.UUID,
                 session_id: uuid.UUID) -> tuple[d.UploadSession | None, d.Dataset | None]:
    async with deps.uow.reading() as conn:
        s = await repo.claim_for_completion(conn, tenant_id, model_id, session_id, now() - COMPLETION_STALL)
    if s is not None:
        return s, None
    existing = await _session(deps, tenant_id, model_id, session_id)
    if existing.state == "completed":
        dataset = await _dataset_of(deps, existing)
        if dataset is None:
            raise d.Rejected(ErrorCode.NOT_FOUND, f"Upload {session_id} was completed; its dataset is deleted.")
        return None, dataset
    raise d.Rejected(ErrorCode.CONFLICT, f"Upload {session_id} is being completed by another request.")


async def _assemble(deps: Deps, s: d.UploadSession) -> None:
    """Check the parts against the plan and complete the multipart upload (once)."""
    try:
        received = await deps.store.list_parts(s.object_key, s.s3_upload_id)
    except UploadGone:
        if await deps.store.size_of(s.object_key) == s.size:
            return  # completed by an earlier attempt that failed later
        await _drop_session(deps, s)
        raise d.Rejected(ErrorCode.CONFLICT, "The upload no longer exists in storage; start a new upload.") from None
    d.check_size(s.file_name, sum(p.size for p in received), deps.limits.max_file_bytes)
    d.check_parts(s.plan, {p.number: p.size for p in received})
    await deps.store.complete(s.object_key, s.s3_upload_id, received)


async def complete_direct_upload(deps: Deps, ctx: Context, model_id: uuid.UUID, session_id: uuid.UUID,
                                 sha256: str | None) -> tuple[d.Dataset, bool]:
    """Assemble the object, hash it, record the dataset; returns it and whether it was created now."""
    saved, created = await complete_direct_uploads(deps, ctx, model_id, [(session_id, sha256)])
    return saved[0], created


async def complete_direct_uploads(deps: Deps, ctx: Context, model_id: uuid.UUID,
                                  items: list[tuple[uuid.UUID, str | None]]) -> tuple[list[d.Dataset], bool]:
    """Complete several upload sessions as ONE upload: all their datasets are recorded in one transaction
    (one DatasetUploaded batch), so a model with auto-train waits for all of them. Returns the datasets
    and whether they were created now (False: an earlier call completed every one of them)."""
    d.check_file_count(len(items), deps.limits.max_files)
    claimed: list[d.UploadSession] = []
    done_before: list[d.Dataset] = []
    try:
        for session_id, _ in items:
            s, done = await _claim(deps, ctx.tenant_id, model_id, session_id)
            if s is None:
                assert done is not None
                done_before.append(done)
            else:
                claimed.append(s)
        if done_before and claimed:
            raise d.Rejected(ErrorCode.VALIDATION_FAILED,
                             "Some of these uploads were completed earlier, in another request: complete only "
                             "the ones still open.", {"completed": [str(x.id) for x in done_before]})
        if not claimed:
            return done_before, False
        await guard(deps, ctx.tenant_id, model_id)
        hashes = dict(items)
        datasets = [await _assembled(deps, model_id, s, hashes[s.id]) for s in claimed]
        saved = await record(deps, ctx, model_id, datasets, completed_sessions=[s.id for s in claimed])
        for s, ds in zip(claimed, saved, strict=True):
            UPLOAD_BYTES.labels(mode="multipart").inc(ds.size)
            UPLOAD_SECONDS.labels(mode="multipart").observe((now() - s.created_at).total_seconds())
        return saved, True
    except BaseException:
        for s in claimed:
            try:
                async with deps.uow.reading() as conn:  # someone may try again (a dropped session is simply gone)
                    await repo.set_session_state(conn, s.id, "open")
            except (OSError, asyncpg.PostgresError) as exc:  # a stalled completion is taken over later
                log.warning("session_release_failed", session_id=str(s.id), error=repr(exc))
        raise


async def _assembled(deps: Deps, model_id: uuid.UUID, s: d.UploadSession, sha256: str | None) -> d.Dataset:
    """Complete one session's object in storage and check its size and hash."""
    await _assemble(deps, s)
    size, digest = await deps.store.sha256_of(s.object_key)
    if size != s.size or (sha256 is not None and sha256.lower() != digest):
        await _drop_session(deps, s)
        raise d.Rejected(ErrorCode.VALIDATION_FAILED,
                         f"{s.file_name}: the stored bytes ({size} bytes, sha256 {digest}) are not what was "
                         f"announced ({s.size} bytes, sha256 {sha256 or 'not given'}); the upload was discarded.",
                         {"size": size, "sha256": digest})
    return d.Dataset(
        id=s.dataset_id, tenant_id=s.tenant_id, model_id=model_id, type=s.type, file_name=s.file_name,
        original_name=s.original_name, size=size, sha256=digest, content_type=s.content_type,
        bucket=deps.store.bucket, object_key=s.object_key, source="direct",
    )


async def _drop_session(deps: Deps, s: d.UploadSession) -> None:
    try:
        await deps.store.abort(s.object_key, s.s3_upload_id)
        await deps.store.remove(s.object_key)
    except StorageUnavailable:
        async with deps.uow.reading() as conn:
            await repo.abandon_objects(conn, [s.object_key])
    async with deps.uow.reading() as conn:
        await repo.delete_session(conn, s.id)


async def cancel_direct_upload(deps: Deps, tenant_id: str, model_id: uuid.UUID, session_id: uuid.UUID) -> None:
    """Abort the multipart upload and forget the session (storage clean-up may finish later)."""
    s = await _session(deps, tenant_id, model_id, session_id)
    if s.state != "open":
        raise d.Rejected(ErrorCode.CONFLICT, f"Upload {session_id} is {s.state}; delete the dataset instead."
                         if s.state == "completed" else f"Upload {session_id} is being completed.")
    await _drop_session(deps, s)
    log.info("upload_session_cancelled", session_id=str(s.id))


# ---------------------------------------------------------------- reads, download, delete


async def list_datasets(deps: Deps, tenant_id: str, model_id: uuid.UUID) -> tuple[ModelStatus, list[d.Dataset]]:
    status = await model_status(deps, tenant_id, model_id)
    async with deps.uow.reading() as conn:
        return status, await repo.list_datasets(conn, tenant_id, model_id)


async def get_dataset(deps: Deps, tenant_id: str, model_id: uuid.UUID, dataset_id: uuid.UUID) -> d.Dataset:
    await model_status(deps, tenant_id, model_id)
    async with deps.uow.reading() as conn:
        ds = await repo.get_dataset(conn, tenant_id, model_id, dataset_id)
    if ds is None:
        raise d.Rejected(ErrorCode.NOT_FOUND, f"No dataset {dataset_id} in this model.")
    return ds


async def download_url(deps: Deps, tenant_id: str, model_id: uuid.UUID,
                       dataset_id: uuid.UUID) -> tuple[d.Dataset, str, datetime]:
    """A short-lived presigned GET URL for the dataset's bytes."""
    ds = await get_dataset(deps, tenant_id, model_id, dataset_id)
    ttl = min(DOWNLOAD_TTL, deps.presign_ttl)
    return ds, deps.store.presign_get(ds.object_key, ttl, ds.file_name), now() + ttl


async def delete_dataset(deps: Deps, ctx: Context, model_id: uuid.UUID, dataset_id: uuid.UUID) -> None:
    """Forget the dataset and publish DatasetDeleted (one transaction), then remove its object."""
    async with deps.uow(ctx) as tx:
        await guard(deps, ctx.tenant_id, model_id, tx.conn)
        ds = await repo.get_dataset(tx.conn, ctx.tenant_id, model_id, dataset_id, lock=True)
        if ds is None:
            raise d.Rejected(ErrorCode.NOT_FOUND, f"No dataset {dataset_id} in this model.")
        await repo.delete_dataset(tx.conn, ds.id)
        await repo.abandon_objects(tx.conn, [ds.object_key])
        await tx.emit(ev.DatasetDeleted(dataset_id=ds.id, dataset_type=ds.type), model_id)
    log.info("dataset_deleted", dataset_id=str(ds.id), model_id=str(model_id))
    await forget_objects(deps, [ds.object_key], storage_down=False)


# ---------------------------------------------------------------- sweeper


async def sweep(deps: Deps, at: datetime | None = None) -> dict[str, int]:
    """Abort expired upload sessions and remove abandoned objects; safe to run on every replica."""
    at = at or now()
    done = {"sessions": 0, "objects": 0, "completed_sessions": 0}
    async with deps.uow.reading() as conn:
        sessions = await repo.expired_sessions(conn, at, at - COMPLETION_STALL)
        keys = await repo.objects_to_remove(conn, at - deps.session_ttl)
    for s in sessions:
        await deps.store.abort_all(s.object_key)
        await deps.store.remove(s.object_key)  # completed in storage but never recorded
        async with deps.uow.reading() as conn:
            await repo.delete_session(conn, s.id)
        done["sessions"] += 1
    for key in keys:
        await deps.store.abort_all(key)
        await deps.store.remove(key)
        async with deps.uow.reading() as conn:
            await repo.unstage_objects(conn, [key])
        done["objects"] += 1
    async with deps.uow.reading() as conn:
        done["completed_sessions"] = await repo.forget_completed_sessions(conn, at - deps.session_ttl)
    if any(done.values()):
        log.info("swept", **done)
    return done


async def sweep_forever(deps: Deps, stop: asyncio.Event, every: float) -> None:
    """Run :func:`sweep` every ``every`` seconds until ``stop``; failures wait for the next round."""
    while not stop.is_set():
        try:
            await deps.store.ensure_bucket()
            await sweep(deps)
        except (StorageUnavailable, OSError, asyncpg.PostgresError) as exc:
            log.warning("sweep_deferred", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


# ---------------------------------------------------------------- facts from other services


async def model_created(tx: Tx, env: ev.Envelope, msg: ev.ModelCreated) -> None:
    assert env.model_id is not None
    await repo.model_seen(tx.conn, env.tenant_id, env.model_id, msg.status, env.occurred_at)


async def status_changed(tx: Tx, env: ev.Envelope, msg: ev.TrainingStatusChanged) -> None:
    assert env.model_id is not None
    await repo.model_status_changed(tx.conn, env.tenant_id, env.model_id, msg.new_status, env.occurred_at)


async def model_deleted(tx: Tx, env: ev.Envelope) -> None:
    """The model is gone: so are its datasets and unfinished uploads (objects removed by the sweeper)."""
    assert env.model_id is not None
    keys = await repo.model_deleted(tx.conn, env.tenant_id, env.model_id, env.occurred_at)
    if keys:
        await repo.abandon_objects(tx.conn, keys)
    log.info("model_forgotten", model_id=str(env.model_id), objects=len(keys))


async def dataset_published(tx: Tx, env: ev.Envelope, msg: ev.DatasetUploaded) -> None:
    """Our own DatasetUploaded reached Kafka: the dataset is now with the validator."""
    await repo.mark_validating(tx.conn, env.tenant_id, msg.dataset.dataset_id)


async def validated(tx: Tx, env: ev.Envelope, msg: ev.ValidationPassed | ev.ValidationFailed) -> None:
    """Show the validator's verdict (and its details) in the listing."""
    details: dict[str, Any]
    if isinstance(msg, ev.ValidationPassed):
        status = d.DatasetStatus.VALID
        details = {"result": "passed", "metadata": msg.metadata, "warnings": msg.warnings}
    else:
        status = d.DatasetStatus.INVALID
        details = {"result": "failed", "error": msg.error.model_dump(mode="json"),
                   "details_truncated": msg.details_truncated}
    details["validated_at"] = env.occurred_at.isoformat()
    if await repo.record_validation(tx.conn, env.tenant_id, msg.dataset_id, status, details, env.occurred_at):
        log.info("dataset_validated", dataset_id=str(msg.dataset_id), status=status.value)
