"""The fleet benchmark's judgement of what a status-topic consumer saw (bench/fleet/ledger.py)."""

import pytest

from bench.fleet.ledger import Seen, Track, judge, occupancy, percentile


def track(mid: str, sent: float | None, *moves: tuple[int, int, float], answer: int = 202) -> Track:
    t = Track(mid, "acme", train_sent=sent, train_answer=answer)
    t.events = [Seen(f"{mid}-{i}", old, new, at) for i, (old, new, at) in enumerate(moves)]
    return t


def test_a_clean_run_counts_trainings_and_latencies() -> None:
    tracks = [
        track("a", 100.0, (1, 2, 100.5), (2, 3, 102.0), (3, 4, 110.0)),
        track("b", 101.0, (1, 2, 101.5), (2, 3, 111.0), (3, 4, 130.0)),
        track("c", 101.0, (1, 2, 101.5), (2, 5, 105.0)),
    ]
    v = judge(tracks)
    assert (v.accepted, v.succeeded, v.failed) == (3, 2, 1)
    assert v.lost == v.stuck == v.duplicated == v.gapped == []
    assert v.train_to_running == [2.0, 10.0]
    assert v.running_to_done == [8.0, 19.0]
    assert v.wall_seconds == 30.0  # first Train sent (100) → last terminal status received (130)
    assert v.per_minute == 4.0  # 2 successes in 30 s


def test_lost_stuck_duplicated_and_gaps_name_their_models() -> None:
    tracks = [
        track("lost", 100.0),
        track("stuck", 100.0, (1, 2, 101.0), (2, 3, 102.0)),
        track("dup", 100.0, (1, 2, 101.0), (2, 3, 102.0), (2, 3, 102.1), (3, 4, 109.0)),
        track("gap", 100.0, (1, 2, 101.0), (3, 4, 109.0)),
        track("refused", 100.0, answer=409),  # its Train was never accepted: not lost
    ]
    v = judge(tracks)
    assert v.accepted == 4
    assert (v.lost, v.stuck, v.duplicated, v.gapped) == (["lost"], ["stuck"], ["dup"], ["gap"])
    assert v.succeeded == 2


def test_nearest_rank_percentile() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None


def test_occupancy_is_the_share_of_the_window_with_k_trainings_running() -> None:
    tracks = [
        track("a", 100.0, (2, 3, 100.0), (3, 4, 104.0)),  # runs 100–104
        track("b", 100.0, (2, 3, 102.0), (3, 4, 108.0)),  # runs 102–108
        track("c", 100.0, (2, 3, 109.0)),  # still running at the end of the window
        track("d", 100.0, (1, 2, 101.0)),  # never ran: counts nowhere
    ]
    shares = occupancy(tracks, 100.0, 110.0)
    assert shares == pytest.approx({0: 0.1, 1: 0.7, 2: 0.2})  # 0: 108–109; 1: 100–102, 104–108, 109–110; 2: 102–104
    assert occupancy(tracks, 110.0, 110.0) == {}
