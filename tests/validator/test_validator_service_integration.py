"""The validator service on real MinIO, Kafka and PostgreSQL: DatasetUploaded in, a verdict out."""

import hashlib
import io
import json
import uuid

import pytest

from tests.support import TopicReader, publish, running, settings_for
from voxtrain_shared import events as ev
from voxtrain_shared.settings import ValidatorSettings
from voxtrain_shared.storage import ensure_bucket, make_client
from voxtrain_shared.topics import dead_letter
from voxtrain_shared.vocab import DatasetType as T
from voxtrain_validator.bootstrap import build

pytestmark = pytest.mark.integration


@pytest.fixture
async def validator(stack):
    settings = settings_for(ValidatorSettings, stack, VOXTRAIN_MAX_ATTEMPTS="2", VOXTRAIN_RETRY_BASE_SECONDS="0.2")
    svc = build(settings)
    svc.minio = make_client(settings.minio)
    ensure_bucket(svc.minio, settings.minio.bucket)
    async with running(svc) as client:
        svc.client = client
        yield svc


def uploaded(svc, model: uuid.UUID, kind: T, name: str, data: bytes | None, tenant: str = "acme",
             batch: list[uuid.UUID] | None = None) -> ev.Envelope:
    ds = uuid.uuid4()
    bucket = svc.settings.minio.bucket
    key = f"tenants/{tenant}/models/{model}/datasets/{ds}/data"
    if data is not None:  # None: the object is missing from storage
        svc.minio.put_object(bucket, key, io.BytesIO(data), len(data))
    obj = ev.DatasetObject(dataset_id=ds, dataset_type=kind, file_name=name, bucket=bucket, object_key=key,
                           size=len(data) if data is not None else 1, sha256=hashlib.sha256(data or b"").hexdigest())
    return ev.wrap(ev.DatasetUploaded(dataset=obj, batch=batch or [ds]), tenant_id=tenant, model_id=model)


def _with_batch(env: ev.Envelope, others: list[uuid.UUID]) -> ev.Envelope:
    p = env.payload()
    return ev.wrap(ev.DatasetUploaded(dataset=p.dataset, batch=[p.dataset.dataset_id, *others]),
                   tenant_id=env.tenant_id, model_id=env.model_id)


def verdicts(reader: TopicReader) -> dict[uuid.UUID, ev.Message]:
    return {p.dataset_id: p for p in (ev.REGISTRY.parse(r.value).payload() for r in reader.records)}


async def test_every_kind_of_file_gets_its_verdict_with_code_and_place(validator, stack, media) -> None:
    model = uuid.uuid4()
    good_mp3 = uploaded(validator, model, T.AUDIO, "ward.mp3", media.bytes("speech.mp3"))
    cases = [
        (good_mp3, None),
        (uploaded(validator, model, T.AUDIO, "talk.wav", media.bytes("speech.mp3")), ("invalid_audio_format", "MP3")),
        (uploaded(validator, model, T.AUDIO, "photo.m4a", media.bytes("image.png")), ("invalid_audio_format", "PNG")),
        (uploaded(validator, model, T.AUDIO, "cut.flac", media.bytes("speech.flac")[:3000]), ("invalid_audio_format", "")),
        (uploaded(validator, model, T.AUDIO, "empty.wav", b""), ("invalid_audio_format", "")),
        (uploaded(validator, model, T.TRANSCRIPT, "notes.txt", "caf\u00e9 au lait\n".encode("latin-1")),
         ("invalid_transcript_format", "UTF-8")),
        (uploaded(validator, model, T.TEST, "cues.vtt", b"WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nbackwards\n"),
         ("invalid_transcript_format", "")),
        (uploaded(validator, model, T.TRANSCRIPT, "good.srt", b"1\n00:00:00,000 --> 00:00:01,500\nhello there\n"), None),
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
    good = uploaded(validator, model, T.MANIFEST, "pairs.jsonl",
                    (json.dumps({"audio": "ward.wav", "text": "hello", "offset": 0.1, "duration": 0.5}) + "\n"
                     + json.dumps({"audio": str(a_id), "text": "again"}) + "\n").encode())
    bad = uploaded(validator, model, T.MANIFEST, "bad.jsonl",
                   (json.dumps({"audio": str(a_id), "text": "fine"}) + "\n"
                    + json.dumps({"audio": str(their_id), "text": "not yours"}) + "\n"
                    + json.dumps({"audio": "../../etc/passwd", "text": "no paths"}) + "\n"
                    + "{not json\n").encode())
    # one upload: the manifests come before the audio they reference, and say so in their batch
    batch = [a_id]
    good, bad = _with_batch(good, batch), _with_batch(bad, batch)
    too_long = uploaded(validator, model, T.MANIFEST, "late.jsonl",
                        (json.dumps({"audio": "ward.wav", "text": "past the end", "offset": 500, "duration": 1})
                         + "\n").encode())
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


async def test_unreadable_storage_is_retried_then_dead_lettered_and_the_model_told(validator, stack) -> None:
    missing = uploaded(validator, uuid.uuid4(), T.TRANSCRIPT, "gone.txt", None)
    topic = validator.topics.datasets
    async with TopicReader(stack.kafka_bootstrap, validator.topics.validation, dead_letter(topic)) as reader:
        await publish(stack.kafka_bootstrap, topic, missing)
        await reader.read(2, timeout=60)
    by_topic = {r.topic: r for r in reader.records}
    assert ev.REGISTRY.parse(by_topic[dead_letter(topic)].value).id == missing.id
    assert dict(by_topic[dead_letter(topic)].headers)["x-attempts"] == b"2"
    verdict = ev.REGISTRY.parse(by_topic[validator.topics.validation].value).payload()
    assert verdict.error.code == "validation_failed" and "could not be read from storage" in verdict.error.message
