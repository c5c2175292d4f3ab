"""The training run's state machine, attempts and fencing, on the pure domain code."""

import uuid

import pytest

from voxtrain_shared import events as ev
from voxtrain_trainer.domain import (
    NO_HEARTBEAT,
    Answer,
    Decision,
    RetryPolicy,
    Run,
    RunStatus,
    answer_request,
    redact,
    worker_died,
)

POLICY = RetryPolicy(max_attempts=3, backoff_seconds=5, backoff_max_seconds=12)


def requested() -> Run:
    env = ev.wrap(
        ev.TrainingRequested(run_id=uuid.uuid4(), language="en-US", datasets=[]),
        tenant_id="acme",
        model_id=uuid.uuid4(),
    )
    return Run.requested(env)


def test_a_run_is_queued_started_and_succeeds_with_one_started_and_one_succeeded_event() -> None:
    run = requested()
    assert run.status is RunStatus.QUEUED and run.attempt == 0
    run.start("a", POLICY)
    assert (run.status, run.owner, run.attempt) == (RunStatus.RUNNING, "a", 1)
    assert run.progress("a", 1, "estimate_lm", 40.04, POLICY)
    assert run.succeed("a", 1, {"wer": 0.1}, {"lm": "s3://b/k"})
    types = [type(m) for m in run.events]
    assert types == [ev.TrainingStarted, ev.TrainingProgress, ev.TrainingSucceeded]
    progress = run.events[1]
    assert isinstance(progress, ev.TrainingProgress)
    assert progress.percent == 40.0 and progress.message == "attempt 1 of 3"
    assert (progress.attempt, progress.max_attempts) == (1, 3)
    assert run.status is RunStatus.SUCCEEDED and run.terminal_event() == run.events[-1]


def test_progress_carries_the_estimated_time_left_and_is_stored_in_the_same_shape() -> None:
    run = requested()
    run.start("a", POLICY)
    assert run.progress("a", 1, "tune", 33.3, POLICY, eta_seconds=87.06)
    assert run.progress("a", 1, "tune", 34.0, POLICY, eta_seconds=-0.2)  # never negative
    first, second = run.events[1:]
    assert isinstance(first, ev.TrainingProgress) and isinstance(second, ev.TrainingProgress)
    assert (first.eta_seconds, second.eta_seconds) == (87.1, 0.0)
    assert run.progress_view(POLICY) == {
        "stage": "tune",
        "percent": 34.0,
        "message": "attempt 1 of 3",
        "eta_seconds": 0.0,
        "attempt": 1,
        "max_attempts": 3,
    }
    assert run.progress("a", 1, "store", 50.0, POLICY)
    last = run.events[-1]
    assert isinstance(last, ev.TrainingProgress) and last.eta_seconds is None  # no estimate: none is made up


def test_only_a_queued_run_starts_and_only_a_running_one_is_lost() -> None:
    run = requested()
    with pytest.raises(ValueError):
        run.lose(NO_HEARTBEAT, POLICY)
    run.start("a", POLICY)
    with pytest.raises(ValueError):
        run.start("b", POLICY)


def test_a_lost_worker_is_retried_with_doubling_backoff_then_fails_with_worker_lost() -> None:
    run = requested()
    delays = []
    for attempt in (1, 2):
        run.start("a", POLICY)
        assert run.attempt == attempt
        assert run.lose(worker_died(-9, "estimate_lm"), POLICY) is Decision.RETRY
        assert run.status is RunStatus.QUEUED and run.owner is None
        delays.append(run.retry_after)
    assert delays == [5, 10]
    run.start("b", POLICY)
    restarted = run.events[-1]
    assert isinstance(restarted, ev.TrainingProgress) and restarted.message.startswith("attempt 3 of 3")
    assert (restarted.attempt, restarted.max_attempts) == (3, 3)
    assert [type(m) for m in run.events].count(ev.TrainingStarted) == 1  # later attempts show as progress
    assert run.lose(worker_died(-9, "estimate_lm"), POLICY) is Decision.FAILED
    failed = run.events[-1]
    assert isinstance(failed, ev.TrainingFailed)
    assert failed.error.code == "worker_lost" and failed.error.stage == "estimate_lm"
    assert "exit code -9" in failed.error.message and "tried 3 times" in failed.error.message
    assert failed.error.message[0].isupper()


def test_backoff_is_capped() -> None:
    assert [POLICY.delay(n) for n in (1, 2, 3, 4)] == [5, 10, 12, 12]


def test_a_stale_workers_reports_change_nothing() -> None:
    run = requested()
    run.start("a", POLICY)
    run.lose(NO_HEARTBEAT, POLICY)
    run.start("b", POLICY)  # attempt 2 on another replica
    run.events.clear()
    assert not run.progress("a", 1, "store", 50, POLICY)
    assert not run.succeed("a", 1, {}, {"lm": "s3://b/old"})
    assert not run.fail("a", 1, "stage_failed", "x", None)
    assert not run.succeed("b", 1, {}, {})  # right replica, wrong attempt
    assert run.events == [] and run.status is RunStatus.RUNNING and run.artifacts is None
    assert run.succeed("b", 2, {}, {"lm": "s3://b/new"})


def test_a_repeated_request_is_answered_by_the_runs_state() -> None:
    assert answer_request(None) is Answer.QUEUE
    run = requested()
    assert answer_request(run) is Answer.NOTHING
    run.start("a", POLICY)
    assert answer_request(run) is Answer.NOTHING
    run.fail("a", 1, "no_training_text", "No text.", "gather")
    assert answer_request(run) is Answer.REPUBLISH
    again = run.terminal_event()
    assert isinstance(again, ev.TrainingFailed) and again.error.code == "no_training_text"
    with pytest.raises(ValueError):
        requested().terminal_event()


def test_storage_urls_never_reach_a_message() -> None:
    assert redact("GET http://minio.internal:9000/voxtrain/x?sig=1 failed; s3://b/k too") == (
        "GET <storage> failed; <storage> too"
    )
