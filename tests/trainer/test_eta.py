"""The ETA estimator: predictions from the data size, refined by the pace of the stages so far."""

from __future__ import annotations

import itertools

import pytest

from voxtrain_trainer.eta import CALIBRATION, STAGES, Eta, Workload, reference_work

RANGES = {
    "prepare_text": (0.0, 8.0),
    "lexicon": (8.0, 15.0),
    "estimate_lm": (15.0, 30.0),
    "tune": (30.0, 45.0),
    "adapt": (45.0, 75.0),
    "evaluate": (75.0, 97.0),
    "report": (97.0, 100.0),
}
WORK = Workload(
    download_bytes=5_000_000,
    text_words=20_000,
    train_pairs=30,
    train_audio_seconds=120.0,
    test_pairs=15,
    test_audio_seconds=60.0,
)


def percent(stage: str, fraction: float) -> float:
    start, end = RANGES.get(stage, (0.0, 100.0))
    return start + (end - start) * fraction


def simulate(eta: Eta, pace: float, steps: int = 10) -> list[tuple[float, float | None, float]]:
    """Reports of a run that takes ``pace`` times the predicted time of each stage, evenly within each stage:
    (time, estimate, true time left)."""
    expected = CALIBRATION.expected(eta.workload)
    total = pace * sum(expected.values())
    now, out = 0.0, []
    for stage in STAGES:
        for i in range(steps + 1):
            t = now + pace * expected[stage] * i / steps
            out.append((t, eta.update(stage, percent(stage, i / steps), t), total - t))
        now += pace * expected[stage]
    return out


def test_predictions_grow_with_the_data_and_are_never_negative() -> None:
    small, big = CALIBRATION.expected(Workload(text_words=1000)), CALIBRATION.expected(WORK)
    assert set(small) == set(STAGES) and all(v >= 0 for v in small.values())
    assert sum(big.values()) > sum(small.values())
    assert small["tune"] == small["adapt"] == small["evaluate"] == 0.0  # no audio: nothing to decode
    some_audio = CALIBRATION.expected(Workload(text_words=20_000, train_pairs=12, train_audio_seconds=40.0))
    more_audio = CALIBRATION.expected(Workload(text_words=20_000, train_pairs=12, train_audio_seconds=80.0))
    assert more_audio["tune"] > some_audio["tune"] > 0 and more_audio["adapt"] > some_audio["adapt"] > 0
    assert CALIBRATION.expected(Workload(train_pairs=5, train_audio_seconds=20))["adapt"] == 0.0  # too few to adapt
    no_adapt = CALIBRATION.expected(Workload(train_pairs=12, train_audio_seconds=40.0, adapt_acoustic_model=False))
    assert no_adapt["adapt"] == 0.0


def test_at_the_predicted_pace_the_estimate_is_the_time_left_and_never_goes_up() -> None:
    reports = simulate(Eta(WORK, ranges=RANGES), pace=1.0)
    estimates = [e for _, e, _ in reports]
    assert all(e is not None and e >= 0 for e in estimates)
    assert all(b <= a for a, b in itertools.pairwise(estimates)), estimates  # type: ignore[operator]
    for _, e, truth in reports:
        assert e == pytest.approx(truth, abs=0.1)
    assert estimates[0] == pytest.approx(sum(CALIBRATION.expected(WORK).values()), abs=0.1)
    assert estimates[-1] == 0.0  # ~0 at 100 %


@pytest.mark.parametrize("pace", [0.3, 2.5, 6.0])
def test_at_another_steady_pace_the_estimate_converges_to_the_truth(pace: float) -> None:
    reports = simulate(Eta(WORK, ranges=RANGES), pace=pace)
    assert all(e is not None and e >= 0 for _, e, _ in reports)
    assert reports[-1][1] == 0.0
    total = reports[-1][0]
    late = [(e, truth) for t, e, truth in reports if t > 0.5 * total and truth > 0]
    assert late and all(abs(e - truth) <= 0.1 * truth + 0.2 for e, truth in late), late  # type: ignore[operator]
    first = reports[0][1]
    prior = sum(CALIBRATION.expected(WORK).values())
    assert first == pytest.approx(prior, abs=0.1)  # before any timing: the prediction from the data size
    # a slower run raises the estimate over the prior, a faster one lowers it, as soon as stages are timed
    mid = next(e for t, e, _ in reports if t >= 0.3 * total)
    assert (mid > prior - 0.3 * total) if pace > 1 else (mid < prior - 0.3 * total)  # type: ignore[operator]


def test_a_faster_pace_within_a_stage_lowers_the_estimate_and_a_slower_one_raises_it() -> None:
    expected = CALIBRATION.expected(WORK)
    fast, slow = Eta(WORK, ranges=RANGES), Eta(WORK, ranges=RANGES)
    for eta in (fast, slow):
        for stage in STAGES[:5]:
            eta.update(stage, percent(stage, 0.0), 0.0)  # earlier stages took no measurable time
    t = expected["tune"] / 2
    quick = fast.update("tune", percent("tune", 0.5), 0.2 * t)
    slowly = slow.update("tune", percent("tune", 0.5), 5 * t)
    assert quick is not None and slowly is not None
    on_time = sum(v for k, v in expected.items() if STAGES.index(k) > STAGES.index("tune")) + expected["tune"] / 2
    assert quick < on_time < slowly


@pytest.mark.parametrize("pace", [0.3, 4.0])
def test_a_machine_timed_at_its_true_speed_is_estimated_right_from_the_start(pace: float) -> None:
    reports = simulate(Eta(WORK, ranges=RANGES, prior_pace=pace), pace=pace)
    for _, e, truth in reports:
        assert e == pytest.approx(truth, abs=0.1)
    blind = simulate(Eta(WORK, ranges=RANGES), pace=pace)  # without the timing: off until stages are timed
    assert abs(blind[0][1] - blind[0][2]) > 0.25 * blind[0][2]  # type: ignore[operator]


def test_the_reference_work_is_fixed_work() -> None:
    assert reference_work(1000) == sum(i * i for i in range(1000))


def test_unknown_stages_give_no_estimate_and_skipped_stages_count_as_done() -> None:
    eta = Eta(Workload(text_words=1000), ranges=RANGES)
    assert eta.update("download", 0.0, 0.0) is not None
    assert eta.update("something-else", 10.0, 1.0) is None
    left = eta.update("report", 100.0, 1.0)
    assert left is not None and 0 < left <= CALIBRATION.expected(eta.workload)["store"] * eta.max_pace
    assert eta.update("store", 100.0, 1.5) == 0.0


def test_a_short_run_times_the_machine_once_a_long_one_three_times() -> None:
    from voxtrain_trainer.worker import pace_runs

    assert sum(CALIBRATION.expected(Workload(text_words=400)).values()) < 60
    assert pace_runs(Workload(text_words=400)) == 1
    assert sum(CALIBRATION.expected(WORK).values()) >= 60
    assert pace_runs(WORK) == 3
