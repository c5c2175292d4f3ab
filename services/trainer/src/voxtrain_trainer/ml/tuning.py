"""Tune the decoder's language weight and word insertion penalty on audio+transcript pairs.

Contract of :func:`tune_weights`: decodes at most ``max_decodes`` utterances in total (the pairs
are subsampled evenly and deterministically to fit the grid), and returns the grid point with
the lowest WER; ties go to the point closest to PocketSphinx's defaults, which are always tried.
"""

from __future__ import annotations

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
) -> TuningResult:
    """Grid-search ``lw`` x ``wip`` on ``(label, pcm, reference)`` utterances (see module contract)."""
    points = sorted({(float(lw), float(wip)) for lw in [*lw_grid, DEFAULT_LW] for wip in [*wip_grid, DEFAULT_WIP]})
    per_point = max(max_decodes // len(points), 1)
    if per_point * len(points) > max_decodes:
        # budget smaller than the grid: keep the points nearest the defaults
        points = sorted(points, key=lambda p: (abs(p[0] - DEFAULT_LW), abs(p[1] - DEFAULT_WIP)))[:max_decodes]
    chosen = _evenly(list(utterances), per_point)
    grid: list[dict] = []
    decodes = 0
    for i, (lw, wip) in enumerate(points):
        decoder = SpeechDecoder(config.with_weights(lw, wip))
        hyps = [decoder.decode(pcm).text for _, pcm, _ in chosen]
        decodes += len(chosen)
        result = word_error_rate([ref for _, _, ref in chosen], hyps)
        grid.append({"lw": lw, "wip": wip, "wer": result.wer})
        progress((i + 1) / len(points))
    best = min(grid, key=lambda g: (round(g["wer"], 9), abs(g["lw"] - DEFAULT_LW), abs(g["wip"] - DEFAULT_WIP)))
    return TuningResult(best["lw"], best["wip"], best["wer"], grid, len(chosen), decodes)
