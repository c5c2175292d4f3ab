"""The trainer service on real Kafka, PostgreSQL and MinIO: TrainingRequested in, a trained model out —
and runs that survive killed workers, dead replicas and repeated requests."""

import asyncio
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from tests.support import TopicReader, auth_headers, eventually, publish, running, service_env, settings_for, unique
from tests.trainer.medical_domain import TEST_SENTENCES, TRAINING_TEXT, speak, speak_all
from voxtrain_shared import events as ev
from voxtrain_shared.db import create_pool, migrate
from voxtrain_shared.service import Service
from voxtrain_shared.settings import TrainerSettings
from voxtrain_shared.storage import ensure_bucket, make_client
from voxtrain_shared.vocab import DatasetType, Scope
from voxtrain_trainer import handlers as h
from voxtrain_trainer.bootstrap import MIGRATIONS, build
from voxtrain_trainer.processes import WorkerProcess
from voxtrain_trainer.workers import policy_of

pytestmark = pytest.mark.integration
ACME = auth_headers("acme")
BIG_CORPUS = (TRAINING_TEXT * 40).encode()  # takes well over a second to train on


@dataclass
class Trainer:
    settings: TrainerSettings
    minio: Minio
    svc: Service | None = None  # None: the service runs in another process
    client: Any = None
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def topics(self):
        return self.settings.kafka.topics

    @property
    def pool(self):
        assert self.svc is not None
        return self.svc.pool


@asynccontextmanager
async def started_trainer(stack, tmp_path, **env: str):
    settings = settings_for(TrainerSettings, stack, VOXTRAIN_WORK_DIR=str(tmp_path / "work"), **env)
    workers: list[WorkerProcess] = []
    svc = build(settings, on_worker_started=workers.append)
    async with running(svc) as client:
        minio = make_client(settings.minio)
        ensure_bucket(minio, settings.minio.bucket)
        yield Trainer(settings, minio, svc, client, workers)


@asynccontextmanager
async def migrated(stack):
    """The trainer's schema on the real database, without the service: (settings, pool, unit of work)."""
    settings = settings_for(TrainerSettings, stack)
    schema = settings.postgres.schema_name
    pool = await create_pool(stack.postgres_dsn, schema)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, schema, MIGRATIONS)
        yield settings, pool, h.unit_of_work(lambda: pool, schema, settings.kafka.topics)
    finally:
        await pool.close()


@pytest.fixture
async def trainer(stack, tmp_path):
    async with started_trainer(
        stack,
        tmp_path,
        VOXTRAIN_HEARTBEAT_SECONDS="0.5",
        VOXTRAIN_LEASE_SECONDS="2",
        VOXTRAIN_RETRY_BACKOFF_SECONDS="0.5",
    ) as t:
        yield t


def put(t: Trainer, tenant: str, model: uuid.UUID, kind: DatasetType, name: str, data: bytes) -> ev.DatasetObject:
    ds = uuid.uuid4()
    bucket = t.settings.minio.bucket
    key = f"tenants/{tenant}/models/{model}/datasets/{ds}/data"
    t.minio.put_object(bucket, key, io.BytesIO(data), len(data))
    return ev.DatasetObject(
        dataset_id=ds,
        dataset_type=kind,
        file_name=name,
        bucket=bucket,
        object_key=key,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


async def request(t: Trainer, stack, model: uuid.UUID, datasets: list[ev.DatasetObject]) -> uuid.UUID:
    run_id = uuid.uuid4()
    env = ev.wrap(
        ev.TrainingRequested(run_id=run_id, language="en-US", datasets=datasets), tenant_id="acme", model_id=model
    )
    await publish(stack.kafka_bootstrap, t.topics.training_commands, env)
    await publish(stack.kafka_bootstrap, t.topics.training_commands, env)  # redelivered: one run only
    return run_id


def _terminal(records: list) -> bool:
    return any(ev.REGISTRY.parse(r.value).type in ("TrainingSucceeded", "TrainingFailed") for r in records)


def _started(records: list) -> bool:
    return any(ev.REGISTRY.parse(r.value).type == "TrainingStarted" for r in records)


async def finished(reader: TopicReader, timeout: float) -> list[ev.Envelope]:
    await reader.until(_terminal, timeout=timeout)
    return [ev.REGISTRY.parse(r.value) for r in reader.records]


def notes(got: list[ev.Envelope]) -> list[str]:
    return [e.payload().message or "" for e in got if e.type == "TrainingProgress"]


async def test_trains_a_domain_model_that_beats_the_base_model_and_transcribes(trainer, stack, tmp_path) -> None:
    model = uuid.uuid4()
    audio = speak_all(TEST_SENTENCES[:5], tmp_path / "audio", "t")
    objs = [put(trainer, "acme", model, DatasetType.TRANSCRIPT, "notes.txt", TRAINING_TEXT.encode())]
    lines = []
    for i, (path, text) in enumerate(zip(audio, TEST_SENTENCES[:5], strict=True)):
        o = put(trainer, "acme", model, DatasetType.AUDIO, f"t{i}.wav", path.read_bytes())
        objs.append(o)
        lines.append(json.dumps({"audio": str(o.dataset_id) if i % 2 else o.file_name, "text": text, "split": "test"}))
    objs.append(put(trainer, "acme", model, DatasetType.MANIFEST, "pairs.jsonl", "\n".join(lines).encode()))
    async with TopicReader(stack.kafka_bootstrap, trainer.topics.training_events) as reader:
        run_id = await request(trainer, stack, model, objs)
        await finished(reader, timeout=400)
        await reader.settle(1)
    got = [ev.REGISTRY.parse(r.value) for r in reader.records]
    types = [e.type for e in got]
    assert types[0] == "TrainingStarted" and types[-1] == "TrainingSucceeded", types
    assert types.count("TrainingStarted") == 1 and "TrainingProgress" in types
    stages = {e.payload().stage for e in got if e.type == "TrainingProgress"}
    assert "store" in stages and len(stages) >= 3, stages  # progress is sampled, fast stages may be skipped
    assert all(n == "attempt 1 of 3" for n in notes(got))  # progress shows the attempt
    done = got[-1].payload()
    assert done.run_id == run_id and got[-1].causation_id is not None
    wer = done.metrics["evaluation"]["wer"]
    assert wer["custom"]["wer"] < wer["base"]["wer"] - 0.2, wer
    assert {"lm", "lexicon"} <= set(done.artifacts)
    for uri in done.artifacts.values():
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        assert key.startswith(f"tenants/acme/models/{model}/runs/{run_id}/attempt-1/")
        trainer.minio.stat_object(bucket, key)
    assert list((Path(trainer.settings.work_dir) / "runs").iterdir()) == []  # the work directory is gone

    # The trained model is available for use: transcribe a new domain utterance with it.
    new = speak("Continue warfarin and check the international normalized ratio.", tmp_path / "new.wav", "en-us+m3")
    r = await trainer.client.post(
        f"/v1/models/{model}/transcriptions", headers=ACME, files={"file": ("new.wav", new.read_bytes(), "audio/wav")}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "warfarin" in body["text"] and body["words"][0]["start"] >= 0 and body["model"] == str(model)
    base = await trainer.client.post(
        "/v1/models/base/transcriptions", headers=ACME, files={"file": ("new.wav", new.read_bytes(), "audio/wav")}
    )
    assert base.status_code == 200 and base.json()["model"] == "base"
    # Another tenant cannot use it.
    r = await trainer.client.post(
        f"/v1/models/{model}/transcriptions",
        headers=auth_headers("other"),
        files={"file": ("new.wav", new.read_bytes(), "audio/wav")},
    )
    assert r.status_code == 409


async def test_no_training_text_fails_with_a_clear_code_and_a_repeated_request_hears_it_again(
    trainer, stack, tmp_path
) -> None:
    model = uuid.uuid4()
    wav = speak("hello there", tmp_path / "a.wav", "en-us+m3")
    objs = [put(trainer, "acme", model, DatasetType.AUDIO, "a.wav", wav.read_bytes())]
    async with TopicReader(stack.kafka_bootstrap, trainer.topics.training_events) as reader:
        run_id = await request(trainer, stack, model, objs)
        got = await finished(reader, timeout=120)
        failed = got[-1].payload()
        assert got[-1].type == "TrainingFailed" and failed.error.code == "no_training_text"
        assert failed.error.message
        # models asks again for the same run (no news of it): the trainer says again how it ended
        again = ev.wrap(
            ev.TrainingRequested(run_id=run_id, language="en-US", datasets=objs, attempt=2),
            tenant_id="acme",
            model_id=model,
        )
        await publish(stack.kafka_bootstrap, trainer.topics.training_commands, again)
        await reader.until(
            lambda recs: sum(ev.REGISTRY.parse(r.value).type == "TrainingFailed" for r in recs) == 2, timeout=30
        )
        await reader.settle(1)
    got = [ev.REGISTRY.parse(r.value) for r in reader.records]
    first, second = [e for e in got if e.type == "TrainingFailed"]
    assert first.payload() == second.payload() and first.id != second.id and second.causation_id == again.id
    assert [e.type for e in got].count("TrainingStarted") == 1  # not trained again


async def _left_behind(
    t: Trainer, run_id: uuid.UUID, model: uuid.UUID, attempt: int, datasets: list[ev.DatasetObject]
) -> None:
    """A run at ``attempt`` left running by a replica that was killed an hour ago."""
    req = ev.wrap(
        ev.TrainingRequested(run_id=run_id, language="en-US", datasets=datasets), tenant_id="acme", model_id=model
    )
    async with t.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO runs (run_id, tenant_id, model_id, status, request, owner, heartbeat_at, started_at, attempt) "
            "VALUES ($1, 'acme', $2, 'running', $3, 'killed-replica', now() - interval '1 hour', now(), $4)",
            run_id,
            model,
            req.to_bytes(),
            attempt,
        )


async def test_a_run_whose_trainer_died_is_started_again_on_a_live_replica(trainer, stack) -> None:
    model, run_id = uuid.uuid4(), uuid.uuid4()
    await _left_behind(trainer, run_id, model, 1, [])
    async with TopicReader(stack.kafka_bootstrap, trainer.topics.training_events) as reader:
        got = await finished(reader, timeout=60)  # the running supervisor reaps it by itself
    assert any(n.startswith("attempt 1 of 3 stopped") and "no heartbeat" in n for n in notes(got)), notes(got)
    assert any(n.startswith("attempt 2 of 3") for n in notes(got))
    # started again and trained (here: no text, so its own failure — not worker_lost)
    assert got[-1].payload().run_id == run_id and got[-1].payload().error.code == "no_training_text"


async def test_a_run_whose_trainer_died_on_its_last_attempt_fails_with_worker_lost(trainer, stack) -> None:
    model, run_id = uuid.uuid4(), uuid.uuid4()
    await _left_behind(trainer, run_id, model, 3, [])
    async with TopicReader(stack.kafka_bootstrap, trainer.topics.training_events) as reader:
        got = await finished(reader, timeout=30)
    error = got[-1].payload().error
    assert got[-1].payload().run_id == run_id and error.code == "worker_lost" and "tried 3 times" in error.message


@pytest.fixture
async def impatient_trainer(stack, tmp_path):
    async with started_trainer(stack, tmp_path, VOXTRAIN_TIME_LIMIT_SECONDS="1") as t:
        yield t


async def test_a_run_over_the_time_limit_is_stopped_and_failed(impatient_trainer, stack) -> None:
    model = uuid.uuid4()
    objs = [put(impatient_trainer, "acme", model, DatasetType.TRANSCRIPT, "notes.txt", BIG_CORPUS)]
    async with TopicReader(stack.kafka_bootstrap, impatient_trainer.topics.training_events) as reader:
        await request(impatient_trainer, stack, model, objs)
        got = await finished(reader, timeout=60)
    assert got[-1].type == "TrainingFailed" and got[-1].payload().error.code == "training_timeout"
    assert "limit" in got[-1].payload().error.message
    assert not impatient_trainer.workers[0].work_dir.exists()


async def _kill_worker(t: Trainer, index: int) -> WorkerProcess:
    await eventually(lambda: _spawned(t, index + 1), timeout=60)
    w = t.workers[index]
    await asyncio.sleep(0.5)  # let it get going (download, first stages)
    os.kill(w.pid, signal.SIGKILL)
    return w


async def _spawned(t: Trainer, n: int) -> bool:
    return len(t.workers) >= n


async def test_a_killed_worker_process_is_retried_and_the_training_then_succeeds(trainer, stack) -> None:
    model = uuid.uuid4()
    objs = [put(trainer, "acme", model, DatasetType.TRANSCRIPT, "notes.txt", BIG_CORPUS)]
    async with TopicReader(stack.kafka_bootstrap, trainer.topics.training_events) as reader:
        run_id = await request(trainer, stack, model, objs)
        killed = await _kill_worker(trainer, 0)
        got = await finished(reader, timeout=300)
    assert got[-1].type == "TrainingSucceeded", [(e.type, e.data) for e in got]
    assert [w.attempt for w in trainer.workers] == [1, 2]
    assert any(n.startswith("attempt 1 of 3 stopped") and "exit code -9" in n for n in notes(got)), notes(got)
    assert any(n.startswith("attempt 2 of 3") for n in notes(got))
    assert [e.type for e in got].count("TrainingStarted") == 1
    assert all(f"/runs/{run_id}/attempt-2/" in uri for uri in got[-1].payload().artifacts.values())
    assert not killed.work_dir.exists()  # the supervisor cleaned the dead worker's directory


@pytest.fixture
async def two_attempts_trainer(stack, tmp_path):
    async with started_trainer(stack, tmp_path, VOXTRAIN_MAX_ATTEMPTS="2", VOXTRAIN_RETRY_BACKOFF_SECONDS="0.2") as t:
        yield t


async def test_a_worker_killed_on_every_attempt_fails_the_run_with_worker_lost(two_attempts_trainer, stack) -> None:
    t = two_attempts_trainer
    model = uuid.uuid4()
    objs = [put(t, "acme", model, DatasetType.TRANSCRIPT, "notes.txt", BIG_CORPUS)]
    async with TopicReader(stack.kafka_bootstrap, t.topics.training_events) as reader:
        await request(t, stack, model, objs)
        await _kill_worker(t, 0)
        await _kill_worker(t, 1)
        got = await finished(reader, timeout=60)
    error = got[-1].payload().error
    assert got[-1].type == "TrainingFailed" and error.code == "worker_lost"
    assert "exit code -9" in error.message and "tried 2 times" in error.message


async def test_a_stale_workers_result_is_discarded(stack) -> None:
    """Attempt 1's worker reports after the run was restarted elsewhere: nothing changes, nothing is sent."""
    async with migrated(stack) as (settings, pool, uow):
        schema = settings.postgres.schema_name
        policy = policy_of(settings.model_copy(update={"retry_backoff_seconds": 0.0}))
        env = ev.wrap(
            ev.TrainingRequested(run_id=uuid.uuid4(), language="en-US", datasets=[]),
            tenant_id="acme",
            model_id=uuid.uuid4(),
        )
        await h.record_request(uow, env)
        first = await h.claim_next(uow, "replica-a", policy)
        assert first is not None and first.attempt == 1
        async with pool.acquire() as conn:  # replica-a stopped heartbeating
            await conn.execute("UPDATE runs SET heartbeat_at = now() - interval '1 hour'")
        assert [r.run_id for r in await h.reap(uow, "replica-b", [], 60.0, policy)] == [first.run_id]
        second = await h.claim_next(uow, "replica-b", policy)
        assert second is not None and second.attempt == 2
        late = {"metrics": {}, "artifacts": {"lm": "s3://b/attempt-1/lm"}, "used": {}}
        assert await h.finish(uow, "replica-a", first, 1, late, policy) is h.Outcome.STALE
        assert not await h.record_progress(uow, "replica-a", first, 1, "store", 90.0, policy)
        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT status, attempt, owner, artifacts FROM runs")
            sent = [r["event_type"] for r in await conn.fetch(f'SELECT event_type FROM "{schema}".outbox ORDER BY seq')]
        assert (row["status"], row["attempt"], row["owner"], row["artifacts"]) == ("running", 2, "replica-b", None)
        assert "TrainingSucceeded" not in sent and sent.count("TrainingStarted") == 1
        assert await h.finish(uow, "replica-b", second, 2, late, policy) is h.Outcome.SUCCEEDED


def _children(pid: int) -> list[int]:
    """Worker processes (multiprocessing spawn children) whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def test_a_killed_trainer_takes_its_worker_with_it(stack, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        **service_env(
            stack,
            VOXTRAIN_POSTGRES__SCHEMA=unique("s"),
            VOXTRAIN_KAFKA__TOPIC_NAMESPACE=unique("ns"),
            VOXTRAIN_MINIO__BUCKET=unique("b").replace("_", "-"),
            VOXTRAIN_WORK_DIR=str(tmp_path / "work"),
            VOXTRAIN_HTTP__PORT=str(port),
            VOXTRAIN_HTTP__HOST="127.0.0.1",
        ),
    }
    settings = settings_for(TrainerSettings, stack, **{k: v for k, v in env.items() if k.startswith("VOXTRAIN_")})
    minio = make_client(settings.minio)
    ensure_bucket(minio, settings.minio.bucket)
    t = Trainer(settings, minio)
    model = uuid.uuid4()
    objs = [put(t, "acme", model, DatasetType.TRANSCRIPT, "notes.txt", BIG_CORPUS * 4)]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from voxtrain_trainer.main import run; run()"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        async def ready() -> bool:
            import httpx

            try:
                async with httpx.AsyncClient() as c:
                    return (await c.get(f"http://127.0.0.1:{port}/health/ready")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, timeout=90, interval=0.5)
        req = ev.wrap(
            ev.TrainingRequested(run_id=uuid.uuid4(), language="en-US", datasets=objs), tenant_id="acme", model_id=model
        )
        await publish(stack.kafka_bootstrap, settings.kafka.topics.training_commands, req)
        workers = await eventually(lambda: _async(_children(proc.pid)), timeout=60)
        work = Path(settings.work_dir) / "runs"
        await eventually(lambda: _async(work.is_dir() and any(work.iterdir())), timeout=30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await eventually(lambda: _async(not any(_alive(p) for p in workers)), timeout=15)
        await eventually(lambda: _async(not any(work.iterdir())), timeout=15)  # it cleaned up on its way out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def _async(value: Any) -> Any:
    return value


@pytest.fixture
async def capped_trainer(stack, tmp_path):
    async with started_trainer(
        stack, tmp_path, VOXTRAIN_TRANSCRIPTION_MAX_SECONDS="1", VOXTRAIN_TRANSCRIPTION_MAX_BYTES=str(400_000)
    ) as t:
        yield t


async def test_transcription_refuses_long_audio_and_large_bodies_with_their_code(capped_trainer, tmp_path) -> None:
    wav = speak(
        "Continue warfarin and check the international normalized ratio.", tmp_path / "long.wav", "en-us+m3"
    ).read_bytes()
    r = await capped_trainer.client.post(
        "/v1/models/base/transcriptions", headers=ACME, files={"file": ("long.wav", wav, "audio/wav")}
    )
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "file_too_large" and "1 s transcription limit" in error["message"]
    big = await capped_trainer.client.post(
        "/v1/models/base/transcriptions", headers=ACME, files={"file": ("big.wav", b"\0" * 500_000, "audio/wav")}
    )
    assert big.status_code == 413 and "request bodies up to" in big.json()["error"]["message"]

    async def chunks():  # no declared length: the cap applies while it streams
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        for _ in range(10):
            yield b"\0" * 100_000

    streamed = await capped_trainer.client.post(
        "/v1/models/base/transcriptions",
        headers={**ACME, "content-type": "multipart/form-data; boundary=x"},
        content=chunks(),
    )
    assert streamed.status_code == 413, streamed.text
    anonymous = await capped_trainer.client.post(
        "/v1/models/base/transcriptions", files={"file": ("long.wav", wav, "audio/wav")}
    )
    assert anonymous.status_code == 401
    # transcribing needs the read scope only (a read-only key gets past auth to the duration check)
    reader = auth_headers("acme", scopes=frozenset({Scope.READ}))
    r = await capped_trainer.client.post(
        "/v1/models/base/transcriptions", headers=reader, files={"file": ("long.wav", wav, "audio/wav")}
    )
    assert r.status_code == 413
    no_read = auth_headers("acme", scopes=frozenset({Scope.WRITE, Scope.TRAIN}))
    r = await capped_trainer.client.post(
        "/v1/models/base/transcriptions", headers=no_read, files={"file": ("long.wav", wav, "audio/wav")}
    )
    assert r.status_code == 403 and "'read' scope" in r.json()["error"]["message"]
