"""Adapt the base acoustic model to a customer's audio and keep the adaptation only if it helps.

Contract of :func:`adapt_acoustic_model`:
- the ``train`` utterances whose every word has a pronunciation in ``lexicon`` form the
  adaptation corpus (the rest are reported as skipped); features are extracted as the base
  model's ``feat.params`` says, and ``bw`` collects statistics under the base model;
- candidates by amount of audio: MLLR (one global mean transform) always; MAP and MLLR-then-MAP
  only from ``map_min_seconds`` of adaptation audio on (MAP re-estimates every Gaussian and
  over-fits little audio);
- every candidate and the unadapted model decode the ``dev`` utterances (pairs held out from
  adaptation) with ``decoder`` (LM, dictionary, weights); the candidate with the lowest dev WER
  wins only if it is strictly lower than the unadapted model's, else nothing is shipped;
- the winner's files are copied into ``out_dir`` under :data:`ARTIFACT_NAMES` and returned as
  :class:`AcousticFiles` (``None`` when no adaptation is shipped), with a report of what ran.
Work files go to ``work_dir``, which the caller removes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from voxtrain_trainer.ml.acoustic.sphinxtrain import BaseAcousticModel, SphinxTools
from voxtrain_trainer.ml.acoustic.utterances import PcmSequence, StoredUtterance
from voxtrain_trainer.ml.audio import SAMPLE_RATE
from voxtrain_trainer.ml.decoder import AcousticFiles, DecoderConfig, SpeechDecoder
from voxtrain_trainer.ml.lexicon import write_dictionary
from voxtrain_trainer.ml.wer import word_error_rate

ARTIFACT_NAMES = {
    "mean": "am_means",
    "var": "am_variances",
    "sendump": "am_sendump",
    "tmat": "am_transition_matrices",
    "mllr": "am_mllr_matrix",
}
NONE = "none"


@dataclass
class AdaptationReport:
    """What adaptation did: method shipped, on how much audio, and every candidate's dev WER."""

    method: str = NONE
    reason: str = ""
    utterances: int = 0
    seconds: float = 0.0
    dev_utterances: int = 0
    dev_seconds: float = 0.0
    candidates: list[str] = field(default_factory=list)
    dev_wer: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready view."""
        return {
            "method": self.method,
            "reason": self.reason,
            "utterances": self.utterances,
            "seconds": round(self.seconds, 1),
            "dev_utterances": self.dev_utterances,
            "dev_seconds": round(self.dev_seconds, 1),
            "candidates": self.candidates,
            "dev_wer": self.dev_wer,
            "skipped": self.skipped[:50],
            "skipped_count": len(self.skipped),
        }


def _write_corpus(
    train: Sequence[StoredUtterance],
    lexicon: Mapping[str, list[tuple[str, ...]]],
    corpus: Path,
    report: AdaptationReport,
) -> int:
    """fileids, transcription, dictionary and WAV links for the usable utterances; their count."""
    corpus.mkdir(parents=True, exist_ok=True)
    ids: list[str] = []
    lines: list[str] = []
    words: set[str] = set()
    for utt in train:
        tokens = utt.text.split()
        unknown = [w for w in tokens if w not in lexicon]
        if not tokens or unknown:
            report.skipped.append(f"{utt.label}: no pronunciation for {', '.join(unknown[:3]) or 'an empty text'}")
            continue
        fileid = f"a{len(ids):05d}"
        (corpus / f"{fileid}.wav").symlink_to(utt.wav.resolve())
        ids.append(fileid)
        lines.append(f"<s> {utt.text} </s> ({fileid})")
        words.update(tokens)
        report.utterances += 1
        report.seconds += utt.seconds
    (corpus / "fileids").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    (corpus / "transcription").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    write_dictionary({w: lexicon[w] for w in words}, corpus / "dictionary")
    return len(ids)


def _dev_wer(decoder: DecoderConfig, dev: Sequence[StoredUtterance], acoustic: AcousticFiles | None) -> float:
    speech = SpeechDecoder(decoder.with_acoustic(acoustic))
    audio = PcmSequence(dev)
    hyps = [speech.decode(pcm).text for _, pcm, _ in audio]
    return word_error_rate([u.text for u in dev], hyps).wer


def _candidates(
    tools: SphinxTools, base: BaseAcousticModel, corpus: Path, work: Path, with_map: bool
) -> dict[str, AcousticFiles]:
    dictionary = corpus / "dictionary"
    tools.accumulate(base, base.hmm / "means", corpus, dictionary, work / "acc-base")
    mllr = tools.solve_mllr(base, work / "acc-base", work / "mllr_matrix")
    out = {"mllr": AcousticFiles(mllr=mllr)}
    if with_map:
        files = tools.map_adapt(base, base.hmm / "means", work / "acc-base", work / "map")
        out["map"] = AcousticFiles(mean=files["mean"], var=files["var"], sendump=files["sendump"], tmat=files["tmat"])
        shifted = tools.transform_means(base, mllr, work / "mllr_means")
        tools.accumulate(base, shifted, corpus, dictionary, work / "acc-mllr")
        files = tools.map_adapt(base, shifted, work / "acc-mllr", work / "mllr-map")
        out["mllr+map"] = AcousticFiles(
            mean=files["mean"], var=files["var"], sendump=files["sendump"], tmat=files["tmat"]
        )
    return out


def _ship(files: AcousticFiles, out_dir: Path) -> AcousticFiles:
    copied: dict[str, Path] = {}
    for option, path in files.items():
        target = out_dir / ARTIFACT_NAMES[option]
        shutil.copyfile(path, target)
        copied[option] = target
    return AcousticFiles(**copied)


def adapt_acoustic_model(
    train: Sequence[StoredUtterance],
    dev: Sequence[StoredUtterance],
    lexicon: Mapping[str, list[tuple[str, ...]]],
    decoder: DecoderConfig,
    work_dir: Path,
    out_dir: Path,
    map_min_seconds: float,
    progress: Callable[[float], None] = lambda fraction: None,
) -> tuple[AcousticFiles | None, AdaptationReport]:
    """Adapt, compare on ``dev``, ship the winner if it beats the unadapted model (see module contract)."""
    report = AdaptationReport(dev_utterances=len(dev), dev_seconds=sum(u.seconds for u in dev))
    tools = SphinxTools(work_dir / "logs")
    corpus = work_dir / "corpus"
    if _write_corpus(train, lexicon, corpus, report) == 0:
        report.reason = "no adaptation utterance has a pronunciation for every word"
        return None, report
    base = tools.prepare_base(decoder.hmm, work_dir / "mixture_weights", work_dir / "mdef.txt")
    tools.features(base, corpus / "fileids", corpus, SAMPLE_RATE)
    progress(0.3)
    with_map = report.seconds >= map_min_seconds
    candidates = _candidates(tools, base, corpus, work_dir, with_map)
    report.candidates = [NONE, *candidates]
    progress(0.5)
    report.dev_wer[NONE] = _dev_wer(decoder, dev, None)
    for i, (name, files) in enumerate(candidates.items()):
        report.dev_wer[name] = _dev_wer(decoder, dev, files)
        progress(0.5 + 0.5 * (i + 1) / len(candidates))
    best = min(candidates, key=lambda name: (report.dev_wer[name], len(name)))
    amount = f"{report.utterances} utterances ({report.seconds:.0f} s)"
    map_note = "" if with_map else f"; MAP needs at least {map_min_seconds:.0f} s, so only MLLR was tried"
    if report.dev_wer[best] >= report.dev_wer[NONE]:
        report.reason = (
            f"no adaptation beat the unadapted model on {len(dev)} held-out pairs{map_note}; the base acoustic "
            "model is kept"
        )
        return None, report
    report.method = best
    report.reason = f"{best} on {amount} had the lowest WER on {len(dev)} held-out pairs{map_note}"
    return _ship(candidates[best], out_dir), report
