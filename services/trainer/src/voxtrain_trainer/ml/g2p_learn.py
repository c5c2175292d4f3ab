"""G2P learned from the base dictionary: a joint-sequence (graphone) n-gram model, by Phonetisaurus.

Contract of :func:`trained_g2p`: from the base dictionary it holds out a fixed, seeded sample of
``HELDOUT_WORDS`` alphabetic words (every pronunciation of a held-out word leaves the training
data), trains a Phonetisaurus model on the rest — EM alignment of letters to phones (up to two
letters to up to two phones, letters may map to no phone), an order-``ORDER`` Kneser-Ney n-gram
over the aligned letter/phone tokens (MITLM), compiled into a WFST that is decoded for the best
paths — and measures on the held-out words the phone error rate (edits / reference phones,
against the word's closest dictionary pronunciation) and word error rate of the model's first
pronunciation, and of the espeak-ng table (:mod:`g2p`) on the same words. The model and that
report are cached on disk under a key of the dictionary's bytes and the training parameters, so a
base dictionary is trained and measured once, not once per run; concurrent processes train it once
(a file lock). The model that serves runs is the one measured: it never saw the held-out words.
When no model can be trained (the phonetisaurus wheel exists for Linux x86-64 only) the espeak-ng
table is used and reported as the method.

:meth:`TrainedG2P.pronounce` gives each word its best pronunciation, plus the second best as a
variant (``word(2)``) when the model gives it at least ``variant_ratio`` of the best one's
probability; words the model cannot spell out fall back to espeak-ng.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rapidfuzz.distance import Levenshtein

from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.g2p import CMU_PHONES, G2PUnavailable, espeak_pronunciations
from voxtrain_trainer.ml.lexicon import read_dictionary

Pron = tuple[str, ...]
Dictionary = Mapping[str, Sequence[Pron]]
Trainer = Callable[[Dictionary, Path, int], None]

METHOD = "phonetisaurus"
ORDER = 8  # graphone n-gram order (Phonetisaurus' default)
HELDOUT_WORDS = 2000
SEED = 13
VARIANT_RATIO = 0.5  # a second pronunciation when it is at least half as likely as the best (chosen a priori)
_VERSION = 1  # bump when training changes, so cached models are retrained
_RESERVED = frozenset("_|}")  # Phonetisaurus' own separators
_TIMEOUT = 3600


@dataclass(frozen=True)
class ErrorRates:
    """Phone and word error rates of pronunciations against a dictionary."""

    phone_error_rate: float
    word_error_rate: float
    words: int


def heldout_split(base: Dictionary, size: int = HELDOUT_WORDS, seed: int = SEED) -> tuple[Dictionary, Dictionary]:
    """(training part, held-out part) of ``base``: ``size`` alphabetic words drawn with ``seed``."""
    words = sorted(w for w in base if w.isalpha())
    held = set(random.Random(seed).sample(words, min(size, len(words))))
    train = {w: p for w, p in base.items() if w not in held}
    return train, {w: base[w] for w in sorted(held)}


def error_rates(hypotheses: Mapping[str, Sequence[Pron]], references: Dictionary) -> ErrorRates:
    """PER and WER of each word's first hypothesis against its closest reference (none: all phones wrong)."""
    edits = total = wrong = words = 0
    for word, refs in references.items():
        refs = [r for r in refs if r]
        if not refs:
            continue
        hyps = hypotheses.get(word)
        hyp: Pron = tuple(hyps[0]) if hyps else ()
        distance, ref = min((Levenshtein.distance(r, hyp), r) for r in refs)
        edits, total, wrong, words = edits + distance, total + len(ref), wrong + (distance > 0), words + 1
    return ErrorRates(edits / total if total else 0.0, wrong / words if words else 0.0, words)


def _usable(word: str) -> bool:
    return bool(word) and not (_RESERVED & set(word)) and not any(c.isspace() for c in word)


def _environment() -> dict[str, str]:
    """PATH and LD_LIBRARY_PATH of the binaries the phonetisaurus wheel ships."""
    try:
        import phonetisaurus  # optional: its wheel is built for Linux x86-64 only
    except ImportError as exc:
        raise G2PUnavailable("the phonetisaurus package is not installed (its wheel is for Linux x86-64 only)") from exc
    env: dict[str, str] = phonetisaurus.guess_environment()
    return env


def _run(command: Sequence[str], cwd: Path) -> None:
    try:
        subprocess.run(command, cwd=cwd, env=_environment(), check=True, capture_output=True, timeout=_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise G2PUnavailable(f"{command[0]} failed: {exc} {detail.decode(errors='replace')[-500:]}") from exc


def align(entries: Dictionary, work: Path) -> Path:
    """EM-align the letters and phones of ``entries`` in ``work``; the aligned corpus's path."""
    lines = [f"{w}\t{' '.join(p)}\n" for w, prons in entries.items() if _usable(w) for p in prons if p]
    (work / "lexicon.tsv").write_text("".join(lines), encoding="utf-8")
    _run(
        [
            "phonetisaurus-align",
            "--input=lexicon.tsv",
            "--ofile=model.corpus",
            "--seq1_del=false",  # every letter is read...
            "--seq2_del=true",  # ...though some as no phone (the silent e)
            "--seq1_max=2",
            "--seq2_max=2",
            "--grow=false",
        ],
        work,
    )
    return work / "model.corpus"


def letters_of(entries: Dictionary) -> frozenset[str]:
    """The letters of the words a model trained on ``entries`` can spell out."""
    return frozenset(c for w in entries if _usable(w) for c in w)


def read_alignment(corpus: Path) -> list[list[tuple[str, Pron]]]:
    """The aligned corpus as (letters, phones) chunks per entry; a silent chunk has no phones."""
    entries = []
    for line in corpus.read_text(encoding="utf-8").splitlines():
        chunks = []
        for token in line.split():
            letters, _, phones = token.partition("}")
            chunks.append((letters.replace("|", ""), tuple(p for p in phones.split("|") if p != "_")))
        entries.append(chunks)
    return entries


def train_phonetisaurus(entries: Dictionary, model: Path, order: int = ORDER) -> None:
    """Align ``entries``, estimate the graphone n-gram over the aligned chunks, write the WFST to ``model``."""
    with tempfile.TemporaryDirectory(prefix="g2p-train-") as tmp:
        work = Path(tmp)
        align(entries, work)
        _run(["estimate-ngram", "-o", str(order), "-t", "model.corpus", "-wl", "model.arpa"], work)
        _run(["phonetisaurus-arpa2wfst", "--lm=model.arpa", "--ofile=model.fst"], work)
        shutil.move(work / "model.fst", model)


def nbest(model: Path, words: Iterable[str], n: int) -> dict[str, list[tuple[float, Pron]]]:
    """Up to ``n`` (negative log probability, pronunciation) per word, best first; one decoder call."""
    unique = sorted({w for w in words if _usable(w)})
    if not unique:
        return {}
    with tempfile.TemporaryDirectory(prefix="g2p-apply-") as tmp:
        (Path(tmp) / "words.txt").write_text("".join(f"{w}\n" for w in unique), encoding="utf-8")
        try:
            result = subprocess.run(
                [
                    "phonetisaurus-g2pfst",
                    f"--model={model.resolve()}",
                    "--wordlist=words.txt",
                    f"--nbest={n}",
                    "--beam=500",
                ],
                cwd=tmp,
                env=_environment(),
                check=True,
                capture_output=True,
                text=True,
                timeout=_TIMEOUT,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise G2PUnavailable(f"phonetisaurus-g2pfst failed: {exc}") from exc
    out: dict[str, list[tuple[float, Pron]]] = {}
    for line in result.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) != 3:
            continue
        pron = tuple(fields[2].split())
        if pron and all(p in CMU_PHONES for p in pron):
            out.setdefault(fields[0], []).append((float(fields[1]), pron))
    return out


@dataclass(frozen=True)
class TrainedG2P:
    """A trained model on disk and the held-out report that measured it."""

    model: Path
    report: dict
    letters: frozenset[str]  # what the model was trained on: it skips any other letter, so such words go to espeak
    voice: str = "en-us"
    variant_ratio: float = VARIANT_RATIO

    def pronounce(self, words: Iterable[str]) -> dict[str, list[Pron]]:
        """Best pronunciation (+ a close second, see contract) per word; espeak-ng for the rest."""
        words = sorted(set(words))
        result: dict[str, list[Pron]] = {}
        spellable = [w for w in words if set(w) <= self.letters]
        for word, scored in nbest(self.model, spellable, 2 if self.variant_ratio > 0 else 1).items():
            (best, first), *rest = scored
            close = [p for s, p in rest if p != first and math.exp(best - s) >= self.variant_ratio]
            result[word] = [first, *close]
        missing = [w for w in words if w not in result]
        if missing:
            result.update(espeak_pronunciations(missing, self.voice))
        return result


def cache_key(dictionary: Path, order: int = ORDER, heldout: int = HELDOUT_WORDS, seed: int = SEED) -> str:
    """What a cached model depends on: the dictionary's bytes and the training parameters."""
    digest = hashlib.sha256(dictionary.read_bytes())
    digest.update(f"{METHOD}/{_VERSION}/{order}/{heldout}/{seed}".encode())
    return digest.hexdigest()[:20]


def default_cache_dir() -> Path:
    """Where trained G2P models are kept between runs (shared by the workers of a machine):
    ``VOXTRAIN_G2P_CACHE_DIR`` (the trainer image trains into it when it is built), else the temp directory."""
    configured = os.environ.get("VOXTRAIN_G2P_CACHE_DIR")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "voxtrain-g2p"


def _train_and_measure(base: Dictionary, target: Path, voice: str, order: int, heldout: int, train: Trainer) -> dict:
    training, held = heldout_split(base, heldout)
    started = time.monotonic()
    train(training, target / "model.fst", order)
    seconds = time.monotonic() - started
    letters = letters_of(training)
    model = TrainedG2P(target / "model.fst", {}, letters, voice)
    learned = error_rates(model.pronounce(held), held)
    espeak = error_rates(espeak_pronunciations(held, voice), held)
    return {
        "method": f"{METHOD} joint-sequence {order}-gram",
        "train_words": len(training),
        "heldout_words": learned.words,
        "phone_error_rate": round(learned.phone_error_rate, 4),
        "word_error_rate": round(learned.word_error_rate, 4),
        "phone_error_rate_espeak": round(espeak.phone_error_rate, 4),
        "word_error_rate_espeak": round(espeak.word_error_rate, 4),
        "train_seconds": round(seconds, 1),
        "letters": "".join(sorted(letters)),
    }


def _espeak_only(base: Dictionary, heldout: int, voice: str, reason: str) -> TrainedG2P:
    """The espeak-ng table with its held-out report, when no model is trained (not cached on disk)."""
    _, held = heldout_split(base, heldout)
    espeak = error_rates(espeak_pronunciations(held, voice), held)
    rates = {"phone_error_rate": round(espeak.phone_error_rate, 4), "word_error_rate": round(espeak.word_error_rate, 4)}
    report = {
        "method": f"espeak-ng table ({reason[:200]})",
        "heldout_words": espeak.words,
        **rates,
        **{f"{k}_espeak": v for k, v in rates.items()},
    }
    return TrainedG2P(Path(), report, frozenset(), voice)  # no letter is spellable: every word goes to espeak-ng


def trained_g2p(
    dictionary: Path,
    cache_dir: Path | None = None,
    voice: str = "en-us",
    order: int = ORDER,
    heldout: int = HELDOUT_WORDS,
    train: Trainer = train_phonetisaurus,
) -> TrainedG2P:
    """The model of ``dictionary`` from the cache, trained and measured first if absent (see contract)."""
    root = (cache_dir or default_cache_dir()) / cache_key(dictionary, order, heldout)
    report_path = root / "report.json"
    if not report_path.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        with (root.parent / f"{root.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be training the same model
            if not report_path.exists():
                partial = Path(tempfile.mkdtemp(prefix=f"{root.name}.", dir=root.parent))
                base = read_dictionary(dictionary)
                try:
                    report = _train_and_measure(base, partial, voice, order, heldout, train)
                    (partial / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
                    partial.chmod(0o755)  # mkdtemp makes it private; other users of the machine read it too
                    shutil.rmtree(root, ignore_errors=True)
                    partial.rename(root)
                except G2PUnavailable as exc:
                    return _espeak_only(base, heldout, voice, f"no trained model: {exc}")
                finally:
                    shutil.rmtree(partial, ignore_errors=True)
    report = json.loads(report_path.read_text(encoding="utf-8"))
    return TrainedG2P(root / "model.fst", {**report, "cached_model": root.name}, frozenset(report["letters"]), voice)


@lru_cache(maxsize=4)
def _cached(dictionary: str, voice: str, cache_dir: str | None, method: str) -> TrainedG2P:
    if method == "espeak":
        return _espeak_only(read_dictionary(Path(dictionary)), HELDOUT_WORDS, voice, "chosen by the g2p_method setting")
    return trained_g2p(Path(dictionary), Path(cache_dir) if cache_dir else None, voice)


def learned_g2p(
    dictionary: Path, voice: str = "en-us", cache_dir: Path | None = None, method: str = METHOD
) -> TrainedG2P:
    """:func:`trained_g2p` with the default parameters, looked up once per process; ``method="espeak"``: the
    espeak-ng table instead (the G2P before the trained model, kept to measure what the model changed)."""
    return _cached(str(dictionary), voice, str(cache_dir) if cache_dir else None, method)


def main() -> None:
    """Train (or find cached) the G2P of the shipped base dictionary: run at setup so runs and tests find it ready."""
    print(json.dumps(learned_g2p(base_model_files().dictionary).report))
