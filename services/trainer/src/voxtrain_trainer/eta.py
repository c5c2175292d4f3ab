"""Estimated time left of a training run, from its data size and stage timings. Pure.

A run goes through :data:`STAGES` in order. Each stage's duration is predicted from the :class:`Workload`
(bytes to download, words of text, seconds and count of train and test audio pairs) with the constants of a
:class:`Calibration` measured on the reference machine, together with the time of a fixed piece of CPU work
(:func:`reference_work`). The worker times that same work when it starts: the ratio, ``prior_pace``, says how
fast the machine runs *now* (a busy machine gives a share of its cores). While the run goes, :class:`Eta`
refines that by the pace observed: ``pace = (seconds spent + prior) / (predicted seconds of the work done +
prior_seconds)`` with ``prior = prior_seconds × prior_pace``, where the work done counts the finished stages
and the done fraction of the current one. The estimate is ``pace × predicted seconds of the work left``
(pace clamped to ``[min_pace, max_pace]``).

Contract of :meth:`Eta.update`: never negative; 0 once the last stage reports its end; while the run keeps
the pace of ``prior_pace``, each estimate equals the time left and never goes up; at a steady pace of any
other factor it converges to the true time left; a stage name it does not know gives ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

STAGES: tuple[str, ...] = (
    "download",
    "gather",
    "prepare_text",
    "lexicon",
    "estimate_lm",
    "tune",
    "adapt",
    "evaluate",
    "report",
    "store",
)
WHOLE = (0.0, 100.0)


@dataclass(frozen=True)
class Workload:
    """How much a run has to do (what is known of it: bytes first, counted words and seconds later)."""

    download_bytes: int = 0
    text_words: int = 0
    train_pairs: int = 0
    train_audio_seconds: float = 0.0
    test_pairs: int = 0
    test_audio_seconds: float = 0.0
    adapt_acoustic_model: bool = True


REFERENCE_LOOPS = 1_000_000


def reference_work(loops: int = REFERENCE_LOOPS) -> int:
    """A fixed piece of pure-Python CPU work: timed with the calibration, and by each worker at its start."""
    total = 0
    for i in range(loops):
        total += i * i
    return total


@dataclass(frozen=True)
class Calibration:
    """Seconds per unit of work, measured on the reference machine while :func:`reference_work` took
    ``reference_seconds`` (bench/trainer/calibrate_eta.py measures both; see docs/architecture.md)."""

    reference_seconds: float = 0.173
    download_bytes_per_second: float = 50e6
    gather_seconds: float = 1.0
    gather_per_pair: float = 0.02
    prepare_per_word: float = 7e-6
    lexicon_seconds: float = 9.6  # learning the G2P mapping from CMUdict, once per worker process
    lexicon_per_word: float = 7e-6
    lm_seconds: float = 1.1
    lm_per_word: float = 4e-5
    lm_with_pairs_seconds: float = 0.35  # the tuning LM without the pairs' own text
    tune_per_decoded_second: float = 0.28
    tune_grid: int = 9  # lw × wip points
    tune_max_decodes: int = 180
    min_adaptation_pairs: int = 6
    adapt_seconds: float = 1.0
    adapt_per_audio_second: float = 0.25
    map_min_seconds: float = 30.0  # from this much adaptation audio on, MAP candidates run too
    map_factor: float = 1.5
    evaluate_seconds: float = 0.7
    evaluate_per_decoded_second: float = 0.5
    report_seconds: float = 0.1
    store_seconds: float = 1.0
    store_per_word: float = 3e-6

    def expected(self, w: Workload) -> dict[str, float]:
        """Predicted seconds of every stage of a run with workload ``w``."""
        pairs = w.train_pairs + w.test_pairs
        mean_train = w.train_audio_seconds / w.train_pairs if w.train_pairs else 0.0
        tune = self.tune_per_decoded_second * mean_train * min(self.tune_grid * w.train_pairs, self.tune_max_decodes)
        adapts = w.adapt_acoustic_model and w.train_pairs >= self.min_adaptation_pairs
        adapt_audio = 0.8 * w.train_audio_seconds  # about every 4th pair checks the adaptation instead
        adapt = 0.0
        if adapts:
            factor = self.map_factor if adapt_audio >= self.map_min_seconds else 1.0
            adapt = self.adapt_seconds + self.adapt_per_audio_second * w.train_audio_seconds * factor
        models = 3 if adapts else 2  # base, text only (and text + audio)
        evaluate = (
            self.evaluate_seconds + self.evaluate_per_decoded_second * w.test_audio_seconds * models
            if w.test_pairs
            else 0.0
        )
        return {
            "download": w.download_bytes / self.download_bytes_per_second,
            "gather": self.gather_seconds + self.gather_per_pair * pairs,
            "prepare_text": self.prepare_per_word * w.text_words,
            "lexicon": self.lexicon_seconds + self.lexicon_per_word * w.text_words,
            "estimate_lm": self.lm_seconds
            + self.lm_per_word * w.text_words
            + (self.lm_with_pairs_seconds if w.train_pairs else 0.0),
            "tune": tune,
            "adapt": adapt,
            "evaluate": evaluate,
            "report": self.report_seconds,
            "store": self.store_seconds + self.store_per_word * w.text_words,
        }


CALIBRATION = Calibration()


@dataclass
class Eta:
    """Follows one run's progress reports and estimates the seconds left (see module contract).

    ``workload`` may be replaced as the run learns more of it (counted words and seconds instead of bytes).

    ``ranges`` maps a stage to the overall percents it spans (its reports' percent is read within that
    span); stages not in it report 0–100 of their own. ``prior_pace``: how much slower than the calibration
    the machine runs now (the time of :func:`reference_work` ÷ ``calibration.reference_seconds``)."""

    workload: Workload
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    calibration: Calibration = CALIBRATION
    prior_pace: float = 1.0
    prior_seconds: float = 5.0
    min_pace: float = 0.2
    max_pace: float = 20.0
    _stage: int = -1
    _stage_started: float = 0.0
    _done_predicted: float = 0.0
    _done_observed: float = 0.0

    def fraction(self, stage: str, percent: float) -> float:
        """How much of ``stage`` is done, 0..1, from a report's percent."""
        start, end = self.ranges.get(stage, WHOLE)
        return 0.0 if end <= start else min(max((percent - start) / (end - start), 0.0), 1.0)

    def update(self, stage: str, percent: float, now: float) -> float | None:
        """Seconds left after a report of ``stage`` at ``percent`` at time ``now`` (monotonic seconds)."""
        if stage not in STAGES:
            return None
        index = STAGES.index(stage)
        expected = self.calibration.expected(self.workload)
        if index != self._stage:
            if self._stage >= 0:  # the previous stage ended: its time and prediction join the work done
                self._done_observed += now - self._stage_started
                self._done_predicted += sum(expected[s] for s in STAGES[self._stage : max(index, self._stage + 1)])
            self._stage, self._stage_started = index, now
        f = self.fraction(stage, percent)
        done = self._done_predicted + f * expected[stage]
        spent = self._done_observed + (now - self._stage_started)
        pace = (spent + self.prior_seconds * self.prior_pace) / (done + self.prior_seconds)
        pace = min(max(pace, self.min_pace), self.max_pace)
        left = (1.0 - f) * expected[stage] + sum(expected[s] for s in STAGES[index + 1 :])
        return round(max(0.0, pace * left), 1)
