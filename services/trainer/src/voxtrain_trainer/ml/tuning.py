"""Tune the decoder's language weight and word insertion penalty on audio+transcript pairs.

Contract of :func:`tune_weights`: decodes at most ``max_decodes`` utterances in total (the pairs
are subsampled evenly and deterministically to fit the grid), and returns, of the grid points whose
WER is within ``tolerance_se`` standard errors of the lowest (the binomial standard error of the
lowest WER over the words decoded), the one closest to PocketSphinx's defaults, which are always
tried. With ``tolerance_se`` 0 that is the lowest WER, ties going to the point nearest the defaults.

The tolerance is the "one standard error" rule: on a few dozen words, a point one word better than
the defaults is as likely luck as a better setting, and far-off weights chosen that way cost held-out
audio dearly (bench/trainer/ACOUSTIC_RESULTS.md: medical text + audio 0.147 -> 0.265 WER from lw 12 /
wip 0.2 picked on 7 pairs, 46 words, by one word).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from voxtrain_trainer.ml.decoder import DecoderConfig, SpeechDecoder
from voxtrain_trainer.ml.wer import word_error_rate

DEFAULT_LW = 6.5
DEFAULT_WIP = 0.65


@dataclass(frozen=True)
class TuningResult:
    """The chosen weights and every grid point's WER."""

    lw: float
    wip: float
    wer: float
    grid: list[dict]
    utterances: int
    decodes: int
    words: int = 0  # reference words of the decoded utterances
    tolerance: float = 0.0  # WER above the lowest still counted as good as it (tolerance_se standard errors)

    def to_dict(self) -> dict:
        """JSON-ready view."""
        return asdict(self)


def _evenly(items: Sequence, k: int) -> list:
    """``k`` items spread evenly over ``items`` (read one by one: ``items`` may be lazy)."""
    if k >= len(items):
        return [items[i] for i in range(len(items))]
    step = len(items) / k
    return [items[int(i * step)] for i in range(k)]


def tune_weights(
    config: DecoderConfig,
    utterances: Sequence[tuple[str, bytes, str]],
    lw_grid: Sequence[float],
    wip_grid: Sequence[float],
    max_decodes: int,
    progress: Callable[[float], None] = lambda fraction: None,
    tolerance_se: float = 1.0,
) -> TuningResult:
    """Grid-search ``lw`` x ``wip`` on ``(label, pcm, reference)`` utterances (see module contract)."""
    points = sorted({(float(lw), float(wip)) for lw in [*lw_grid, DEFAULT_LW] for wip in [*wip_grid, DEFAULT_WIP]})
    per_point = max(max_decodes // len(points), 1)
    if per_point * len(points) > max_decodes:
        # budget smaller than the grid: keep the points nearest the defaults
        points = sorted(points, key=lambda p: (abs(p[0] - DEFAULT_LW), abs(p[1] - DEFAULT_WIP)))[:max_decodes]
    chosen = _evenly(list(utterances), per_point)
    grid: list[dict] = []
    decodes = words = 0
    for i, (lw, wip) in enumerate(points):
        decoder = SpeechDecoder(config.with_weights(lw, wip))
        hyps = [decoder.decode(pcm).text for _, pcm, _ in chosen]
        decodes += len(chosen)
        result = word_error_rate([ref for _, _, ref in chosen], hyps)
        words = result.reference_words
        grid.append({"lw": lw, "wip": wip, "wer": result.wer})
        progress((i + 1) / len(points))
    best, tolerance = choose_point(grid, words, tolerance_se)
    return TuningResult(best["lw"], best["wip"], best["wer"], grid, len(chosen), decodes, words, round(tolerance, 4))


def choose_point(grid: Sequence[dict], words: int, tolerance_se: float) -> tuple[dict, float]:
    """The grid point (``lw``, ``wip``, ``wer``) the module contract picks, and the WER tolerance it allowed."""
    lowest = min(g["wer"] for g in grid)
    tolerance = tolerance_se * standard_error(lowest, words)
    good = [g for g in grid if round(g["wer"] - lowest, 9) <= round(tolerance, 9)]
    return min(good, key=lambda g: (abs(g["lw"] - DEFAULT_LW), abs(g["wip"] - DEFAULT_WIP), g["wer"])), tolerance


def standard_error(wer: float, words: int) -> float:
    """Binomial standard error of a word error rate measured on ``words`` words (0 without words)."""
    return math.sqrt(max(wer, 0.0) * max(1.0 - wer, 0.0) / words) if words else 0.0
