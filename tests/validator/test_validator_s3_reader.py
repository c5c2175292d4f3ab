"""S3RangeReader over a fake object store with the same interface as ``minio.Minio``.

These tests pin the reader's contract (ranged GETs, bounded cache, seeks, retries, what an error
looks like) and that PyAV and the text reader work through it. The same contract still has to be
run against a real MinIO once the shared test stack is available to this suite.
"""

from __future__ import annotations

import io

import pytest
from minio.error import S3Error

from tests.fakes import FakeObjectStore
from voxtrain_shared.range_reader import ObjectReadError, S3RangeReader
from voxtrain_validator.rules import SourceReadError, validate_audio, validate_transcript


def s3_error(code: str) -> S3Error:
    return S3Error(None, code, "refused", "/b/k", "req", "host", "b", "k")


DATA = bytes(range(256)) * 100  # 25,600 bytes


def reader(store: FakeObjectStore, **kwargs) -> S3RangeReader:
    kwargs.setdefault("chunk_size", 1000)
    kwargs.setdefault("retry_delay", 0)
    return S3RangeReader(store, "b", "k", **kwargs)


def test_reads_the_whole_object_in_ranged_chunks():
    store = FakeObjectStore(**{"b/k": DATA})
    r = reader(store, size=len(DATA))

    assert r.read() == DATA
    assert [(o, n) for o, n, _ in store.gets] == [(i * 1000, min(1000, len(DATA) - i * 1000)) for i in range(26)]
    assert all(resp.closed and resp.released for resp in store.responses)
    assert r.read(10) == b""


def test_seek_tell_and_reads_across_chunk_boundaries():
    store = FakeObjectStore(**{"b/k": DATA})
    r = io.BufferedReader(reader(store, size=len(DATA)))

    assert r.seek(995) == 995 and r.read(10) == DATA[995:1005]
    assert r.seek(-7, io.SEEK_END) == len(DATA) - 7 and r.read() == DATA[-7:]
    assert r.seek(0) == 0 and r.read(3) == DATA[:3]
    assert r.tell() == 3
    assert r.seek(len(DATA) + 50) == len(DATA) + 50 and r.read(5) == b""


def test_memory_is_bounded_by_the_chunk_cache():
    store = FakeObjectStore(**{"b/k": DATA})
    r = reader(store, size=len(DATA), cached_chunks=2)

    for start in range(0, len(DATA), 500):
        r.seek(start)
        r.read(500)
        assert len(r._chunks) <= 2
    r.seek(24_000)  # an index at the end, then back to the start: both stay cached
    r.read(10)
    r.seek(0)
    r.read(10)
    before = len(store.gets)
    r.seek(24_005)
    r.read(10)
    assert len(store.gets) == before


def test_size_and_etag_come_from_stat_when_not_given():
    store = FakeObjectStore(**{"b/k": DATA})
    r = reader(store)

    assert r.size == len(DATA)
    r.read(1)
    assert store.gets[0][2] == {"If-Match": "etag-1"}


def test_transient_failures_are_retried():
    store = FakeObjectStore(**{"b/k": DATA})
    store.failures = [ConnectionResetError("reset"), TimeoutError("slow")]
    store.truncate_next = 0
    r = reader(store, size=len(DATA), retries=3)

    assert r.read(20) == DATA[:20]
    assert len(store.gets) == 3


def test_a_short_body_is_retried_then_reported():
    store = FakeObjectStore(**{"b/k": DATA})
    store.truncate_next = 5
    r = reader(store, size=len(DATA), retries=3)

    with pytest.raises(ObjectReadError, match="short read"):
        r.read(20)
    assert len(store.gets) == 3


def test_permanent_errors_are_not_retried():
    store = FakeObjectStore(**{"b/k": DATA})
    store.failures = [s3_error("NoSuchKey")]
    r = reader(store, size=len(DATA), retries=5)

    with pytest.raises(ObjectReadError, match=r"NoSuchKey|refused"):
        r.read(20)
    assert len(store.gets) == 1


def test_closed_reader_refuses_io():
    r = reader(FakeObjectStore(**{"b/k": DATA}), size=len(DATA))
    r.close()

    with pytest.raises(ValueError):
        r.read(1)


# ------------------------------------------------------------------ the rules through the reader


@pytest.mark.parametrize("name", ["speech.wav", "speech.mp3", "speech.m4a", "speech.flac"])
def test_audio_validates_the_same_through_the_reader(media, name):
    data = media.bytes(name)
    store = FakeObjectStore(**{"b/k": data})
    ext = name.rsplit(".", 1)[1]

    through_store = validate_audio(reader(store, size=len(data), chunk_size=16 * 1024), ext)
    from_memory = validate_audio(io.BytesIO(data), ext)

    assert through_store == from_memory and through_store.passed
    assert max(n for _, n, _ in store.gets) <= 16 * 1024


def test_mp4_with_its_index_at_the_end_needs_few_extra_requests(media):
    data = media.bytes("speech.m4a")
    store = FakeObjectStore(**{"b/k": data})

    assert validate_audio(reader(store, size=len(data), chunk_size=8192), "m4a").passed
    chunks = -(-len(data) // 8192)
    assert len(store.gets) <= chunks + 4


def test_transcript_validates_through_the_reader():
    cues = "".join(f"00:00:{i:02d}.000 --> 00:00:{i:02d}.500\nword{i} café\n\n" for i in range(50))
    text = ("WEBVTT\n\n" + cues).encode()
    store = FakeObjectStore(**{"b/k": text})

    outcome = validate_transcript(reader(store, size=len(text), chunk_size=100), "vtt")

    assert outcome.passed and outcome.metadata["cues"] == 50


def test_a_store_failure_mid_file_is_not_the_files_fault(media):
    data = media.bytes("speech.flac")
    store = FakeObjectStore(**{"b/k": data})
    r = reader(store, size=len(data), chunk_size=4096, retries=2)
    r.read(8192)  # the header is fine...
    r.seek(0)
    store.failures = [s3_error("InternalError")] * 10  # ...then the store breaks down

    with pytest.raises(SourceReadError) as raised:
        validate_audio(r, "flac")
    assert isinstance(raised.value.__cause__, ObjectReadError)
