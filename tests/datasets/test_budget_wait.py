"""The upload memory budget's bounded wait: an upload that cannot get room within the wait is refused with
503 ``server_busy`` and a Retry-After, instead of hanging; the budget is left as it was."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.datasets.conftest import LIMIT, PART, Datasets, spy_store
from tests.datasets.test_quotas_integration import ACME, upload_in_progress
from tests.support import running, settings_for
from voxtrain_datasets.bootstrap import assemble
from voxtrain_datasets.domain import streaming_part_size
from voxtrain_datasets.storage import ByteBudget
from voxtrain_shared.errors import Rejected
from voxtrain_shared.settings import DatasetsSettings


async def test_a_take_that_waits_too_long_is_refused_and_leaves_the_budget_as_it_was() -> None:
    budget = ByteBudget(10, max_wait_seconds=0.05)
    await budget.take(8)
    with pytest.raises(Rejected) as busy:
        await budget.take(6)
    assert busy.value.code == "server_busy"
    assert "stayed full for 0.05 s" in busy.value.message and "Try again in a minute" in busy.value.message
    assert budget.free == 2
    await asyncio.wait_for(budget.take(2), 1)  # nothing waits in front of it any more


async def test_waiters_that_time_out_together_all_leave_cleanly() -> None:
    budget = ByteBudget(10, max_wait_seconds=0.05)
    await budget.take(8)
    # (2 would fit, but waits behind 6; both time out in one loop turn: as 6 leaves it must not grant 2)
    waiters = [asyncio.create_task(budget.take(n)) for n in (6, 2, 4)]
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert [type(o) for o in outcomes] == [Rejected] * 3
    assert budget.free == 2
    budget.give(8)
    await asyncio.wait_for(budget.take(10), 1)


async def test_without_a_limit_a_take_waits_until_room_is_given() -> None:
    budget = ByteBudget(10)
    await budget.take(10)
    waiting = asyncio.create_task(budget.take(5))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    budget.give(10)
    await asyncio.wait_for(waiting, 1)
    assert budget.free == 5


@pytest.mark.integration
async def test_a_replica_whose_upload_memory_stays_full_answers_503_server_busy(stack) -> None:
    part = streaming_part_size(PART, LIMIT)
    settings = settings_for(
        DatasetsSettings,
        stack,
        VOXTRAIN_MAX_FILE_BYTES=str(LIMIT),
        VOXTRAIN_PART_SIZE_BYTES=str(PART),
        VOXTRAIN_UPLOADS__MEMORY_BUDGET_BYTES=str(2 * part),  # room for the parts being filled of two uploads
        VOXTRAIN_UPLOADS__MEMORY_BUDGET_WAIT_SECONDS="1",
    )
    app = assemble(settings, store=spy_store(settings), sweep_every=3600)
    async with running(app.service) as client:
        one = Datasets(app, app.deps.store, client, stack)
        mid = await one.new_model("acme")
        async with upload_in_progress(client, mid, ACME) as first, upload_in_progress(client, mid, ACME) as second:
            started = time.monotonic()
            r = await one.upload(mid, [("third.txt", b"more words")])
            assert r.status_code == 503, r.text
            assert 0.9 < time.monotonic() - started < 10
            err = r.json()["error"]
            assert err["code"] == "server_busy" and r.headers["retry-after"] == "30"
            assert "stayed full for 1 s" in err["message"] and "nothing of it was kept" in err["message"]
        assert first["response"].status_code == 201 and second["response"].status_code == 201
        r = await one.upload(mid, [("third.txt", b"more words")])  # room again
        assert r.status_code == 201, r.text
        assert sorted(d["file_name"] for d in await one.listing(mid)) == ["slow.txt", "slow.txt", "third.txt"]
