"""Resumable direct uploads: an outside client PUTs parts to presigned MinIO URLs with plain HTTP."""

import hashlib
import os
import uuid
from datetime import timedelta

import httpx
import pytest

from tests.datasets.conftest import LIMIT, PART, MiB, at
from tests.datasets.fakes import CRC32C, SHA256, part_checksum
from tests.support import TopicReader, auth_headers
from voxtrain_datasets.storage import S3ObjectStore
from voxtrain_shared import events as ev
from voxtrain_shared.settings import MinioSettings
from voxtrain_shared.storage import ensure_bucket, make_client

pytestmark = pytest.mark.integration
ACME = auth_headers("acme")


async def put_part(outside: httpx.AsyncClient, url: str, data: bytes, alg=SHA256) -> None:
    r = await outside.put(url, content=data, headers={alg.header: part_checksum(data, alg)})
    assert r.status_code == 200, r.text
    assert r.headers["etag"]


async def test_a_client_uploads_parts_directly_and_resumes_after_a_missing_part(datasets, stack) -> None:
    mid = await datasets.new_model()
    data = os.urandom(2 * PART + MiB + 3)
    base = f"/v1/models/{mid}/uploads"
    r = await datasets.client.post(base, headers=ACME, json={"file_name": "../long dictation.wav", "size": len(data)})
    assert r.status_code == 201, r.text
    s = r.json()
    assert (s["part_size"], s["part_count"], s["state"], s["type"]) == (PART, 3, "open", "AUDIO")
    assert s["file_name"] == "long dictation.wav" and s["missing_parts"] == [1, 2, 3]
    urls = {u["part_number"]: u for u in s["part_urls"]}
    assert [urls[n]["size"] for n in (1, 2, 3)] == [PART, PART, MiB + 3]
    chunks = {n: data[(n - 1) * PART : n * PART] for n in (1, 2, 3)}

    async with httpx.AsyncClient(timeout=30) as outside:
        await put_part(outside, urls[1]["url"], chunks[1])
        await put_part(outside, urls[3]["url"], chunks[3])  # part 2 is lost: the connection dropped
        r = await datasets.client.post(f"{base}/{s['id']}/complete", headers=ACME)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "validation_failed" and "part 2 missing" in err["message"]
        assert err["details"]["missing_parts"] == [2]

        r = await datasets.client.get(f"{base}/{s['id']}", headers=ACME)  # resume: what is there, what is not
        state = r.json()
        assert [(p["part_number"], p["size"]) for p in state["parts_received"]] == [(1, PART), (3, MiB + 3)]
        assert state["missing_parts"] == [2] and [u["part_number"] for u in state["part_urls"]] == [2]
        await put_part(outside, state["part_urls"][0]["url"], chunks[2])

    digest = hashlib.sha256(data).hexdigest()
    read_backs = datasets.store.read_backs
    reported = [{"part_number": n, "checksum_sha256": part_checksum(c)} for n, c in chunks.items()]
    async with TopicReader(stack.kafka_bootstrap, datasets.topics.datasets) as reader:
        r = await datasets.client.post(
            f"{base}/{s['id']}/complete", headers=ACME, json={"sha256": digest.upper(), "parts": reported}
        )
        assert r.status_code == 201, r.text
        records = await reader.read(1)
    assert datasets.store.read_backs == read_backs  # the object was not read back to hash it
    ds = r.json()["dataset"]
    assert (ds["id"], ds["size"], ds["sha256"], ds["source"]) == (s["dataset_id"], len(data), digest, "direct")
    assert await datasets.object_bytes(f"tenants/acme/models/{mid}/datasets/{ds['id']}/data") == data
    event = next(e for e in map(ev.REGISTRY.parse, (x.value for x in records)) if e.model_id == mid)
    assert event.payload().dataset.sha256 == digest and event.payload().dataset.size == len(data)
    # Completing again (a client retrying after a timeout) returns the same dataset.
    again = await datasets.client.post(f"{base}/{s['id']}/complete", headers=ACME)
    assert again.status_code == 200 and again.json()["dataset"]["id"] == ds["id"]
    assert (await datasets.client.delete(f"{base}/{s['id']}", headers=ACME)).status_code == 409
    assert [d["id"] for d in await datasets.listing(mid)] == [ds["id"]]


async def test_sessions_are_checked_cancelled_and_swept(datasets) -> None:
    mid = await datasets.new_model()
    base = f"/v1/models/{mid}/uploads"
    r = await datasets.client.post(base, headers=ACME, json={"file_name": "huge.wav", "size": LIMIT + 1})
    assert r.status_code == 413 and r.json()["error"]["message"] == "File size exceeds 12MB limit: huge.wav"
    r = await datasets.client.post(base, headers=ACME, json={"file_name": "a.wav", "size": 10, "type": "TRANSCRIPT"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_transcript_format"
    r = await datasets.client.post(base, headers=ACME, json={"file_name": "a.wav", "size": 0})
    assert r.status_code == 422

    async def opened(name: str) -> dict:
        r = await datasets.client.post(base, headers=ACME, json={"file_name": name, "size": 100, "type": 1})
        assert r.status_code == 201, r.text
        s = r.json()
        async with httpx.AsyncClient() as outside:
            await put_part(outside, s["part_urls"][0]["url"], b"x" * 100)
        return s

    cancelled, abandoned = await opened("a.txt"), await opened("b.txt")
    keys = {s["id"]: f"tenants/acme/models/{mid}/datasets/{s['dataset_id']}/data" for s in (cancelled, abandoned)}
    assert all([await datasets.store.incomplete_uploads(k) for k in keys.values()])
    assert (await datasets.client.delete(f"{base}/{cancelled['id']}", headers=ACME)).status_code == 204
    assert await datasets.store.incomplete_uploads(keys[cancelled["id"]]) == []
    assert (await datasets.client.get(f"{base}/{cancelled['id']}", headers=ACME)).status_code == 404
    # Another tenant cannot see or touch a session.
    other = auth_headers("other")
    assert (await datasets.client.get(f"{base}/{abandoned['id']}", headers=other)).status_code == 404
    assert (await datasets.client.post(f"{base}/{abandoned['id']}/complete", headers=other)).status_code == 404
    # Nobody comes back: once older than the TTL, the sweeper aborts it.
    assert (await datasets.sweep(at(60)))["sessions"] == 0
    swept = await datasets.sweep(at(datasets.deps.session_ttl.total_seconds() + 60))
    assert swept["sessions"] >= 1
    assert await datasets.store.incomplete_uploads(keys[abandoned["id"]]) == []
    assert (await datasets.client.get(f"{base}/{abandoned['id']}", headers=ACME)).status_code == 404
    assert await datasets.store.leftovers(datasets.prefix(mid)) == []
    assert await datasets.listing(mid) == []


async def test_storage_refuses_a_part_whose_bytes_do_not_match_its_checksum(datasets) -> None:
    mid = await datasets.new_model()
    base = f"/v1/models/{mid}/uploads"
    s = (await datasets.client.post(base, headers=ACME, json={"file_name": "t.vtt", "size": 6})).json()
    url = s["part_urls"][0]["url"]
    async with httpx.AsyncClient() as outside:
        r = await outside.put(url, content=b"WEBVTX", headers={"x-amz-checksum-sha256": part_checksum(b"WEBVTT")})
        assert r.status_code == 400 and b"XAmzContentChecksumMismatch" in r.content, r.text
        r = await outside.put(url, content=b"WEBVTT")  # without a checksum: refused as well
        assert r.status_code == 400 and b"InvalidArgument" in r.content, r.text
        state = (await datasets.client.get(f"{base}/{s['id']}", headers=ACME)).json()
        assert state["parts_received"] == [] and state["missing_parts"] == [1]
        await put_part(outside, url, b"WEBVTT")
    state = (await datasets.client.get(f"{base}/{s['id']}", headers=ACME)).json()
    assert state["parts_received"][0]["checksum_sha256"] == part_checksum(b"WEBVTT")


async def test_a_url_that_signs_the_part_checksum_takes_only_that_checksum_and_matching_bytes(datasets) -> None:
    mid = await datasets.new_model()
    base = f"/v1/models/{mid}/uploads"
    s = (await datasets.client.post(base, headers=ACME, json={"file_name": "t.vtt", "size": 6})).json()
    good = part_checksum(b"WEBVTT")
    r = await datasets.client.post(
        f"{base}/{s['id']}/part-urls", headers=ACME, json={"parts": [{"part_number": 1, "checksum_sha256": good}]}
    )
    assert r.status_code == 200, r.text
    [signed] = r.json()["part_urls"]
    assert signed["part_number"] == 1 and signed["size"] == 6
    assert "x-amz-checksum-sha256" in signed["url"]  # among the signed headers
    async with httpx.AsyncClient() as outside:
        r = await outside.put(signed["url"], content=b"WEBVTX", headers={"x-amz-checksum-sha256": good})
        assert r.status_code == 400 and b"XAmzContentChecksumMismatch" in r.content, r.text
        other = part_checksum(b"WEBVTX")  # the damaged bytes with their own checksum: not the signed one
        r = await outside.put(signed["url"], content=b"WEBVTX", headers={"x-amz-checksum-sha256": other})
        assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content, r.text
        r = await outside.put(signed["url"], content=b"WEBVTT")  # without the header
        assert r.status_code in (400, 403), r.text
        state = (await datasets.client.get(f"{base}/{s['id']}", headers=ACME)).json()
        assert state["parts_received"] == []
        await put_part(outside, signed["url"], b"WEBVTT")
    r = await datasets.client.post(
        f"{base}/{s['id']}/part-urls", headers=ACME, json={"parts": [{"part_number": 2, "checksum_sha256": good}]}
    )
    assert r.status_code == 422 and "it has parts 1-1" in r.json()["error"]["message"]
    digest = hashlib.sha256(b"WEBVTT").hexdigest()
    r = await datasets.client.post(f"{base}/{s['id']}/complete", headers=ACME, json={"sha256": digest})
    assert r.status_code == 201, r.text
    r = await datasets.client.post(
        f"{base}/{s['id']}/part-urls", headers=ACME, json={"parts": [{"part_number": 1, "checksum_sha256": good}]}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


async def test_a_reported_part_checksum_that_storage_does_not_hold_is_refused(datasets) -> None:
    mid = await datasets.new_model()
    base = f"/v1/models/{mid}/uploads"
    s = (await datasets.client.post(base, headers=ACME, json={"file_name": "t.vtt", "size": 6})).json()
    async with httpx.AsyncClient() as outside:
        await put_part(outside, s["part_urls"][0]["url"], b"WEBVTT")
    wrong = {
        "sha256": hashlib.sha256(b"WEBVTT").hexdigest(),
        "parts": [{"part_number": 1, "checksum_sha256": part_checksum(b"other!")}],
    }
    r = await datasets.client.post(f"{base}/{s['id']}/complete", headers=ACME, json=wrong)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "part_checksum_mismatch" and "part 1" in err["message"] and "again" in err["message"]
    assert err["details"]["parts"][0]["stored"] == part_checksum(b"WEBVTT")
    assert (await datasets.client.get(f"{base}/{s['id']}", headers=ACME)).json()["state"] == "open"  # resumable
    # Without a file hash the service reads the object once to compute it (the console's case).
    read_backs = datasets.store.read_backs
    r = await datasets.client.post(f"{base}/{s['id']}/complete", headers=ACME)
    assert r.status_code == 201, r.text
    assert r.json()["dataset"]["sha256"] == hashlib.sha256(b"WEBVTT").hexdigest()
    assert datasets.store.read_backs == read_backs + 1


@pytest.mark.parametrize("alg", [SHA256, CRC32C])
async def test_an_upload_whose_parts_carry_no_checksum_is_refused_at_completion(datasets, alg) -> None:
    """A session opened before part checksums: storage took its parts unverified; they must be sent again."""
    mid = await datasets.new_model()
    base = f"/v1/models/{mid}/uploads"
    start = {"file_name": "t.vtt", "size": 6, "checksum_algorithm": alg.value}
    s = (await datasets.client.post(base, headers=ACME, json=start)).json()
    key = f"tenants/acme/models/{mid}/datasets/{s['dataset_id']}/data"
    # as such a session's upload looks in storage: opened without a checksum algorithm, its part sent without one
    [upload_id] = await datasets.store.incomplete_uploads(key)
    await datasets.store.abort(key, upload_id)
    async with datasets.service.pool.acquire() as conn:  # (the service's own row, rewritten as a test)
        old = await datasets.store.start_multipart(key, "text/vtt")
        await conn.execute("UPDATE upload_sessions SET s3_upload_id=$1 WHERE session_id=$2", old, uuid.UUID(s["id"]))
    await datasets.store.upload_part(key, old, 1, b"WEBVTT")
    r = await datasets.client.post(f"{base}/{s['id']}/complete", headers=ACME, json={"sha256": "0" * 64})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "part_checksum_missing" and err["details"] == {"parts": [1], "checksum_algorithm": alg.value}
    assert alg.header in err["message"]
    state = (await datasets.client.get(f"{base}/{s['id']}", headers=ACME)).json()
    assert state["state"] == "open" and state["missing_parts"] == [1]  # sent again by a resuming uploader
    async with httpx.AsyncClient() as outside:
        await put_part(outside, state["part_urls"][0]["url"], b"WEBVTT", alg)
    digest = hashlib.sha256(b"WEBVTT").hexdigest()
    r = await datasets.client.post(f"{base}/{s['id']}/complete", headers=ACME, json={"sha256": digest})
    assert r.status_code == 201 and r.json()["dataset"]["sha256"] == digest, r.text
    assert await datasets.object_bytes(key) == b"WEBVTT"


async def test_part_urls_are_signed_for_the_public_endpoint(stack) -> None:
    host, port = stack.minio_endpoint.rsplit(":", 1)
    public = f"localhost:{port}" if host != "localhost" else f"127.0.0.1:{port}"
    settings = MinioSettings(
        endpoint=stack.minio_endpoint,
        access_key=stack.minio_access_key,
        secret_key=stack.minio_secret_key,
        public_endpoint=public,
        bucket=f"pub-{uuid.uuid4().hex[:10]}",
    )
    store = S3ObjectStore(make_client(settings), make_client(settings, public=True), settings.bucket)
    ensure_bucket(make_client(settings), settings.bucket)
    upload_id = await store.start_multipart("k", "text/plain")
    url = store.presign_part("k", upload_id, 1, timedelta(seconds=60), 5)
    assert url.startswith(f"http://{public}/")

    async def chunked():
        yield b"hel"
        yield b"lo"

    async with httpx.AsyncClient() as outside:
        for wrong in (b"hello, and more", b"hell"):  # the URL carries its length: storage refuses any other
            r = await outside.put(url, content=wrong)
            assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content, r.text
        r = await outside.put(url, content=chunked())  # no Content-Length at all
        assert r.status_code in (403, 411), r.text
        assert await store.list_parts("k", upload_id) == []
        await put_part(outside, url, b"hello")
    assert [(p.number, p.size) for p in await store.list_parts("k", upload_id)] == [(1, 5)]
    await store.abort("k", upload_id)


async def test_several_sessions_complete_as_one_upload_batch(datasets, stack) -> None:
    """A big file and a small one from the same selection arrive as one batch, so training waits for both."""
    mid = await datasets.new_model()
    base = f"/v1/models/{mid}/uploads"
    files = {"talk.wav": os.urandom(PART + 10), "notes.txt": b"the patient was started on metoprolol\n"}
    sessions = {}
    async with httpx.AsyncClient(timeout=30) as outside:
        for name, data in files.items():
            r = await datasets.client.post(base, headers=ACME, json={"file_name": name, "size": len(data)})
            assert r.status_code == 201, r.text
            s = sessions[name] = r.json()
            for u in s["part_urls"]:
                n = u["part_number"]
                await put_part(outside, u["url"], data[(n - 1) * PART : n * PART])
    ids = [{"id": s["id"]} for s in sessions.values()]
    async with TopicReader(stack.kafka_bootstrap, datasets.topics.datasets) as reader:
        r = await datasets.client.post(f"{base}/complete", headers=ACME, json={"uploads": ids})
        assert r.status_code == 201, r.text
        await reader.until(lambda recs: sum(ev.REGISTRY.parse(x.value).model_id == mid for x in recs) >= 2)
    got = [e.payload() for e in map(ev.REGISTRY.parse, (x.value for x in reader.records)) if e.model_id == mid]
    expected = {uuid.UUID(s["dataset_id"]) for s in sessions.values()}
    assert {p.dataset.dataset_id for p in got} == expected
    assert all(set(p.batch) == expected for p in got)  # one batch for both
    again = await datasets.client.post(f"{base}/complete", headers=ACME, json={"uploads": ids})
    assert again.status_code == 200 and {d["id"] for d in again.json()["datasets"]} == {str(x) for x in expected}


async def test_a_crc32c_session_takes_parts_storage_verified_by_crc32c_and_completes_on_them(datasets) -> None:
    mid = await datasets.new_model()
    base = f"/v1/models/{mid}/uploads"
    data = os.urandom(PART + 3)
    chunks = {1: data[:PART], 2: data[PART:]}
    start = {"file_name": "talk.wav", "size": len(data), "checksum_algorithm": "CRC32C"}
    s = (await datasets.client.post(base, headers=ACME, json=start)).json()
    assert (s["checksum_algorithm"], s["checksum_header"]) == ("CRC32C", "x-amz-checksum-crc32c")
    key = f"tenants/acme/models/{mid}/datasets/{s['dataset_id']}/data"
    urls = {u["part_number"]: u["url"] for u in s["part_urls"]}
    damaged = bytes([chunks[2][0] ^ 1]) + chunks[2][1:]
    async with httpx.AsyncClient(timeout=30) as outside:
        crc = {"x-amz-checksum-crc32c": part_checksum(chunks[2], CRC32C)}
        r = await outside.put(urls[2], content=damaged, headers=crc)  # one bit flipped on the way
        assert r.status_code == 400 and b"XAmzContentChecksumMismatch" in r.content, r.text
        r = await outside.put(urls[2], content=chunks[2])  # without a checksum
        assert r.status_code == 400 and b"InvalidArgument" in r.content, r.text
        r = await outside.put(urls[2], content=chunks[2], headers={SHA256.header: part_checksum(chunks[2])})
        assert r.status_code == 400 and b"InvalidArgument" in r.content, r.text  # not the upload's algorithm
        assert (await datasets.client.get(f"{base}/{s['id']}", headers=ACME)).json()["parts_received"] == []
        for n, chunk in chunks.items():
            await put_part(outside, urls[n], chunk, CRC32C)
        # the signed-URL fallback signs the CRC32C header
        good = part_checksum(chunks[2], CRC32C)
        r = await datasets.client.post(
            f"{base}/{s['id']}/part-urls", headers=ACME, json={"parts": [{"part_number": 2, "checksum_crc32c": good}]}
        )
        assert r.status_code == 200 and r.json()["checksum_header"] == "x-amz-checksum-crc32c", r.text
        [signed] = r.json()["part_urls"]
        assert "x-amz-checksum-crc32c" in signed["url"]
        other = part_checksum(damaged, CRC32C)
        r = await outside.put(signed["url"], content=damaged, headers={"x-amz-checksum-crc32c": other})
        assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content, r.text
        await put_part(outside, signed["url"], chunks[2], CRC32C)
        sha_part = {"parts": [{"part_number": 2, "checksum_sha256": part_checksum(chunks[2])}]}
        r = await datasets.client.post(f"{base}/{s['id']}/part-urls", headers=ACME, json=sha_part)
        assert r.status_code == 422 and "checksum_crc32c" in r.json()["error"]["message"], r.text
    state = (await datasets.client.get(f"{base}/{s['id']}", headers=ACME)).json()
    assert [(p["part_number"], p["checksum_crc32c"], p["checksum_sha256"]) for p in state["parts_received"]] == [
        (n, part_checksum(c, CRC32C), None) for n, c in chunks.items()
    ]
    digest = hashlib.sha256(data).hexdigest()
    reported = [{"part_number": n, "checksum_crc32c": part_checksum(c, CRC32C)} for n, c in chunks.items()]
    wrong = [reported[0], {"part_number": 2, "checksum_crc32c": part_checksum(b"other", CRC32C)}]
    r = await datasets.client.post(f"{base}/{s['id']}/complete", headers=ACME, json={"sha256": digest, "parts": wrong})
    assert r.status_code == 422 and r.json()["error"]["code"] == "part_checksum_mismatch", r.text
    assert "CRC32C" in r.json()["error"]["message"]
    sha_parts = [{"part_number": n, "checksum_sha256": part_checksum(c)} for n, c in chunks.items()]
    r = await datasets.client.post(
        f"{base}/{s['id']}/complete", headers=ACME, json={"sha256": digest, "parts": sha_parts}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed", r.text
    mixed = [reported[0], sha_parts[1]]
    r = await datasets.client.post(f"{base}/{s['id']}/complete", headers=ACME, json={"sha256": digest, "parts": mixed})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed", r.text
    read_backs = datasets.store.read_backs
    r = await datasets.client.post(
        f"{base}/{s['id']}/complete", headers=ACME, json={"sha256": digest, "parts": reported}
    )
    assert r.status_code == 201, r.text
    assert r.json()["dataset"]["sha256"] == digest and datasets.store.read_backs == read_backs  # nothing read back
    assert await datasets.object_bytes(key) == data
