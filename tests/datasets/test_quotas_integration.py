"""Per-tenant upload quotas against the real servers: two replicas of the service share one schema, so
what one replica counts in PostgreSQL holds on the other."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from tests.datasets.conftest import LIMIT, PART, Datasets, spy_store
from tests.support import auth_headers, running, settings_for
from voxtrain_datasets.bootstrap import assemble
from voxtrain_shared.settings import DatasetsSettings
from voxtrain_shared.vocab import ModelStatus

pytestmark = pytest.mark.integration
ACME, GLOBEX = auth_headers("acme"), auth_headers("globex")
BOUNDARY = "quota-boundary"


@pytest.fixture(scope="module")
async def replicas(stack):
    settings = settings_for(
        DatasetsSettings,
        stack,
        VOXTRAIN_MAX_FILE_BYTES=str(LIMIT),
        VOXTRAIN_PART_SIZE_BYTES=str(PART),
        VOXTRAIN_UPLOADS__MAX_CONCURRENT_PER_TENANT="1",
        VOXTRAIN_UPLOADS__MAX_SESSIONS_PER_TENANT="1",
    )
    one, two = (assemble(settings, store=spy_store(settings), sweep_every=3600) for _ in range(2))
    async with running(one.service) as c1, running(two.service) as c2:
        yield Datasets(one, one.deps.store, c1, stack), Datasets(two, two.deps.store, c2, stack)


@contextlib.asynccontextmanager
async def upload_in_progress(client: httpx.AsyncClient, mid, headers):
    """An upload whose client has sent the first bytes of a file and waits; finished on leaving."""
    go_on, started = asyncio.Event(), asyncio.Event()

    async def body():
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="slow.txt"\r\n\r\nfirst words '
        ).encode()
        started.set()
        await go_on.wait()
        yield f"and the rest\r\n--{BOUNDARY}--\r\n".encode()

    sending = asyncio.create_task(
        client.post(
            f"/v1/models/{mid}/datasets",
            content=body(),
            headers={**headers, "content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
    )
    await asyncio.wait_for(started.wait(), 30)
    result: dict[str, httpx.Response] = {}
    try:
        yield result
    finally:
        go_on.set()
        result["response"] = await sending


async def test_a_tenant_at_its_upload_cap_is_refused_on_every_replica_and_another_tenant_is_not(replicas) -> None:
    one, two = replicas
    mid, other = await one.new_model("acme"), await one.new_model("globex")
    await two.wait_status(mid, ModelStatus.NOT_RUNNING, "acme")
    await two.wait_status(other, ModelStatus.NOT_RUNNING, "globex")
    async with upload_in_progress(one.client, mid, ACME) as first:
        await asyncio.sleep(0.2)  # its slot is taken before its body is read
        r = await two.upload(mid, [("b.txt", b"second")])  # the other replica sees acme's upload in progress
        assert r.status_code == 429, r.text
        err = r.json()["error"]
        assert err["code"] == "too_many_uploads" and r.headers["retry-after"] == "30"
        assert "1 uploads in progress" in err["message"] and "Wait for one of them to finish" in err["message"]
        assert err["details"] == {"kind": "concurrent_uploads", "limit": 1, "in_progress": 1}
        r = await two.upload(other, [("g.txt", b"globex words")], tenant="globex")  # not held by acme's cap
        assert r.status_code == 201, r.text
    assert first["response"].status_code == 201, first["response"].text
    r = await two.upload(mid, [("b.txt", b"second")])  # the place was given back
    assert r.status_code == 201, r.text
    assert [d["file_name"] for d in await one.listing(mid)] == ["slow.txt", "b.txt"]


async def test_a_tenant_with_its_limit_of_open_sessions_is_refused_until_one_ends(replicas) -> None:
    one, two = replicas
    mid, other = await one.new_model("acme"), await one.new_model("globex")
    await two.wait_status(mid, ModelStatus.NOT_RUNNING, "acme")
    await two.wait_status(other, ModelStatus.NOT_RUNNING, "globex")
    start = {"file_name": "a.wav", "size": PART + 1}
    r = await one.client.post(f"/v1/models/{mid}/uploads", headers=ACME, json=start)
    assert r.status_code == 201, r.text
    first = r.json()["id"]
    r = await two.client.post(f"/v1/models/{mid}/uploads", headers=ACME, json=start)
    assert r.status_code == 429, r.text
    err = r.json()["error"]
    assert err["code"] == "too_many_uploads" and err["details"] == {"kind": "open_sessions", "limit": 1, "open": 1}
    assert "Complete or cancel one of them" in err["message"]
    r = await two.client.post(f"/v1/models/{other}/uploads", headers=GLOBEX, json=start)
    assert r.status_code == 201, r.text
    assert (await one.client.delete(f"/v1/models/{mid}/uploads/{first}", headers=ACME)).status_code == 204
    r = await two.client.post(f"/v1/models/{mid}/uploads", headers=ACME, json=start)
    assert r.status_code == 201, r.text
