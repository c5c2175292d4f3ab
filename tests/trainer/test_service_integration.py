"""The trainer service on real Kafka, PostgreSQL and MinIO: TrainingRequested in, a trained model out."""

import hashlib
import io
import json
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.support import TopicReader, auth_headers, publish, running, settings_for
from tests.trainer.medical_domain import TEST_SENTENCES, TRAINING_TEXT, speak, speak_all
from voxtrain_shared import events as ev
from voxtrain_shared.settings import TrainerSettings
from voxtrain_shared.storage import ensure_bucket, make_client
from voxtrain_shared.vocab import DatasetType
from voxtrain_trainer.bootstrap import build

pytestmark = pytest.mark.integration
ACME = auth_headers("acme")


@asynccontextmanager
async def started_trainer(stack, tmp_path, **env: str):
    settings = settings_for(TrainerSettings, stack, VOXTRAIN_WORK_DIR=str(tmp_path / "work"), **env)
    svc = build(settings)
    async with running(svc) as client:
        svc.client = client
        svc.minio = make_client(settings.minio)
        ensure_bucket(svc.minio, settings.minio.bucket)
        yield svc


@pytest.fixture
async def trainer(stack, tmp_path):
    async with started_trainer(stack, tmp_path, VOXTRAIN_HEARTBEAT_SECONDS="0.5", VOXTRAIN_LEASE_SECONDS="2") as svc:
        yield svc


def put(svc, tenant: str, model: uuid.UUID, kind: DatasetType, name: str, data: bytes) -> ev.DatasetObject:
    ds = uuid.uuid4()
    bucket = svc.settings.minio.bucket
    key = f"tenants/{tenant}/models/{model}/datasets/{ds}/data"
    svc.minio.put_object(bucket, key, io.BytesIO(data), len(data))
    return ev.DatasetObject(dataset_id=ds, dataset_type=kind, file_name=name, bucket=bucket, object_key=key,
                            size=len(data), sha256=hashlib.sha256(data).hexdigest())


async def request(svc, stack, model: uuid.UUID, datasets: list[ev.DatasetObject]) -> tuple[uuid.UUID, list]:
    run_id = uuid.uuid4()
    env = ev.wrap(ev.TrainingRequested(run_id=run_id, language="en-US", datasets=datasets),
                  tenant_id="acme", model_id=model)
    await publish(stack.kafka_bootstrap, svc.topics.training_commands, env)
    await publish(stack.kafka_bootstrap, svc.topics.training_commands, env)  # redelivered: one run only
    return run_id, []


def _terminal(records: list) -> bool:
    return any(ev.REGISTRY.parse(r.value).type in ("TrainingSucceeded", "TrainingFailed") for r in records)


async def finished(reader: TopicReader, timeout: float) -> list[ev.Envelope]:
    await reader.until(_terminal, timeout=timeout)
    return [ev.REGISTRY.parse(r.value) for r in reader.records]


async def test_trains_a_domain_model_that_beats_the_base_model_and_transcribes(trainer, stack, tmp_path) -> None:
    model = uuid.uuid4()
    audio = speak_all(TEST_SENTENCES[:5], tmp_path / "audio", "t")
    objs = [put(trainer, "acme", model, DatasetType.TRANSCRIPT, "notes.txt", TRAINING_TEXT.encode())]
    lines = []
    for i, (path, text) in enumerate(zip(audio, TEST_SENTENCES)):
        o = put(trainer, "acme", model, DatasetType.AUDIO, f"t{i}.wav", path.read_bytes())
        objs.append(o)
        lines.append(json.dumps({"audio": str(o.dataset_id) if i % 2 else o.file_name, "text": text, "split": "test"}))
    objs.append(put(trainer, "acme", model, DatasetType.MANIFEST, "pairs.jsonl", "\n".join(lines).encode()))
    async with TopicReader(stack.kafka_bootstrap, trainer.topics.training_events) as reader:
        run_id, _ = await request(trainer, stack, model, objs)
        got = await finished(reader, timeout=400)
        await reader.settle(1)
    got = [ev.REGISTRY.parse(r.value) for r in reader.records]
    types = [e.type for e in got]
    assert types[0] == "TrainingStarted" and types[-1] == "TrainingSucceeded", types
    assert types.count("TrainingStarted") == 1 and "TrainingProgress" in types
    stages = {e.payload().stage for e in got if e.type == "TrainingProgress"}
    assert "store" in stages and len(stages) >= 3, stages  # progress is sampled, fast stages may be skipped
    done = got[-1].payload()
    assert done.run_id == run_id and got[-1].causation_id is not None
    wer = done.metrics["evaluation"]["wer"]
    assert wer["custom"]["wer"] < wer["base"]["wer"] - 0.2, wer
    assert {"lm", "lexicon"} <= set(done.artifacts)
    for uri in done.artifacts.values():
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        assert key.startswith(f"tenants/acme/models/{model}/runs/{run_id}/")
        trainer.minio.stat_object(bucket, key)

    # The trained model is available for use: transcribe a new domain utterance with it.
    new = speak("Continue warfarin and check the international normalized ratio.", tmp_path / "new.wav", "en-us+m3")
    r = await trainer.client.post(f"/v1/models/{model}/transcriptions", headers=ACME,
                                  files={"file": ("new.wav", new.read_bytes(), "audio/wav")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "warfarin" in body["text"] and body["words"][0]["start"] >= 0
    base = await trainer.client.post("/v1/models/base/transcriptions", headers=ACME,
                                     files={"file": ("new.wav", new.read_bytes(), "audio/wav")})
    assert base.status_code == 200 and base.json()["model"] == "base"
    # Another tenant cannot use it.
    r = await trainer.client.post(f"/v1/models/{model}/transcriptions", headers=auth_headers("other"),
                                  files={"file": ("new.wav", new.read_bytes(), "audio/wav")})
    assert r.status_code == 409


async def test_no_training_text_fails_with_a_clear_code(trainer, stack, tmp_path) -> None:
    model = uuid.uuid4()
    wav = speak("hello there", tmp_path / "a.wav", "en-us+m3")
    objs = [put(trainer, "acme", model, DatasetType.AUDIO, "a.wav", wav.read_bytes())]
    async with TopicReader(stack.kafka_bootstrap, trainer.topics.training_events) as reader:
        await request(trainer, stack, model, objs)
        got = await finished(reader, timeout=120)
    failed = got[-1].payload()
    assert got[-1].type == "TrainingFailed" and failed.error.code == "no_training_text"
    assert failed.error.message


async def test_a_run_whose_trainer_died_is_failed_with_worker_lost(trainer, stack) -> None:
    model, run_id = uuid.uuid4(), uuid.uuid4()
    req = ev.wrap(ev.TrainingRequested(run_id=run_id, language="en-US", datasets=[]), tenant_id="acme", model_id=model)
    async with trainer.pool.acquire() as conn:  # a run left behind by a replica that was killed
        await conn.execute(
            "INSERT INTO runs (run_id, tenant_id, model_id, status, request, owner, heartbeat_at, started_at) "
            "VALUES ($1, 'acme', $2, 'running', $3, 'killed-replica', now() - interval '1 hour', now())",
            run_id, model, req.to_bytes())
    async with TopicReader(stack.kafka_bootstrap, trainer.topics.training_events) as reader:
        got = await finished(reader, timeout=30)  # the running supervisor reaps it by itself
    assert got[-1].payload().run_id == run_id and got[-1].payload().error.code == "worker_lost"


@pytest.fixture
async def impatient_trainer(stack, tmp_path):
    async with started_trainer(stack, tmp_path, VOXTRAIN_TIME_LIMIT_SECONDS="1") as svc:
        yield svc


async def test_a_run_over_the_time_limit_is_stopped_and_failed(impatient_trainer, stack) -> None:
    model = uuid.uuid4()
    corpus = (TRAINING_TEXT * 40).encode()  # takes well over a second to train on
    objs = [put(impatient_trainer, "acme", model, DatasetType.TRANSCRIPT, "notes.txt", corpus)]
    async with TopicReader(stack.kafka_bootstrap, impatient_trainer.topics.training_events) as reader:
        await request(impatient_trainer, stack, model, objs)
        got = await finished(reader, timeout=60)
    assert got[-1].type == "TrainingFailed" and got[-1].payload().error.code == "training_timeout"
    assert "limit" in got[-1].payload().error.message


async def test_a_killed_worker_process_fails_the_run_with_worker_lost(trainer, stack) -> None:
    import os
    import signal

    model = uuid.uuid4()
    objs = [put(trainer, "acme", model, DatasetType.TRANSCRIPT, "notes.txt", (TRAINING_TEXT * 40).encode())]
    async with TopicReader(stack.kafka_bootstrap, trainer.topics.training_events) as reader:
        await request(trainer, stack, model, objs)
        await reader.until(lambda recs: any(ev.REGISTRY.parse(r.value).type == "TrainingStarted" for r in recs), 60)
        (active,) = trainer.supervisor._active.values()  # the worker process of this run
        os.kill(active.process.pid, signal.SIGKILL)
        got = await finished(reader, timeout=60)
    assert got[-1].type == "TrainingFailed" and got[-1].payload().error.code == "worker_lost"
    assert "exit code -9" in got[-1].payload().error.message
