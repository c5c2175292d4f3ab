"""The trainer's use cases on an in-memory repository (no PostgreSQL): requests, claims, fencing, reaping."""

import uuid

import pytest

from tests.fakes import FakeUnitOfWork
from tests.trainer.fakes import FakeTrainerRepository
from voxtrain_shared import events as ev
from voxtrain_shared.errors import ApiError
from voxtrain_trainer import handlers as h
from voxtrain_trainer.domain import Answer, RetryPolicy, RunStatus, worker_died

POLICY = RetryPolicy(max_attempts=2, backoff_seconds=10, backoff_max_seconds=60)
OK = {"metrics": {"wer": 0.2}, "artifacts": {"lm": "s3://b/lm"}, "used": {"transcript_files": 1}}


def request(run_id: uuid.UUID | None = None, attempt: int = 1) -> ev.Envelope:
    return ev.wrap(
        ev.TrainingRequested(run_id=run_id or uuid.uuid4(), language="en-US", datasets=[], attempt=attempt),
        tenant_id="acme",
        model_id=uuid.uuid4(),
    )


@pytest.fixture
def uow() -> FakeUnitOfWork[FakeTrainerRepository]:
    return FakeUnitOfWork(FakeTrainerRepository())


async def test_a_request_is_queued_once_and_redelivery_changes_nothing(uow) -> None:
    env = request()
    assert await h.record_request(uow, env) is Answer.QUEUE
    assert await h.record_request(uow, env) is None  # same event id: the inbox has it
    assert len(uow.repo.rows) == 1 and uow.emitted == []


async def test_a_repeated_request_for_a_queued_or_running_run_does_nothing(uow) -> None:
    env = request()
    await h.record_request(uow, env)
    again = ev.wrap(
        ev.TrainingRequested(run_id=env.payload().run_id, language="en-US", datasets=[], attempt=2),
        tenant_id="acme",
        model_id=env.model_id,
    )
    assert await h.record_request(uow, again) is Answer.NOTHING
    run = await h.claim_next(uow, "a", POLICY)
    assert run is not None
    third = ev.wrap(again.payload(), tenant_id="acme", model_id=env.model_id)
    assert await h.record_request(uow, third) is Answer.NOTHING
    assert [type(m) for m in uow.messages()] == [ev.TrainingStarted]


async def test_a_repeated_request_for_a_finished_run_republishes_its_terminal_event(uow) -> None:
    env = request()
    await h.record_request(uow, env)
    run = await h.claim_next(uow, "a", POLICY)
    assert await h.finish(uow, "a", run, 1, OK, POLICY) is h.Outcome.SUCCEEDED
    again = ev.wrap(
        ev.TrainingRequested(run_id=run.run_id, language="en-US", datasets=[], attempt=2),
        tenant_id="acme",
        model_id=env.model_id,
    )
    assert await h.record_request(uow, again) is Answer.REPUBLISH
    first, second = uow.messages(ev.TrainingSucceeded)
    assert first == second and first.artifacts == {"lm": "s3://b/lm"}
    assert first.metrics["data_used"] == {"transcript_files": 1}
    assert uow.emitted[-1][1] == env.model_id


async def test_a_stale_workers_result_is_discarded(uow) -> None:
    await h.record_request(uow, request())
    run = await h.claim_next(uow, "a", POLICY)
    assert await h.lose(uow, "a", run, 1, worker_died(-9, "download"), POLICY) is h.Outcome.RETRY
    assert await h.claim_next(uow, "b", POLICY) is None  # backoff: not yet
    uow.repo.clock += 10
    again = await h.claim_next(uow, "b", POLICY)
    assert again is not None and again.attempt == 2
    assert await h.finish(uow, "a", run, 1, OK, POLICY) is h.Outcome.STALE
    assert not await h.record_progress(uow, "a", run, 1, "store", 50.0, POLICY)
    assert uow.repo.rows[run.run_id].run.status is RunStatus.RUNNING and uow.messages(ev.TrainingSucceeded) == []
    assert await h.finish(uow, "b", again, 2, OK, POLICY) is h.Outcome.SUCCEEDED


async def test_a_transient_storage_error_is_retried_then_fails_with_its_code(uow) -> None:
    await h.record_request(uow, request())
    transient = {
        "error": {
            "code": "storage_unavailable",
            "stage": "download",
            "transient": True,
            "message": "the object storage was unavailable during the download stage (MaxRetryError)",
        }
    }
    run = await h.claim_next(uow, "a", POLICY)
    assert await h.finish(uow, "a", run, 1, transient, POLICY) is h.Outcome.RETRY
    uow.repo.clock += 10
    run = await h.claim_next(uow, "a", POLICY)
    assert await h.finish(uow, "a", run, 2, transient, POLICY) is h.Outcome.FAILED
    (failed,) = uow.messages(ev.TrainingFailed)
    assert failed.error.code == "storage_unavailable" and "http" not in failed.error.message


async def test_a_permanent_error_fails_at_once_without_urls(uow) -> None:
    await h.record_request(uow, request())
    run = await h.claim_next(uow, "a", POLICY)
    bad = {"error": {"code": "stage_failed", "stage": "store", "message": "PUT http://minio:9000/b/k: denied"}}
    assert await h.finish(uow, "a", run, 1, bad, POLICY) is h.Outcome.FAILED
    (failed,) = uow.messages(ev.TrainingFailed)
    assert failed.error.message == "PUT <storage>: denied"


async def test_the_reaper_recovers_stale_runs_of_any_replica_and_its_own_runs_without_a_worker(uow) -> None:
    for _ in range(3):
        await h.record_request(uow, request())
    other = await h.claim_next(uow, "other", POLICY)
    mine_dead = await h.claim_next(uow, "me", POLICY)
    mine_live = await h.claim_next(uow, "me", POLICY)
    uow.repo.clock += 30
    await h.heartbeat(uow, "me", {mine_live.run_id: 1})
    # the other replica stopped heartbeating 30 s ago (lease 20 s); "me" runs a worker for mine_live only
    reaped = await h.reap(uow, "me", [mine_live.run_id], 20.0, POLICY)
    assert {r.run_id for r in reaped} == {other.run_id, mine_dead.run_id}
    assert all(r.status is RunStatus.QUEUED for r in reaped)
    assert uow.repo.rows[mine_live.run_id].run.status is RunStatus.RUNNING
    notes = [m.message for m in uow.messages(ev.TrainingProgress)]
    assert any("no heartbeat" in n for n in notes) and any("lost its worker" in n for n in notes)


async def test_heartbeat_reports_which_runs_a_replica_still_holds(uow) -> None:
    await h.record_request(uow, request())
    run = await h.claim_next(uow, "a", POLICY)
    assert await h.heartbeat(uow, "a", {run.run_id: 1}) == {run.run_id}
    assert await h.heartbeat(uow, "a", {run.run_id: 2}) == set()
    assert await h.heartbeat(uow, "b", {run.run_id: 1}) == set()


async def test_a_deleted_models_queued_runs_are_dropped_and_no_longer_served(uow) -> None:
    env = request()
    await h.record_request(uow, env)
    run = await h.claim_next(uow, "a", POLICY)
    await h.finish(uow, "a", run, 1, OK, POLICY)
    assert (await h.model_for_transcription(uow, "acme", str(env.model_id))).run_id == run.run_id
    with pytest.raises(ApiError) as other:
        await h.model_for_transcription(uow, "other", str(env.model_id))
    assert other.value.status == 409
    deleted = ev.wrap(ev.ModelDeleted(), tenant_id="acme", model_id=env.model_id)
    await h.model_deleted(uow, deleted)
    with pytest.raises(ApiError):
        await h.model_for_transcription(uow, "acme", str(env.model_id))
    assert (await h.model_for_transcription(uow, "acme", "base")).run_id is None


async def test_audio_over_the_duration_cap_is_refused_before_decoding(tmp_path) -> None:
    class NeverCalled:
        def transcribe(self, *args: object) -> None:
            raise AssertionError("decoded audio over the cap")

    with pytest.raises(ApiError) as refused:
        await h.transcribe(NeverCalled(), h.BASE, tmp_path / "a.wav", "long.wav", 60.0, lambda _: 61.0)
    assert refused.value.status == 413 and refused.value.code == "file_too_large"
    assert "60 s" in refused.value.message and "long.wav" in refused.value.message


async def test_a_model_store_outage_answers_503_with_its_code(tmp_path) -> None:
    class StoreAway:
        def transcribe(self, *args: object) -> None:
            raise ConnectionRefusedError("connect to http://minio.internal:9000 refused")

    model = h.ServedModel("m", uuid.uuid4(), {"lm": "s3://b/lm"})
    with pytest.raises(ApiError) as away:
        await h.transcribe(StoreAway(), model, tmp_path / "a.wav", "a.wav", 60.0, lambda _: 1.0)
    assert away.value.status == 503 and away.value.code == "storage_unavailable"
    assert "minio" not in away.value.message
