"""One contract for object stores, run against the in-memory fake and real MinIO; and the streaming
writer on top of it (exact parts, hashes, limits, aborts, flat memory)."""

import hashlib
import os
import tracemalloc
import uuid
from dataclasses import replace

import pytest

from tests.datasets.fakes import CRC32C, SHA256, FakeObjectStore, checksum_bytes, part_checksum
from voxtrain_datasets.storage import ObjectTooLarge, PartRefused, S3ObjectStore, StreamingWriter, UploadGone
from voxtrain_shared.settings import MinioSettings
from voxtrain_shared.storage import ensure_bucket, make_client

MiB = 1024**2


@pytest.fixture(params=["fake", pytest.param("minio", marks=pytest.mark.integration)])
def store(request):
    if request.param == "fake":
        return FakeObjectStore()
    stack = request.getfixturevalue("stack")
    settings = MinioSettings(
        endpoint=stack.minio_endpoint,
        access_key=stack.minio_access_key,
        secret_key=stack.minio_secret_key,
        bucket=f"contract-{uuid.uuid4().hex[:10]}",
    )
    ensure_bucket(make_client(settings), settings.bucket)
    return S3ObjectStore(make_client(settings), make_client(settings, public=True), settings.bucket)


def key() -> str:
    return f"tenants/t/models/{uuid.uuid4()}/datasets/{uuid.uuid4()}/data"


async def test_put_size_hash_remove(store) -> None:
    k = key()
    assert await store.size_of(k) is None
    await store.put(k, b"hello", "text/plain")
    assert await store.size_of(k) == 5
    assert await store.sha256_of(k) == (5, hashlib.sha256(b"hello").hexdigest())
    await store.remove(k)
    await store.remove(k)  # a missing object is fine
    assert await store.size_of(k) is None


async def test_multipart_lifecycle(store) -> None:
    k = key()
    upload = await store.start_multipart(k, "audio/wav")
    one, two = os.urandom(5 * MiB), b"tail"
    await store.upload_part(k, upload, 2, two)
    await store.upload_part(k, upload, 1, one)
    parts = await store.list_parts(k, upload)
    assert [(p.number, p.size) for p in parts] == [(1, 5 * MiB), (2, 4)]
    await store.complete(k, upload, parts)
    assert await store.sha256_of(k) == (5 * MiB + 4, hashlib.sha256(one + two).hexdigest())
    with pytest.raises(UploadGone):
        await store.list_parts(k, upload)
    await store.abort(k, upload)  # a finished upload: nothing to do


@pytest.mark.parametrize("alg", [SHA256, CRC32C])
async def test_a_checksummed_upload_takes_only_parts_whose_bytes_match_their_checksum(store, alg) -> None:
    k = key()
    upload = await store.start_multipart(k, "audio/wav", checksum=alg)
    one, two = os.urandom(5 * MiB), b"tail"
    corrupted = bytes([one[0] ^ 1]) + one[1:]
    with pytest.raises(PartRefused):  # one bit flipped on the way: storage refuses the part
        await store.upload_part(k, upload, 1, corrupted, part_checksum(one, alg), alg)
    with pytest.raises(PartRefused):  # no checksum at all: refused too
        await store.upload_part(k, upload, 2, two)
    other = CRC32C if alg is SHA256 else SHA256
    with pytest.raises(PartRefused):  # a (right) checksum of another algorithm than the upload's: refused
        await store.upload_part(k, upload, 2, two, part_checksum(two, other), other)
    assert await store.list_parts(k, upload, alg) == []
    await store.upload_part(k, upload, 2, two, part_checksum(two, alg), alg)
    await store.upload_part(k, upload, 1, one, part_checksum(one, alg), alg)
    parts = await store.list_parts(k, upload, alg)
    assert [(p.number, p.size, p.checksum) for p in parts] == [
        (1, 5 * MiB, part_checksum(one, alg)),
        (2, 4, part_checksum(two, alg)),
    ]
    assert [p.checksum for p in await store.list_parts(k, upload, other)] == [None, None]
    with pytest.raises(PartRefused):  # completing with other checksums than the stored ones: refused
        await store.complete(k, upload, [replace(parts[0], checksum=part_checksum(two, alg)), parts[1]], alg)
    composite = await store.complete(k, upload, parts, alg)
    # storage's composite: the checksum of the parts' checksums (big-endian bytes), and the part count
    assert composite == f"{part_checksum(checksum_bytes(one, alg) + checksum_bytes(two, alg), alg)}-2"
    assert await store.sha256_of(k) == (5 * MiB + 4, hashlib.sha256(one + two).hexdigest())


async def test_parts_of_an_unchecksummed_upload_sent_again_with_checksums_complete(store) -> None:
    """Upload sessions opened before part checksums: their parts are sent again, with them."""
    k = key()
    upload = await store.start_multipart(k, "audio/wav")
    await store.upload_part(k, upload, 1, b"tail")
    assert [p.checksum for p in await store.list_parts(k, upload)] == [None]
    with pytest.raises(PartRefused):  # storage verifies a checksum sent with a part of any upload
        await store.upload_part(k, upload, 1, b"tall", part_checksum(b"tail"))
    await store.upload_part(k, upload, 1, b"tail", part_checksum(b"tail"))
    parts = await store.list_parts(k, upload)
    assert [p.checksum for p in parts] == [part_checksum(b"tail")]
    assert await store.complete(k, upload, parts) is None  # completes; no composite checksum for such an upload
    assert await store.sha256_of(k) == (4, hashlib.sha256(b"tail").hexdigest())


async def test_abort_discards_parts(store) -> None:
    k = key()
    first, second = await store.start_multipart(k, "x"), await store.start_multipart(k, "x")
    await store.upload_part(k, first, 1, b"abc")
    await store.abort(k, first)
    with pytest.raises(UploadGone):
        await store.list_parts(k, first)
    assert await store.abort_all(k) == 1  # the second one
    with pytest.raises(UploadGone):
        await store.upload_part(k, second, 1, b"x")
    assert await store.size_of(k) is None


@pytest.mark.parametrize("size", [0, 1, 5 * MiB, 5 * MiB + 1, 17 * MiB + 3])
async def test_the_writer_cuts_exact_parts_and_hashes_on_the_way(store, size: int) -> None:
    data = os.urandom(size)
    w = StreamingWriter(store, key(), "audio/wav", part_size=5 * MiB, limit=64 * MiB)
    for i in range(0, size, 65_536):
        await w.write(memoryview(data)[i : i + 65_536])
    obj = await w.finish()
    assert (obj.size, obj.sha256) == (size, hashlib.sha256(data).hexdigest())
    assert await store.sha256_of(obj.key) == (size, obj.sha256)
    assert (w.upload_id is None) == (size <= 5 * MiB)  # small files are one PUT


async def test_the_writer_stops_at_the_limit_and_abort_leaves_nothing(store) -> None:
    k = key()
    w = StreamingWriter(store, k, "audio/wav", part_size=5 * MiB, limit=11 * MiB)
    with pytest.raises(ObjectTooLarge):
        for _ in range(12):
            await w.write(os.urandom(MiB))
    assert w.upload_id is not None
    await w.abort()
    assert await store.incomplete_uploads(k) == [] and await store.size_of(k) is None


async def test_the_writers_memory_does_not_grow_with_the_file() -> None:
    store = FakeObjectStore(keep_bytes=False)
    chunk = os.urandom(64 * 1024)

    async def peak(size: int) -> int:
        w = StreamingWriter(store, key(), "x", part_size=5 * MiB, limit=10**12)
        tracemalloc.start()
        for _ in range(size // len(chunk)):
            await w.write(bytes(chunk))  # a fresh object per chunk, as a server hands them over
        await w.finish()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = await peak(20 * MiB), await peak(200 * MiB)
    assert large < 6 * 5 * MiB, f"peak {large / MiB:.0f} MiB for 200 MiB through 5 MiB parts"
    assert large < small * 1.5
