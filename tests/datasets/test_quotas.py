"""Unit tests of the upload quotas and the upload memory budget (in-memory repository and store)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.datasets.fakes import FakeObjectStore
from tests.datasets.test_handlers import MiB, World, form
from voxtrain_datasets import domain as d
from voxtrain_datasets.handlers import quotas, sessions, uploads
from voxtrain_datasets.storage import ByteBudget, StreamingWriter
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import ErrorCode, ModelStatus

OTHER = "globex"


@pytest.fixture
def w() -> World:
    world = World()
    limits = replace(world.deps.limits, max_concurrent_per_tenant=1, max_sessions_per_tenant=2)
    world.deps = replace(world.deps, limits=limits)
    return world


async def other_model(w: World) -> tuple[Context, uuid.UUID]:
    mid = uuid.uuid4()
    await w.repo.model_status_changed(OTHER, mid, ModelStatus.NOT_RUNNING, datetime.now(UTC))
    return Context(OTHER, uuid.uuid4()), mid


async def test_a_tenant_at_its_concurrent_upload_cap_is_refused_before_its_body_is_read(w: World) -> None:
    mid = await w.model()
    read = []

    async def body():
        read.append(True)
        async for e in form(("a.txt", b"words")):
            yield e

    async with quotas.upload_slot(w.deps, w.ctx, mid):  # one upload of acme is streaming
        with pytest.raises(d.Rejected) as exc:
            await uploads.upload_form(w.deps, w.ctx, mid, None, body())
        assert exc.value.code is ErrorCode.TOO_MANY_UPLOADS and not read
        assert exc.value.details == {"kind": "concurrent_uploads", "limit": 1, "in_progress": 1}
        assert "Wait for one of them to finish" in exc.value.message
        ctx, other = await other_model(w)  # another tenant is not held by acme's cap
        [ds] = await uploads.upload_form(w.deps, ctx, other, None, form(("b.txt", b"more")))
        assert ds.tenant_id == OTHER
    [ds] = await uploads.upload_form(w.deps, w.ctx, mid, None, form(("a.txt", b"words")))  # place given back
    assert w.repo.slots == {}


async def test_a_failed_upload_gives_its_place_back(w: World) -> None:
    mid = await w.model()
    with pytest.raises(d.Rejected):
        await uploads.upload_form(w.deps, w.ctx, mid, None, form(("evil.exe", b"MZ")))
    assert w.repo.slots == {}


async def test_a_tenant_with_its_limit_of_open_sessions_is_refused_before_storage_is_asked(w: World) -> None:
    mid = await w.model()
    first = await sessions.start_direct_upload(w.deps, w.ctx, mid, "a.wav", 6 * MiB, None)
    await sessions.start_direct_upload(w.deps, w.ctx, mid, "b.wav", 6 * MiB, None)
    started = len(w.store.uploads)
    with pytest.raises(d.Rejected) as exc:
        await sessions.start_direct_upload(w.deps, w.ctx, mid, "c.wav", 6 * MiB, None)
    assert exc.value.code is ErrorCode.TOO_MANY_UPLOADS and exc.value.details["kind"] == "open_sessions"
    assert "Complete or cancel one of them" in exc.value.message and len(w.store.uploads) == started
    ctx, other = await other_model(w)
    assert (await sessions.start_direct_upload(w.deps, ctx, other, "c.wav", 6 * MiB, None)).session.tenant_id == OTHER
    await sessions.cancel_direct_upload(w.deps, w.ctx, mid, first.session.id)
    await sessions.start_direct_upload(w.deps, w.ctx, mid, "c.wav", 6 * MiB, None)  # a place is free again


async def test_the_budget_serves_waiters_in_order_and_survives_a_cancelled_one() -> None:
    budget = ByteBudget(10)
    await budget.take(8)
    order: list[str] = []

    async def taker(name: str, n: int) -> None:
        await budget.take(n)
        order.append(name)

    big = asyncio.create_task(taker("big", 6))
    small = asyncio.create_task(taker("small", 2))  # fits now, but waits behind "big": first come, first served
    await asyncio.sleep(0)
    assert order == [] and budget.free == 2
    big.cancel()
    await asyncio.wait_for(small, 1)
    assert big.cancelled() and order == ["small"] and budget.free == 0
    budget.give(8)
    with pytest.raises(ValueError):
        await budget.take(11)
    assert budget.free == 8 and budget.peak == 10


class SlowStore(FakeObjectStore):
    """Parts take a while to upload, so many writers pile up buffers unless the budget holds them back."""

    def __init__(self, **kw: bool) -> None:
        super().__init__(**kw)
        self.uploading = self.most_uploading = 0

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes | memoryview) -> str:
        self.uploading += len(data)
        self.most_uploading = max(self.most_uploading, self.uploading)
        try:
            await asyncio.sleep(0.01)
            return await super().upload_part(key, upload_id, number, data)
        finally:
            self.uploading -= len(data)


async def test_parallel_writers_hold_no_more_than_the_budget() -> None:
    part, chunk, writers = 64 * 1024, 16 * 1024, 12
    budget = ByteBudget(4 * part)  # room for 4 parts; 12 writers would want 12 * (in_flight + 1) parts
    store = SlowStore(keep_bytes=True)
    data = bytes(range(256)) * (5 * part // 256 + 7)

    async def one(i: int) -> tuple[int, str]:
        w = StreamingWriter(store, f"k{i}", "x", part_size=part, limit=10**9, budget=budget)
        for at in range(0, len(data), chunk):
            await w.write(data[at : at + chunk])
        obj = await w.finish()
        return obj.size, obj.sha256

    results = await asyncio.gather(*(one(i) for i in range(writers)))
    assert results == [(len(data), hashlib.sha256(data).hexdigest())] * writers
    # Without the budget 12 writers upload 24 parts at once; with it, parts uploading and filling fit in 4.
    assert store.most_uploading <= budget.total and budget.peak <= budget.total
    assert budget.free == budget.total  # all of it given back


async def test_an_aborted_writer_gives_its_budget_back() -> None:
    budget = ByteBudget(4 * MiB)
    w = StreamingWriter(SlowStore(), "k", "x", part_size=MiB, limit=10**9, budget=budget)
    for _ in range(5):
        await w.write(b"x" * (MiB // 2))
    assert budget.free < budget.total
    await w.abort()
    assert budget.free == budget.total


class BufferWatchingStore(FakeObjectStore):
    """Remembers the buffer under each part it is given (and keeps it alive, so no two are confused)."""

    def __init__(self) -> None:
        super().__init__(keep_bytes=True)
        self.buffers: list[object] = []

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes | memoryview) -> str:
        self.buffers.append(data.obj if isinstance(data, memoryview) else data)
        return await super().upload_part(key, upload_id, number, data)


async def test_a_writer_reuses_its_part_buffers_and_stays_within_its_share_of_the_budget() -> None:
    part, in_flight = 64 * 1024, 2
    budget = ByteBudget(100 * part)
    store = BufferWatchingStore()
    data = bytes(range(256)) * (40 * part // 256 + 3)  # 40 parts and a bit
    w = StreamingWriter(store, "k", "x", part_size=part, limit=10**9, in_flight=in_flight, budget=budget)
    for at in range(0, len(data), 10_000):  # chunks that do not line up with the parts
        await w.write(data[at : at + 10_000])
    obj = await w.finish()
    assert (obj.size, obj.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert store.objects["k"] == data  # each part's bytes were copied out before its buffer was reused
    assert len(store.buffers) == 41
    # the part filling and those uploading: every other part reuses one of their buffers
    assert len({id(b) for b in store.buffers}) <= in_flight + 1
    assert budget.peak <= (in_flight + 1) * part and budget.free == budget.total
