"""The validator service on real MinIO, Kafka and PostgreSQL: DatasetUploaded (or ValidationRequested) in, a
verdict out; leases renewed, attempts capped, stale workers fenced off."""

import hashlib
import io
import json
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from minio import Minio

from tests.support import TopicReader, publish, running, settings_for
from voxtrain_shared import events as ev
from voxtrain_shared.service import Service
from voxtrain_shared.settings import MinioSettings, ValidatorSettings
from voxtrain_shared.storage import ensure_bucket, make_client
from voxtrain_shared.topics import dead_letter
from voxtrain_shared.vocab import DatasetType as T
from voxtrain_validator.bootstrap import build
from voxtrain_validator.domain import Dataset, Sibling
from voxtrain_validator.storage import object_validator

pytestmark = pytest.mark.integration


@dataclass
class RunningValidator:
    """A started validator service and a client of its bucket (to put the objects the tests upload)."""

    svc: Service
    settings: ValidatorSettings
    minio: Minio

    @property
    def topics(self) -> Any:
        return self.svc.topics


async def started(settings: ValidatorSettings, **hooks: Any) -> AsyncIterator[RunningValidator]:
    minio = make_client(settings.minio)
    ensure_bucket(minio, settings.minio.bucket)
    svc = build(settings, **hooks)
    async with running(svc):
        yield RunningValidator(svc, settings, minio)


@pytest.fixture
async def validator(stack) -> AsyncIterator[RunningValidator]:
    settings = settings_for(ValidatorSettings, stack, VOXTRAIN_MAX_ATTEMPTS="2", VOXTRAIN_RETRY_BASE_SECONDS="0.2")
    async for v in started(settings):
        yield v


def uploaded(
    svc: RunningValidator,
    model: uuid.UUID,
    kind: T,
    name: str,
    data: bytes | None,
    tenant: str = "acme",
    batch: list[uuid.UUID] | None = None,
) -> ev.Envelope:
    ds = uuid.uuid4()
    bucket = svc.settings.minio.bucket
    key = f"tenants/{tenant}/models/{model}/datasets/{ds}/data"
    if data is not None:  # None: the object is missing from storage
        svc.minio.put_object(bucket, key, io.BytesIO(data), len(data))
    obj = ev.DatasetObject(
        dataset_id=ds,
        dataset_type=kind,
        file_name=name,
        bucket=bucket,
        object_key=key,
        size=len(data) if data is not None else 1,
        sha256=hashlib.sha256(data or b"").hexdigest(),
    )
    return ev.wrap(ev.DatasetUploaded(dataset=obj, batch=batch or [ds]), tenant_id=tenant, model_id=model)


def requested(env: ev.Envelope) -> ev.Envelope:
    """models asks again for the verdict on ``env``'s dataset."""
    p = env.payload()
    return ev.wrap(
        ev.ValidationRequested(dataset=p.dataset, batch=p.batch, attempt=2),
        tenant_id=env.tenant_id,
        model_id=env.model_id,
    )


def _with_batch(env: ev.Envelope, others: list[uuid.UUID]) -> ev.Envelope:
    p = env.payload()
    return ev.wrap(
        ev.DatasetUploaded(dataset=p.dataset, batch=[p.dataset.dataset_id, *others]),
        tenant_id=env.tenant_id,
        model_id=env.model_id,
    )


async def only_verdict(v: RunningValidator, stack: Any, env: ev.Envelope) -> ev.Message:
    """Publish ``env`` and return the one verdict it gets (nothing else arrives, nothing is dead-lettered)."""
    topic = v.topics.datasets
    async with TopicReader(stack.kafka_bootstrap, v.topics.validation, dead_letter(topic)) as reader:
        await publish(stack.kafka_bootstrap, topic, env)
        await reader.read(1, timeout=60)
        await reader.settle(1)
    (record,) = reader.records
    assert record.topic == v.topics.validation
    return ev.REGISTRY.parse(record.value).payload()


def verdicts(reader: TopicReader) -> dict[uuid.UUID, ev.Message]:
    return {p.dataset_id: p for p in (ev.REGISTRY.parse(r.value).payload() for r in reader.records)}


async def test_every_kind_of_file_gets_its_verdict_with_code_and_place(validator, stack, media) -> None:
    model = uuid.uuid4()
    good_mp3 = uploaded(validator, model, T.AUDIO, "ward.mp3", media.bytes("speech.mp3"))
    cases = [
        (good_mp3, None),
        (uploaded(validator, model, T.AUDIO, "talk.wav", media.bytes("speech.mp3")), ("invalid_audio_format", "MP3")),
        (uploaded(validator, model, T.AUDIO, "photo.m4a", media.bytes("image.png")), ("invalid_audio_format", "PNG")),
        (
            uploaded(validator, model, T.AUDIO, "cut.flac", media.bytes("speech.flac")[:3000]),
            ("invalid_audio_format", ""),
        ),
        (uploaded(validator, model, T.AUDIO, "empty.wav", b""), ("invalid_audio_format", "")),
        (
            uploaded(validator, model, T.TRANSCRIPT, "notes.txt", "caf\u00e9 au lait\n".encode("latin-1")),
            ("invalid_transcript_format", "UTF-8"),
        ),
        (
            uploaded(validator, model, T.TEST, "cues.vtt", b"WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nbackwards\n"),
            ("invalid_transcript_format", ""),
        ),
        (
            uploaded(validator, model, T.TRANSCRIPT, "good.srt", b"1\n00:00:00,000 --> 00:00:01,500\nhello there\n"),
            None,
        ),
    ]
    envs = [e for e, _ in cases]
    async with TopicReader(stack.kafka_bootstrap, validator.topics.validation) as reader:
        await publish(stack.kafka_bootstrap, validator.topics.datasets, *envs)
        await reader.read(len(cases), timeout=120)
        await publish(stack.kafka_bootstrap, validator.topics.datasets, *envs[:3])  # redelivered
        await reader.settle(3)
    assert len(reader.records) == len(cases)  # redelivery validates and publishes nothing twice
    got = verdicts(reader)
    for env, expected in cases:
        v = got[env.payload().dataset.dataset_id]
        name = env.payload().dataset.file_name
        if expected is None:
            assert isinstance(v, ev.ValidationPassed), (name, v)
        else:
            assert isinstance(v, ev.ValidationFailed), (name, v)
            assert v.error.code == expected[0], (name, v.error)
            assert expected[1] in v.error.message, (name, v.error.message)
            assert v.error.details and v.error.file_name == name
    mp3 = got[good_mp3.payload().dataset.dataset_id]
    assert mp3.metadata["sample_rate"] > 0 and mp3.metadata["duration_seconds"] > 1
    latin = next(v for v in got.values() if v.file_name == "notes.txt")
    assert latin.error.details[0]["byte_offset"] == 3
    vtt = next(v for v in got.values() if v.file_name == "cues.vtt")
    assert vtt.error.details[0]["line"] == 3


async def test_manifests_resolve_only_within_their_model_and_tenant(validator, stack, media) -> None:
    model, foreign_model = uuid.uuid4(), uuid.uuid4()
    audio = uploaded(validator, model, T.AUDIO, "ward.wav", media.bytes("speech.wav"))
    theirs = uploaded(validator, foreign_model, T.AUDIO, "secret.wav", media.bytes("speech.wav"), tenant="other")
    a_id, their_id = audio.payload().dataset.dataset_id, theirs.payload().dataset.dataset_id
    good = uploaded(
        validator,
        model,
        T.MANIFEST,
        "pairs.jsonl",
        (
            json.dumps({"audio": "ward.wav", "text": "hello", "offset": 0.1, "duration": 0.5})
            + "\n"
            + json.dumps({"audio": str(a_id), "text": "again"})
            + "\n"
        ).encode(),
    )
    bad = uploaded(
        validator,
        model,
        T.MANIFEST,
        "bad.jsonl",
        (
            json.dumps({"audio": str(a_id), "text": "fine"})
            + "\n"
            + json.dumps({"audio": str(their_id), "text": "not yours"})
            + "\n"
            + json.dumps({"audio": "../../etc/passwd", "text": "no paths"})
            + "\n"
            + "{not json\n"
        ).encode(),
    )
    # one upload: the manifests come before the audio they reference, and say so in their batch
    batch = [a_id]
    good, bad = _with_batch(good, batch), _with_batch(bad, batch)
    too_long = uploaded(
        validator,
        model,
        T.MANIFEST,
        "late.jsonl",
        (json.dumps({"audio": "ward.wav", "text": "past the end", "offset": 500, "duration": 1}) + "\n").encode(),
    )
    too_long = _with_batch(too_long, batch)
    async with TopicReader(stack.kafka_bootstrap, validator.topics.validation) as reader:
        # audio and manifests arrive together: the manifests may be read while the audio is still pending
        await publish(stack.kafka_bootstrap, validator.topics.datasets, theirs, too_long, good, bad, audio)
        await reader.read(5, timeout=120)
    got = verdicts(reader)
    assert isinstance(got[good.payload().dataset.dataset_id], ev.ValidationPassed)
    late = got[too_long.payload().dataset.dataset_id]  # checked again once the audio's duration was known
    assert isinstance(late, ev.ValidationFailed) and late.error.details[0]["line"] == 1, late
    failed = got[bad.payload().dataset.dataset_id]
    assert isinstance(failed, ev.ValidationFailed) and failed.error.code == "validation_failed"
    assert sorted(d["line"] for d in failed.error.details) == [2, 3, 4]


async def test_a_missing_object_fails_at_once_and_nothing_is_dead_lettered(validator, stack) -> None:
    missing = uploaded(validator, uuid.uuid4(), T.TRANSCRIPT, "gone.txt", None)
    verdict = await only_verdict(validator, stack, missing)
    assert verdict.error.code == "validation_failed" and "gone.txt is no longer in storage" in verdict.error.message


# ---------------------------------------------------------------- answering ValidationRequested


async def test_a_validation_request_republishes_a_verdict_and_requeues_a_lost_upload(validator, stack, media) -> None:
    model = uuid.uuid4()
    known = uploaded(validator, model, T.TRANSCRIPT, "known.txt", b"hello there\n")
    lost = uploaded(validator, model, T.AUDIO, "lost.mp3", media.bytes("speech.mp3"))  # never announced
    ask_known = requested(known)
    async with TopicReader(stack.kafka_bootstrap, validator.topics.validation) as reader:
        await publish(stack.kafka_bootstrap, validator.topics.datasets, known)
        await reader.read(1, timeout=60)
        await publish(stack.kafka_bootstrap, validator.topics.models, ask_known, requested(lost), ask_known)
        await reader.read(3, timeout=60)
        await reader.settle(2)
    envs = [ev.REGISTRY.parse(r.value) for r in reader.records]
    assert len(envs) == 3  # the redelivered request was answered once
    first, again = (e for e in envs if e.payload().dataset_id == known.payload().dataset.dataset_id)
    assert again.id != first.id and again.payload() == first.payload()  # the same verdict, published again
    assert again.causation_id == ask_known.id
    (late,) = (e for e in envs if e.payload().dataset_id == lost.payload().dataset.dataset_id)
    assert isinstance(late.payload(), ev.ValidationPassed) and late.payload().metadata["duration_seconds"] > 1


# ---------------------------------------------------------------- storage outages, leases, attempts


def unreachable(settings: MinioSettings) -> Minio:
    """A client of a store that is down (nothing listens there); urllib3 does not retry on its own."""
    import urllib3

    return Minio(
        "127.0.0.1:9",
        access_key="x",
        secret_key="y",
        secure=False,
        http_client=urllib3.PoolManager(retries=False, timeout=2),
    )


class Outage:
    """The real storage adapter, reading from a store that is down for the first ``failures`` checks."""

    def __init__(self, settings: ValidatorSettings, failures: int) -> None:
        self._up, self._down = (
            object_validator(make_client(settings.minio)),
            object_validator(unreachable(settings.minio)),
        )
        self.failures, self.calls, self._lock = failures, 0, threading.Lock()

    def __call__(self, dataset: Dataset, siblings: Any, cancelled: threading.Event) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            down = self.calls <= self.failures
        return (self._down if down else self._up)(dataset, siblings, cancelled)


@pytest.mark.parametrize("failures", [1, 99])
async def test_storage_that_is_briefly_down_is_retried_and_one_that_stays_down_fails_naming_it(stack, failures) -> None:
    settings = settings_for(ValidatorSettings, stack, VOXTRAIN_MAX_ATTEMPTS="2", VOXTRAIN_RETRY_BASE_SECONDS="0.2")
    outage = Outage(settings, failures)
    async for v in started(settings, validate=outage):
        verdict = await only_verdict(v, stack, uploaded(v, uuid.uuid4(), T.TRANSCRIPT, "notes.txt", b"hello there\n"))
    assert outage.calls == 2
    if failures == 1:
        assert isinstance(verdict, ev.ValidationPassed)  # not counted as a bad file
    else:
        assert verdict.error.code == "validation_failed"
        assert "could not be read from storage in 2 attempts" in verdict.error.message
        assert "127.0.0.1" not in verdict.error.message  # no internal address in what a user reads


class Slow:
    """The real check, taking ``seconds`` longer than it does (hours of audio); counts the checks per dataset."""

    def __init__(self, settings: ValidatorSettings, seconds: float) -> None:
        self._real, self._seconds = object_validator(make_client(settings.minio)), seconds
        self.calls: Counter[uuid.UUID] = Counter()
        self._lock = threading.Lock()

    def __call__(
        self, dataset: Dataset, siblings: dict[uuid.UUID, Sibling], cancelled: threading.Event
    ) -> dict[str, Any]:
        with self._lock:
            self.calls[dataset.dataset_id] += 1
        cancelled.wait(self._seconds)
        return self._real(dataset, siblings, cancelled)


async def test_a_job_longer_than_its_lease_keeps_it_and_no_second_worker_takes_it(stack, media) -> None:
    settings = settings_for(ValidatorSettings, stack, VOXTRAIN_LEASE_SECONDS="1", VOXTRAIN_CONCURRENCY="1")
    slow = Slow(settings, 4.0)  # four leases long
    runs = [
        started(settings, validate=slow, owner="one", poll_seconds=0.1),
        started(settings, validate=slow, owner="two", poll_seconds=0.1),
    ]
    first, _second = [await anext(r) for r in runs]  # two replicas on one database, both polling for jobs
    try:
        env = uploaded(first, uuid.uuid4(), T.AUDIO, "long.wav", media.bytes("speech.wav"))
        async with TopicReader(stack.kafka_bootstrap, first.topics.validation) as reader:
            await publish(stack.kafka_bootstrap, first.topics.datasets, env)
            await reader.read(1, timeout=60)
            await reader.settle(2)
    finally:
        for r in runs:
            await r.aclose()
    assert slow.calls == {env.payload().dataset.dataset_id: 1}
    (record,) = reader.records
    assert isinstance(ev.REGISTRY.parse(record.value).payload(), ev.ValidationPassed)
