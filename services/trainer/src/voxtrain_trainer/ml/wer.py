"""Word error rate over many utterances, with the shared normaliser applied to both sides.

Contract: :func:`word_error_rate` aligns each reference with its hypothesis (jiwer) after
:func:`normalize_text`, sums substitutions, deletions and insertions over all utterances, and
returns ``wer = (S + D + I) / reference words``. Utterances whose normalised reference is empty
are skipped and counted in ``skipped``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import jiwer

from voxtrain_trainer.ml.normalize import normalize_text


@dataclass(frozen=True)
class WerResult:
    """Corpus-level WER and its parts."""

    wer: float
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    reference_words: int
    utterances: int
    skipped: int = 0

    def to_dict(self) -> dict:
        """JSON-ready view."""
        return asdict(self)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> WerResult:
    """WER of ``hypotheses`` against ``references`` (same length; see module contract)."""
    if len(references) != len(hypotheses):
        raise ValueError("references and hypotheses differ in length")
    refs: list[str] = []
    hyps: list[str] = []
    for ref, hyp in zip(references, hypotheses, strict=True):
        ref_n = normalize_text(ref)
        if ref_n:
            refs.append(ref_n)
            hyps.append(normalize_text(hyp))
    skipped = len(references) - len(refs)
    if not refs:
        return WerResult(0.0, 0, 0, 0, 0, 0, 0, skipped)
    out = jiwer.process_words(refs, hyps)
    n_ref = out.substitutions + out.deletions + out.hits
    wer = (out.substitutions + out.deletions + out.insertions) / n_ref
    return WerResult(wer, out.substitutions, out.deletions, out.insertions, out.hits, n_ref, len(refs), skipped)
