"""Asynchronous transcription jobs on an in-memory repository and store: submission (caps before anything is
kept), tenant-scoped reads, progress under a lease, a lost replica's job taken up again, fencing, failures."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeUnitOfWork
from tests.trainer.fakes import FakeTrainerRepository
from voxtrain_shared.errors import ApiError
from voxtrain_trainer import handlers as h
from voxtrain_trainer.domain import JobStatus
from voxtrain_trainer.ml.decoder import Transcript, WordTiming


class Store:
    """Objects in memory; removing a missing key is no error (as in S3). ``away`` fails every call, like an
    unreachable MinIO."""

    def __init__(self, *, away: bool = False) -> None:
        self.objects: dict[str, bytes] = {}
        self.away = away

    def put(self, key: str, path: Path) -> None:
        if self.away:
            raise ConnectionRefusedError("connect to http://minio.internal:9000 refused")
        self.objects[key] = path.read_bytes()

    def get(self, key: str, path: Path) -> None:
        path.write_bytes(self.objects[key])

    def remove(self, key: str) -> None:
        if self.away:
            raise ConnectionRefusedError("connect to http://minio.internal:9000 refused")
        self.objects.pop(key, None)


class Transcriber:
    """Says the audio file's bytes as words, reporting progress per word; ``gate`` holds it midway."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.calls = 0

    def transcribe(
        self,
        run_id: uuid.UUID | None,
        artifacts: dict[str, str] | None,
        audio: Path,
        on_progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        self.calls += 1
        words = audio.read_text().split()
        if not words:
            raise ValueError("no audio stream")
        timings = [WordTiming(w, float(i), i + 0.5) for i, w in enumerate(words)]
        for i in range(len(words)):
            if on_progress:
                on_progress(i + 1.0)
            if i == 0 and self.gate is not None:
                assert self.gate.wait(10)
        return Transcript(" ".join(words), timings)


@pytest.fixture
def uow() -> FakeUnitOfWork[FakeTrainerRepository]:
    return FakeUnitOfWork(FakeTrainerRepository())


def limits(tmp_path: Path, *, heartbeat: float = 0.01, attempts: int = 2) -> h.JobLimits:
    return h.JobLimits(lease_seconds=30.0, heartbeat_seconds=heartbeat, max_attempts=attempts, work_dir=tmp_path)


async def submit(uow: Any, store: Store, tmp_path: Path, text: str = "take two tablets daily", **kw: Any) -> Any:
    audio = tmp_path / "upload.wav"
    audio.write_text(text)
    seconds = float(len(text.split()))
    return await h.submit_transcription(
        uow, store, kw.get("tenant", "acme"), h.BASE, audio, "ward.wav", kw.get("cap", 600.0), lambda _: seconds
    )


async def test_a_submitted_job_keeps_the_upload_and_is_queued_for_its_tenant_only(uow, tmp_path) -> None:
    store = Store()
    job = await submit(uow, store, tmp_path)
    assert store.objects[job.object_key] == b"take two tablets daily"
    assert job.object_key.startswith(f"transcriptions/acme/{job.job_id}/") and job.object_key.endswith(".wav")
    seen = await h.transcription_job(uow, "acme", str(job.job_id))
    assert (seen.status, seen.audio_seconds, seen.percent) == (JobStatus.QUEUED, 4.0, 0.0)
    for tenant, ref in (("other", str(job.job_id)), ("acme", str(uuid.uuid4())), ("acme", "not-a-uuid")):
        with pytest.raises(ApiError) as missing:
            await h.transcription_job(uow, tenant, ref)
        assert missing.value.status == 404 and missing.value.code == "not_found"


async def test_audio_over_the_job_cap_is_refused_before_anything_is_kept(uow, tmp_path) -> None:
    store = Store()
    with pytest.raises(ApiError) as refused:
        await submit(uow, store, tmp_path, "one two three four", cap=3.0)
    assert refused.value.status == 413 and refused.value.code == "file_too_large"
    assert "4 s of audio is longer than the 3 s transcription limit" in refused.value.message
    assert store.objects == {} and uow.repo.jobs == {}


async def test_a_storage_outage_on_submit_answers_503_and_queues_nothing(uow, tmp_path) -> None:
    with pytest.raises(ApiError) as away:
        await submit(uow, Store(away=True), tmp_path)
    assert away.value.status == 503 and away.value.code == "storage_unavailable" and "minio" not in away.value.message
    # recorded as uploading before the upload (so the sweeper finds what may have been stored), never queued
    assert [r.job.status for r in uow.repo.jobs.values()] == [JobStatus.UPLOADING]
    assert await uow.repo.claim_transcription("replica-a", 30.0) is None
    with pytest.raises(ApiError) as not_yet:  # not a job for its tenant until its upload is stored
        await h.transcription_job(uow, "acme", str(next(iter(uow.repo.jobs))))
    assert not_yet.value.status == 404


SWEEP = h.SweepLimits(grace_seconds=3600.0, retention_seconds=7 * 86400.0)


async def test_an_upload_whose_request_died_midway_is_removed_after_the_grace_period(uow, tmp_path) -> None:
    store = Store()
    audio = tmp_path / "upload.wav"
    audio.write_text("words")
    # the service died between storing the upload and queueing the job: the record says 'uploading'
    job = h.TranscriptionJob(uuid.uuid4(), "acme", "base", None, None, "a.wav", "transcriptions/acme/x/audio.wav", 1.0)
    job.status = JobStatus.UPLOADING
    await uow.repo.add_transcription(job)
    store.put(job.object_key, audio)
    uow.repo.clock = 3000.0
    assert await h.sweep_transcriptions(uow, store, SWEEP) == h.Swept()  # within the grace period: kept
    assert job.object_key in store.objects
    uow.repo.clock = 3601.0
    assert await h.sweep_transcriptions(uow, store, SWEEP) == h.Swept(abandoned=1, removed=1)
    assert store.objects == {}
    seen = await h.transcription_job(uow, "acme", str(job.job_id))
    assert seen.status is JobStatus.FAILED and seen.error is not None and seen.error["code"] == "upload_abandoned"
    assert "Submit the file again" in seen.error["message"]
    assert await uow.repo.claim_transcription("replica-a", 30.0) is None


async def test_an_upload_stored_after_it_was_abandoned_is_removed_and_refused(uow, tmp_path) -> None:
    class Slow(Store):
        def put(self, key: str, path: Path) -> None:  # the sweeper gives the upload up while it is stored
            uow.repo.clock = 4000.0
            asyncio.run(h.sweep_transcriptions(uow, self, SWEEP))
            super().put(key, path)

    store = Slow()
    with pytest.raises(ApiError) as late:
        await submit(uow, store, tmp_path)
    assert late.value.status == 503 and "took too long" in late.value.message
    assert store.objects == {}
    assert [r.job.status for r in uow.repo.jobs.values()] == [JobStatus.FAILED]


async def test_finished_jobs_lose_their_upload_at_once_and_their_result_after_the_retention(uow, tmp_path) -> None:
    store = Store()
    job = await submit(uow, store, tmp_path)
    store.away = True  # the upload cannot be removed when the job finishes
    done = await h.run_transcription(uow, store, Transcriber(), "replica-a", limits(tmp_path))
    assert done is not None and done.status is JobStatus.SUCCEEDED and job.object_key in store.objects
    assert await h.sweep_transcriptions(uow, store, SWEEP) == h.Swept()  # still away: tried again later
    store.away = False
    assert await h.sweep_transcriptions(uow, store, SWEEP) == h.Swept(removed=1)
    assert store.objects == {}
    assert (await h.transcription_job(uow, "acme", str(job.job_id))).result is not None  # the result is kept
    other = await submit(uow, store, tmp_path, "a later job")
    uow.repo.clock = 7 * 86400.0 + 1
    assert await h.sweep_transcriptions(uow, store, SWEEP) == h.Swept(expired=1)
    with pytest.raises(ApiError) as gone:
        await h.transcription_job(uow, "acme", str(job.job_id))
    assert gone.value.status == 404
    assert (await h.transcription_job(uow, "acme", str(other.job_id))).status is JobStatus.QUEUED  # not finished


async def test_a_job_runs_with_progress_under_its_lease_and_keeps_words_with_times(uow, tmp_path) -> None:
    store, gate = Store(), threading.Event()
    job = await submit(uow, store, tmp_path)
    running = asyncio.create_task(h.run_transcription(uow, store, Transcriber(gate), "replica-a", limits(tmp_path)))
    for _ in range(200):  # the heartbeat records the decoder's progress while it works
        await asyncio.sleep(0.01)
        seen = await h.transcription_job(uow, "acme", str(job.job_id))
        if seen.done_seconds:
            break
    assert seen.status is JobStatus.RUNNING and seen.done_seconds == 1.0 and seen.percent == 25.0
    gate.set()
    done = await running
    assert done is not None and done.status is JobStatus.SUCCEEDED
    seen = await h.transcription_job(uow, "acme", str(job.job_id))
    assert seen.percent == 100.0 and seen.result is not None
    assert seen.result["text"] == "take two tablets daily"
    assert seen.result["words"][2] == {"word": "tablets", "start": 2.0, "end": 2.5}
    assert store.objects == {}  # the upload is removed once the outcome is stored
    assert await h.run_transcription(uow, store, Transcriber(), "replica-a", limits(tmp_path)) is None
    assert list(tmp_path.glob("transcription-*")) == []  # the local copy is gone too


async def test_a_lost_replicas_job_is_taken_up_again_and_its_late_outcome_is_discarded(uow, tmp_path) -> None:
    store = Store()
    job = await submit(uow, store, tmp_path)
    lost = await uow.repo.claim_transcription("replica-a", 30.0)  # replica a claims it, then dies
    assert lost is not None and await h.run_transcription(uow, store, Transcriber(), "b", limits(tmp_path)) is None
    uow.repo.clock += 31.0  # its lease runs out
    again = await h.run_transcription(uow, store, Transcriber(), "replica-b", limits(tmp_path))
    assert again is not None and again.attempt == 2 and again.status is JobStatus.SUCCEEDED
    lost.status, lost.error = JobStatus.FAILED, {"code": "x", "message": "late"}
    assert not await uow.repo.finish_transcription(lost, "replica-a")  # fenced: attempt 1 no longer holds it
    seen = await h.transcription_job(uow, "acme", str(job.job_id))
    assert seen.status is JobStatus.SUCCEEDED and seen.error is None


async def test_a_job_lost_more_often_than_allowed_fails_with_worker_lost(uow, tmp_path) -> None:
    store, transcriber = Store(), Transcriber()
    job = await submit(uow, store, tmp_path)
    for replica in ("a", "b"):
        await uow.repo.claim_transcription(replica, 30.0)
        uow.repo.clock += 31.0
    failed = await h.run_transcription(uow, store, transcriber, "c", limits(tmp_path, attempts=2))
    assert failed is not None and failed.status is JobStatus.FAILED and transcriber.calls == 0
    seen = await h.transcription_job(uow, "acme", str(job.job_id))
    assert (
        seen.error is not None
        and seen.error["code"] == "worker_lost"
        and "Submit the file again" in seen.error["message"]
    )


async def test_audio_the_decoder_cannot_read_fails_the_job_with_its_code(uow, tmp_path) -> None:
    store = Store()
    job = await submit(uow, store, tmp_path, text="   ")
    failed = await h.run_transcription(uow, store, Transcriber(), "a", limits(tmp_path))
    assert failed is not None and failed.status is JobStatus.FAILED
    seen = await h.transcription_job(uow, "acme", str(job.job_id))
    assert seen.error == {
        "code": "invalid_audio_format",
        "message": "ward.wav: could not decode the audio (no audio stream).",
    }


async def test_a_decoding_process_that_died_leaves_the_job_to_be_taken_up_again(uow, tmp_path) -> None:
    class Dies(Transcriber):
        def transcribe(self, *args: Any, **kwargs: Any) -> Transcript:
            raise BrokenProcessPool("a child process terminated abruptly")

    store = Store()
    job = await submit(uow, store, tmp_path)
    with pytest.raises(BrokenProcessPool):
        await h.run_transcription(uow, store, Dies(), "replica-a", limits(tmp_path))
    assert (await h.transcription_job(uow, "acme", str(job.job_id))).status is JobStatus.RUNNING
    assert job.object_key in store.objects  # the upload stays for the next attempt
    uow.repo.clock += 31.0
    again = await h.run_transcription(uow, store, Transcriber(), "replica-a", limits(tmp_path))
    assert again is not None and again.attempt == 2 and again.status is JobStatus.SUCCEEDED
