"""Streamed multipart/form-data uploads: each file is checked as it starts and streamed to storage."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace

from voxtrain_shared.logs import get_logger
from voxtrain_shared.metrics import UPLOAD_BYTES, UPLOAD_SECONDS
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import DatasetType, ErrorCode

from .. import domain as d
from ..formdata import Field, FileData, FileEnd, FileStart, FormEvent
from ..storage import ObjectTooLarge, StorageUnavailable, StreamingWriter
from .deps import Deps
from .guards import guard
from .quotas import upload_slot
from .recording import forget_objects, record, stage

log = get_logger(__name__)


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
            raise d.Rejected(
                ErrorCode.VALIDATION_FAILED, "Send the 'type' field before the files in the form (or pass ?type=)."
            )
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
        await stage(self.deps, self.ctx, key)  # before the first byte is stored
        self.current = d.Dataset(
            id=dataset_id,
            tenant_id=self.ctx.tenant_id,
            model_id=self.model_id,
            type=dataset_type,
            file_name=name,
            original_name=d.escaped_name(part.file_name),
            size=0,
            sha256="",
            content_type=d.content_type_for(name),
            bucket=self.deps.store.bucket,
            object_key=key,
            source="form",
        )
        self.writer = self.deps.writer(
            self.deps.store,
            key,
            self.current.content_type,
            limit=limits.max_file_bytes,
            part_size=d.streaming_part_size(limits.part_size, limits.max_file_bytes),
            budget=self.deps.budget,
        )

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
        await forget_objects(self.deps, self.ctx, keys, storage_down=storage_down)


async def upload_form(
    deps: Deps, ctx: Context, model_id: uuid.UUID, query_type: str | None, form: AsyncGenerator[FormEvent, None]
) -> list[d.Dataset]:
    """Stream every file of a form to storage, then record them all at once (or nothing at all)."""
    await guard(deps, ctx.tenant_id, model_id)  # before a byte is read
    async with upload_slot(deps, ctx, model_id):  # also before a byte is read
        return await _stream(deps, ctx, model_id, query_type, form)


async def _stream(
    deps: Deps, ctx: Context, model_id: uuid.UUID, query_type: str | None, form: AsyncGenerator[FormEvent, None]
) -> list[d.Dataset]:
    upload = FormUpload(deps, ctx, model_id, query_type)
    started = time.perf_counter()
    try:
        async with aclosing(form):
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
