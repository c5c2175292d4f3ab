"""Resumable direct uploads: the client PUTs parts to presigned URLs, then completes the session(s)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from voxtrain_shared.logs import get_logger
from voxtrain_shared.metrics import UPLOAD_BYTES, UPLOAD_SECONDS
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import ErrorCode

from .. import domain as d
from ..storage import PartRefused, ReceivedPart, StorageUnavailable, UploadGone
from .deps import COMPLETION_STALL, Deps, now
from .guards import guard
from .quotas import check_sessions, sessions_left
from .recording import abandon, record

log = get_logger(__name__)


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


def part_urls(
    deps: Deps, s: d.UploadSession, numbers: list[int], checksums: dict[int, str] | None = None
) -> list[PartUrl]:
    """Presigned PUT URLs for parts, valid for the presign TTL but never past the session's expiry (signing each
    part's checksum, of the session's algorithm, too when ``checksums`` gives it)."""
    left = (s.expires_at - now()).total_seconds()
    ttl = timedelta(seconds=max(1, min(deps.presign_ttl.total_seconds(), left)))
    expires = now() + ttl
    sums, alg = checksums or {}, s.checksum_algorithm
    return [
        PartUrl(n, size, deps.store.presign_part(s.object_key, s.s3_upload_id, n, ttl, size, sums.get(n), alg), expires)
        for n, size in ((n, s.plan.part_bytes(n)) for n in numbers)
    ]


async def sign_parts(
    deps: Deps,
    tenant_id: str,
    model_id: uuid.UUID,
    session_id: uuid.UUID,
    checksums: dict[int, str],
    algorithm: d.ChecksumAlgorithm | None = None,
) -> tuple[d.UploadSession, list[PartUrl]]:
    """URLs for parts of an open session that sign each part's checksum (of ``algorithm``: the session's) as the
    uploader computed it: storage then takes the part only with that checksum, and only when the bytes match it
    (any S3 store, AWS S3 included)."""
    s = await _session(deps, tenant_id, model_id, session_id)
    if s.state != "open":
        raise d.Rejected(ErrorCode.CONFLICT, f"Upload {session_id} is {s.state}: no more parts are accepted.")
    d.check_checksum_algorithm(s, algorithm)
    d.check_part_numbers(s.plan, list(checksums))
    return s, part_urls(deps, s, sorted(checksums), checksums)


async def start_direct_upload(
    deps: Deps,
    ctx: Context,
    model_id: uuid.UUID,
    file_name: str,
    size: int,
    type_value: str | None,
    checksum: d.ChecksumAlgorithm = d.ChecksumAlgorithm.SHA256,
) -> SessionState:
    """Open a multipart upload in storage whose parts must carry a ``checksum`` (storage verifies each on arrival);
    the client PUTs the parts to presigned URLs."""
    await guard(deps, ctx.tenant_id, model_id)
    name = d.display_name(file_name)
    dataset_type = d.type_for_file(d.parse_requested_type(type_value), name)
    d.check_size(name, size, deps.limits.max_file_bytes)
    plan = d.plan_parts(size, deps.limits.part_size)
    await sessions_left(deps, ctx.tenant_id)  # before storage is asked for anything
    dataset_id = uuid.uuid4()
    key = d.object_key(ctx.tenant_id, model_id, dataset_id)
    content_type = d.content_type_for(name)
    upload_id = await deps.store.start_multipart(key, content_type, checksum=checksum)
    created = now()
    session = d.UploadSession(
        id=uuid.uuid4(),
        tenant_id=ctx.tenant_id,
        model_id=model_id,
        dataset_id=dataset_id,
        type=dataset_type,
        file_name=name,
        original_name=d.escaped_name(file_name),
        content_type=content_type,
        object_key=key,
        s3_upload_id=upload_id,
        size=size,
        part_size=plan.part_size,
        part_count=plan.count,
        state="open",
        created_at=created,
        expires_at=created + deps.session_ttl,
        checksum_algorithm=checksum,
    )
    try:
        async with deps.uow(ctx) as tx:
            await check_sessions(deps, tx.repo, ctx.tenant_id)
            session = await tx.repo.insert_session(session)
    except BaseException:
        await asyncio.shield(deps.store.abort(key, upload_id))
        raise
    log.info(
        "upload_session_opened",
        session_id=str(session.id),
        model_id=str(model_id),
        size=size,
        parts=plan.count,
        checksum=checksum.value,
    )
    numbers = list(range(1, plan.count + 1))
    return SessionState(session, [], numbers, part_urls(deps, session, numbers))


async def _session(deps: Deps, tenant_id: str, model_id: uuid.UUID, session_id: uuid.UUID) -> d.UploadSession:
    async with deps.uow.reading() as repo:
        s = await repo.get_session(tenant_id, model_id, session_id)
    if s is None or (s.state != "completed" and s.expires_at <= now()):
        raise d.Rejected(ErrorCode.NOT_FOUND, f"No upload session {session_id} for this model (it may have expired).")
    return s


async def _dataset_of(deps: Deps, s: d.UploadSession) -> d.Dataset | None:
    async with deps.uow.reading() as repo:
        return await repo.get_dataset(s.tenant_id, s.model_id, s.dataset_id)


async def get_direct_upload(deps: Deps, tenant_id: str, model_id: uuid.UUID, session_id: uuid.UUID) -> SessionState:
    """What storage has received so far, and fresh URLs for the parts still missing."""
    s = await _session(deps, tenant_id, model_id, session_id)
    if s.state == "completed":
        return SessionState(s, [], [], [], await _dataset_of(deps, s))
    try:
        received = await deps.store.list_parts(s.object_key, s.s3_upload_id, s.checksum_algorithm)
    except UploadGone:  # being completed right now
        received = []
    have = {p.number for p in received if p.checksum}  # one without (an older uploader's) is sent again
    missing = [n for n in range(1, s.part_count + 1) if n not in have]
    return SessionState(s, received, missing, part_urls(deps, s, missing) if s.state == "open" else [])


async def _claim(
    deps: Deps, ctx: Context, model_id: uuid.UUID, session_id: uuid.UUID
) -> tuple[d.UploadSession | None, d.Dataset | None]:
    async with deps.uow(ctx) as tx:
        s = await tx.repo.claim_for_completion(ctx.tenant_id, model_id, session_id, now() - COMPLETION_STALL)
    if s is not None:
        return s, None
    existing = await _session(deps, ctx.tenant_id, model_id, session_id)
    if existing.state == "completed":
        dataset = await _dataset_of(deps, existing)
        if dataset is None:
            raise d.Rejected(ErrorCode.NOT_FOUND, f"Upload {session_id} was completed; its dataset is deleted.")
        return None, dataset
    raise d.Rejected(ErrorCode.CONFLICT, f"Upload {session_id} is being completed by another request.")


async def _assemble(deps: Deps, ctx: Context, s: d.UploadSession, told: d.Completion) -> None:
    """Check the parts against the plan and their storage-verified checksums (and the ones the uploader reports),
    and complete the multipart upload (once). Nothing of the object is read back."""
    d.check_checksum_algorithm(s, told.checksum_algorithm)
    alg = s.checksum_algorithm
    try:
        received = await deps.store.list_parts(s.object_key, s.s3_upload_id, alg)
    except UploadGone:
        if await deps.store.size_of(s.object_key) == s.size:
            return  # completed by an earlier attempt that failed later
        await _drop_session(deps, ctx, s)
        raise d.Rejected(ErrorCode.CONFLICT, "The upload no longer exists in storage; start a new upload.") from None
    d.check_size(s.file_name, sum(p.size for p in received), deps.limits.max_file_bytes)
    d.check_parts(s.plan, {p.number: p.size for p in received})
    d.check_part_checksums(s.file_name, {p.number: p.checksum for p in received}, told.part_checksums, alg)
    try:
        composite = await deps.store.complete(s.object_key, s.s3_upload_id, received, alg)
    except PartRefused as exc:  # a part was sent again between the listing and now
        raise d.Rejected(
            ErrorCode.CONFLICT,
            f"{s.file_name}: a part changed while the upload was being completed; complete it again.",
            {"reason": str(exc)[:300]},
        ) from None
    log.info("upload_session_assembled", session_id=str(s.id), parts=len(received), checksum=composite, algorithm=alg)


async def complete_direct_upload(
    deps: Deps, ctx: Context, model_id: uuid.UUID, completion: d.Completion
) -> tuple[d.Dataset, bool]:
    """Assemble the object, record the dataset; returns it and whether it was created now."""
    saved, created = await complete_direct_uploads(deps, ctx, model_id, [completion])
    return saved[0], created


async def complete_direct_uploads(
    deps: Deps, ctx: Context, model_id: uuid.UUID, items: list[d.Completion]
) -> tuple[list[d.Dataset], bool]:
    """Complete several upload sessions as ONE upload: all their datasets are recorded in one transaction
    (one DatasetUploaded batch), so a model with auto-train waits for all of them. Returns the datasets
    and whether they were created now (False: an earlier call completed every one of them)."""
    d.check_file_count(len(items), deps.limits.max_files)
    claimed: list[d.UploadSession] = []
    done_before: list[d.Dataset] = []
    try:
        for item in items:
            s, done = await _claim(deps, ctx, model_id, item.session_id)
            if s is None:
                assert done is not None
                done_before.append(done)
            else:
                claimed.append(s)
        if done_before and claimed:
            raise d.Rejected(
                ErrorCode.VALIDATION_FAILED,
                "Some of these uploads were completed earlier, in another request: complete only the ones still open.",
                {"completed": [str(x.id) for x in done_before]},
            )
        if not claimed:
            return done_before, False
        await guard(deps, ctx.tenant_id, model_id)
        told = {c.session_id: c for c in items}
        datasets = [await _assembled(deps, ctx, model_id, s, told[s.id]) for s in claimed]
        saved = await record(deps, ctx, model_id, datasets, completed_sessions=[s.id for s in claimed])
        for s, ds in zip(claimed, saved, strict=True):
            UPLOAD_BYTES.labels(mode="multipart").inc(ds.size)
            UPLOAD_SECONDS.labels(mode="multipart").observe((now() - s.created_at).total_seconds())
        return saved, True
    except BaseException:
        for s in claimed:
            try:
                async with deps.uow(ctx) as tx:  # someone may try again (a dropped session is simply gone)
                    await tx.repo.set_session_state(s.id, "open")
            except (OSError, asyncpg.PostgresError) as exc:  # a stalled completion is taken over later
                log.warning("session_release_failed", session_id=str(s.id), error=repr(exc))
        raise


async def _assembled(
    deps: Deps, ctx: Context, model_id: uuid.UUID, s: d.UploadSession, told: d.Completion
) -> d.Dataset:
    """Complete one session's object in storage: its dataset, with the file's SHA-256 as the uploader gives it.

    Storage verified every part's bytes against the uploader's part checksum on arrival, and the sizes are the
    plan's, so the object is not read back. An uploader that gives no file SHA-256 (the console) gets it computed
    from the stored object, which is read once for that."""
    await _assemble(deps, ctx, s, told)
    if told.sha256 is not None:
        size, digest = s.size, told.sha256.lower()
    else:
        size, digest = await deps.store.sha256_of(s.object_key)
    if size != s.size:
        await _drop_session(deps, ctx, s)
        raise d.Rejected(
            ErrorCode.VALIDATION_FAILED,
            f"{s.file_name}: storage holds {size} bytes, not the {s.size} announced; the upload was discarded.",
            {"size": size, "sha256": digest},
        )
    return d.Dataset(
        id=s.dataset_id,
        tenant_id=s.tenant_id,
        model_id=model_id,
        type=s.type,
        file_name=s.file_name,
        original_name=s.original_name,
        size=size,
        sha256=digest,
        content_type=s.content_type,
        bucket=deps.store.bucket,
        object_key=s.object_key,
        source="direct",
    )


async def _drop_session(deps: Deps, ctx: Context, s: d.UploadSession) -> None:
    try:
        await deps.store.abort(s.object_key, s.s3_upload_id)
        await deps.store.remove(s.object_key)
    except StorageUnavailable:
        await abandon(deps, ctx, [s.object_key])
    async with deps.uow(ctx) as tx:
        await tx.repo.delete_session(s.id)


async def cancel_direct_upload(deps: Deps, ctx: Context, model_id: uuid.UUID, session_id: uuid.UUID) -> None:
    """Abort the multipart upload and forget the session (storage clean-up may finish later)."""
    s = await _session(deps, ctx.tenant_id, model_id, session_id)
    if s.state != "open":
        raise d.Rejected(
            ErrorCode.CONFLICT,
            f"Upload {session_id} is {s.state}; delete the dataset instead."
            if s.state == "completed"
            else f"Upload {session_id} is being completed.",
        )
    await _drop_session(deps, ctx, s)
    log.info("upload_session_cancelled", session_id=str(s.id))
