"""Asynchronous transcription against the real servers: a few minutes of speech sent with ?mode=async is
kept in MinIO, decoded in the background with progress, and read back by its tenant only; audio over a cap is
refused with its code; leases on the real database let another replica take a lost job up again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from tests.support import auth_headers
from tests.trainer.medical_domain import speak
from tests.trainer.test_service_integration import ACME, _children, migrated, started_trainer
from voxtrain_shared.storage import ensure_bucket, make_client
from voxtrain_trainer import handlers as h
from voxtrain_trainer.decoding import DecodingProcesses
from voxtrain_trainer.domain import JobStatus, TranscriptionJob
from voxtrain_trainer.job_audio import JobAudio, job_key

pytestmark = pytest.mark.integration
SAID = (
    "Continue warfarin and check the international normalized ratio tomorrow morning. "
    "Hold metformin before the contrast scan and recheck the kidney function."
)


def long_recording(tmp_path: Path, seconds: float) -> Path:
    """The same two sentences again and again, a second of (dithered) silence after each, for ``seconds``."""
    clip = speak(SAID, tmp_path / "clip.wav", "en-us")
    padded = tmp_path / "padded.wav"
    subprocess.run(["sox", "-R", str(clip), str(padded), "pad", "0", "1"], check=True)
    once = float(subprocess.check_output(["soxi", "-D", str(padded)]))
    out = tmp_path / f"long-{seconds:g}.wav"
    subprocess.run(["sox", "-R", str(padded), str(out), "repeat", str(round(seconds / once) - 1)], check=True)
    return out


@pytest.fixture
async def job_trainer(stack, tmp_path):
    async with started_trainer(
        stack,
        tmp_path,
        VOXTRAIN_HEARTBEAT_SECONDS="0.5",
        VOXTRAIN_LEASE_SECONDS="10",
        VOXTRAIN_TRANSCRIPTION_MAX_SECONDS="60",
        VOXTRAIN_TRANSCRIPTION_ASYNC_MAX_SECONDS="240",
    ) as t:
        yield t


async def test_minutes_of_audio_are_transcribed_as_a_job_only_its_tenant_can_read(job_trainer, tmp_path) -> None:
    t = job_trainer
    audio = long_recording(tmp_path, 180.0)
    sync = await t.client.post(
        "/v1/models/base/transcriptions", headers=ACME, files={"file": ("ward.wav", audio.read_bytes(), "audio/wav")}
    )
    assert sync.status_code == 413, sync.text
    assert (
        "60 s transcription limit" in sync.json()["error"]["message"]
        and "?mode=async" in sync.json()["error"]["message"]
    )

    r = await t.client.post(
        "/v1/models/base/transcriptions?mode=async",
        headers=ACME,
        files={"file": ("ward.wav", audio.read_bytes(), "audio/wav")},
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/transcriptions/{job['job_id']}"
    assert job["status"] in ("queued", "running") and job["model"] == "base" and job["file_name"] == "ward.wav"
    assert 170 < job["progress"]["audio_seconds"] < 190

    other = await t.client.get(r.headers["location"], headers=auth_headers("globex"))
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"

    seen: list[tuple[str, float]] = []
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        got = (await t.client.get(r.headers["location"], headers=ACME)).json()
        seen.append((got["status"], got["progress"]["percent"]))
        if got["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(1.0)
    assert got["status"] == "succeeded", got
    assert any(status == "running" and 0 < percent < 100 for status, percent in seen), seen  # progress moved
    assert got["progress"]["percent"] == 100.0 and got["error"] is None
    words = got["result"]["words"]
    text = got["result"]["text"]
    assert text == " ".join(w["word"] for w in words)
    repeats = round(180.0 / 12)  # the recording says its two sentences about this many times
    assert text.count("ratio") >= repeats // 2 and "function" in text, text
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and starts[-1] > 150.0  # times run through the whole file
    bucket = t.settings.minio.bucket
    assert list(t.minio.list_objects(bucket, prefix=f"transcriptions/acme/{job['job_id']}/", recursive=True)) == []


async def test_a_job_over_the_duration_cap_is_refused_with_its_code(job_trainer, tmp_path) -> None:
    audio = long_recording(tmp_path, 300.0)
    r = await job_trainer.client.post(
        "/v1/models/base/transcriptions?mode=async",
        headers=ACME,
        files={"file": ("shift.wav", audio.read_bytes(), "audio/wav")},
    )
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "file_too_large" and "240 s transcription limit" in error["message"]
    assert "shift.wav" in error["message"]
    bucket = job_trainer.settings.minio.bucket
    assert list(job_trainer.minio.list_objects(bucket, prefix="transcriptions/acme/", recursive=True)) == []


async def test_a_synchronous_transcription_that_finds_the_decoder_busy_is_refused_in_time(stack, tmp_path) -> None:
    audio = long_recording(tmp_path, 50.0).read_bytes()
    async with started_trainer(
        stack,
        tmp_path,
        VOXTRAIN_PARALLEL_SYNC_TRANSCRIPTIONS="1",
        VOXTRAIN_TRANSCRIPTION_BUSY_WAIT_SECONDS="1",
    ) as t:

        async def send(name: str) -> tuple[float, Any]:
            started = time.monotonic()
            files = {"file": (name, audio, "audio/wav")}
            r = await t.client.post("/v1/models/base/transcriptions", headers=ACME, files=files, timeout=300)
            return time.monotonic() - started, r

        first = asyncio.create_task(send("first.wav"))
        await asyncio.sleep(3.0)  # the first holds the only decoder (50 s of speech decode for longer than that)
        waited, busy = await send("second.wav")
        assert busy.status_code == 503, busy.text
        assert busy.headers["retry-after"] == "30" and waited < 20
        err = busy.json()["error"]
        assert err["code"] == "server_busy" and "second.wav was not transcribed" in err["message"]
        assert not first.done()
        _, done = await first
        assert done.status_code == 200 and "ratio" in done.json()["text"], done.text


async def test_leases_on_the_real_database_hand_a_lost_job_to_another_replica(stack) -> None:
    async with migrated(stack) as (_, _, uow):
        job = TranscriptionJob(uuid.uuid4(), "acme", "base", None, None, "a.wav", "transcriptions/acme/x/audio.wav", 90)
        async with uow(h.SUPERVISOR) as tx:
            await tx.repo.add_transcription(job)
        async with uow(h.SUPERVISOR) as tx:
            first = await tx.repo.claim_transcription("replica-a", 0.2)
            assert first is not None and first.attempt == 1 and first.status is JobStatus.RUNNING
            assert await tx.repo.claim_transcription("replica-b", 0.2) is None  # held
            assert await tx.repo.renew_transcription(job.job_id, "replica-a", 1, 30.0, 0.2)
        await asyncio.sleep(0.5)  # replica a is gone: its lease runs out
        async with uow(h.SUPERVISOR) as tx:
            second = await tx.repo.claim_transcription("replica-b", 30.0)
            assert second is not None and second.attempt == 2 and second.done_seconds == 30.0
            assert not await tx.repo.renew_transcription(job.job_id, "replica-a", 1, 40.0, 0.2)
            first.status = JobStatus.FAILED
            assert not await tx.repo.finish_transcription(first, "replica-a")  # fenced
            second.status, second.result = JobStatus.SUCCEEDED, {"text": "ok", "words": []}
            assert await tx.repo.finish_transcription(second, "replica-b")
        async with uow.reading() as repo:
            assert await repo.transcription("globex", job.job_id) is None
            done = await repo.transcription("acme", job.job_id)
        assert done is not None and done.status is JobStatus.SUCCEEDED and done.result == {"text": "ok", "words": []}


async def test_the_sweeper_removes_abandoned_and_finished_uploads_and_expired_jobs_for_real(stack, tmp_path) -> None:
    async with migrated(stack) as (settings, _, uow):
        minio = make_client(settings.minio)
        ensure_bucket(minio, settings.minio.bucket)
        store = JobAudio(minio, settings.minio.bucket)
        tenant = f"sweep-{uuid.uuid4().hex[:8]}"
        (tmp_path / "a.wav").write_bytes(b"RIFF audio")

        def stored(key: str) -> bool:
            return any(True for _ in minio.list_objects(settings.minio.bucket, prefix=key))

        async def add(status: JobStatus) -> TranscriptionJob:
            job_id = uuid.uuid4()
            job = TranscriptionJob(job_id, tenant, "base", None, None, "a.wav", job_key(tenant, job_id, ".wav"), 9.0)
            job.status = status
            async with uow(h.SUPERVISOR) as tx:
                await tx.repo.add_transcription(job)
            store.put(job.object_key, tmp_path / "a.wav")
            return job

        dead = await add(JobStatus.UPLOADING)  # the service died between storing the upload and queueing it
        finished = await add(JobStatus.RUNNING)
        finished.status, finished.result = JobStatus.SUCCEEDED, {"text": "ok", "words": []}
        async with uow(h.SUPERVISOR) as tx:
            assert await tx.repo.finish_transcription(finished, None)  # its upload could not be removed then
        await asyncio.sleep(0.6)
        young = await add(JobStatus.UPLOADING)  # still within the grace period
        queued = await add(JobStatus.UPLOADING)
        async with uow(h.SUPERVISOR) as tx:
            assert await tx.repo.queue_transcription(queued.job_id)

        swept = await h.sweep_transcriptions(uow, store, h.SweepLimits(grace_seconds=0.5, retention_seconds=3600.0))
        assert swept.abandoned >= 1 and swept.removed >= 2 and swept.expired == 0  # (other tests' jobs may be due)
        assert not stored(dead.object_key) and not stored(finished.object_key)
        assert stored(young.object_key) and stored(queued.object_key)
        async with uow.reading() as repo:
            gave_up = await repo.transcription(tenant, dead.job_id)
            kept = await repo.transcription(tenant, finished.job_id)
            waiting = await repo.transcription(tenant, young.job_id)
        assert gave_up is not None and gave_up.status is JobStatus.FAILED
        assert gave_up.error is not None and gave_up.error["code"] == "upload_abandoned"
        assert kept is not None and kept.result == {"text": "ok", "words": []}  # the result outlives its upload
        assert waiting is None  # not a job yet for its tenant: its upload is still being stored

        await asyncio.sleep(0.6)
        await h.sweep_transcriptions(uow, store, h.SweepLimits(grace_seconds=3600.0, retention_seconds=0.5))
        async with uow.reading() as repo:
            assert await repo.transcription(tenant, dead.job_id) is None
            assert await repo.transcription(tenant, finished.job_id) is None
            assert await repo.unswept_inputs(10_000) == []  # (young is not finished: its upload is kept)
        assert stored(young.object_key)
        store.remove(young.object_key)
        store.remove(queued.object_key)


def test_a_killed_decoding_process_fails_its_call_and_the_next_call_gets_a_new_one(tmp_path) -> None:
    """What a job sees when its decoding process is killed (OOM, a replica going away): BrokenProcessPool, so
    the job waits for its lease to run out and is taken up again, and the pool decodes the next file."""
    audio = long_recording(tmp_path, 40.0)

    class BaseModelOnly:
        def model_dir(self, run_id: uuid.UUID, artifacts: dict[str, str]) -> Path:
            raise AssertionError("the base model needs no files fetched")

    decoding = DecodingProcesses(BaseModelOnly(), workers=1)
    try:
        seen: list[float] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                decoding.transcribe(None, None, audio, seen.append)
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 120
        while not seen and time.monotonic() < deadline:  # decoding has begun in the child
            time.sleep(0.2)
        assert seen, "no progress from the decoding process"
        children = _children(os.getpid())
        assert len(children) == 1
        os.kill(children[0], signal.SIGKILL)
        worker.join(60)
        assert len(errors) == 1 and isinstance(errors[0], BrokenProcessPool), errors
        short = speak("Check the international normalized ratio.", tmp_path / "short.wav", "en-us")
        assert "ratio" in decoding.transcribe(None, None, short).text
    finally:
        decoding.close()
