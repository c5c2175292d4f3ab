"""Which decoder weights tuning picks: the one-standard-error rule of ml/tuning.py."""

from __future__ import annotations

import pytest

from voxtrain_trainer.ml import TrainingSettings
from voxtrain_trainer.ml.tuning import DEFAULT_LW, DEFAULT_WIP, choose_point, standard_error


def point(lw: float, wip: float, errors: int, words: int) -> dict:
    return {"lw": lw, "wip": wip, "wer": errors / words}


def test_one_word_better_on_a_few_dozen_words_keeps_the_defaults() -> None:
    # the medical bench's adapted-model tuning: 7 pairs, 46 words; lw 12 / wip 0.2 one word better than the defaults
    grid = [point(DEFAULT_LW, DEFAULT_WIP, 8, 46), point(12.0, 0.2, 7, 46), point(9.0, 2.0, 12, 46)]
    chosen, tolerance = choose_point(grid, 46, 1.0)
    assert (chosen["lw"], chosen["wip"]) == (DEFAULT_LW, DEFAULT_WIP)
    assert tolerance == pytest.approx(standard_error(7 / 46, 46)) and 1 / 46 < tolerance < 3 / 46


def test_without_tolerance_the_lowest_wer_wins() -> None:
    grid = [point(DEFAULT_LW, DEFAULT_WIP, 8, 46), point(12.0, 0.2, 7, 46)]
    chosen, tolerance = choose_point(grid, 46, 0.0)
    assert (chosen["lw"], chosen["wip"], tolerance) == (12.0, 0.2, 0.0)


def test_a_clear_gain_on_many_words_moves_away_from_the_defaults() -> None:
    # 4,000 words: 600 vs 520 errors is far more than one standard error (about 21 errors)
    grid = [point(DEFAULT_LW, DEFAULT_WIP, 600, 4000), point(9.0, 0.65, 520, 4000), point(12.0, 0.2, 515, 4000)]
    chosen, _ = choose_point(grid, 4000, 1.0)
    assert (chosen["lw"], chosen["wip"]) == (9.0, 0.65)  # within the tolerance of 12 / 0.2, and nearer the defaults


def test_ties_go_to_the_point_nearest_the_defaults() -> None:
    grid = [
        point(12.0, 0.2, 5, 50),
        point(9.0, 2.0, 5, 50),
        point(DEFAULT_LW, 2.0, 5, 50),
        point(DEFAULT_LW, 0.2, 9, 50),
    ]
    chosen, _ = choose_point(grid, 50, 0.0)
    assert (chosen["lw"], chosen["wip"]) == (DEFAULT_LW, 2.0)


def test_the_standard_error_of_a_wer() -> None:
    assert standard_error(0.5, 100) == pytest.approx(0.05)
    assert standard_error(0.0, 100) == 0.0 and standard_error(0.3, 0) == 0.0
    assert standard_error(1.4, 10) == 0.0  # a WER over 1 (insertions) has no binomial spread: no tolerance


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tuning_tolerance_se"):
        TrainingSettings(tuning_tolerance_se=-1.0)
