"""What an exported model holds, for decoding with stock PocketSphinx outside voxtrain. Pure.

Contract of :func:`plan`: from a trained run's ``decoder.json`` (what the trainer's own transcription loads, see
``ml.model_files``), its artifacts (name -> ``s3://bucket/key``) and the file names of the base acoustic model
directory, the archive's files in order, each with where its bytes come from, and ``pocketsphinx.json``:

- ``lm.bin`` (and ``lm.arpa``), ``lexicon.dict``, ``metrics.json`` — the run's artifacts;
- ``acoustic-model/`` — a complete PocketSphinx acoustic model directory: every file of the base en-US model
  (``mdef``, ``means``, ``variances``, ``transition_matrices``, ``sendump``, ``feat.params``, ``noisedict``,
  ``README``…), with the run's MAP-adapted files in place of the base ones, plus ``mllr_matrix`` when an MLLR
  transform was adapted;
- ``pocketsphinx.json`` — ``{"files": {option: path relative to the archive root}, "options": {"lw", "wip" and
  decoder.json's search options}, "audio": …}``: ``pocketsphinx.Decoder(**files_resolved, **options)`` is the
  trainer's own decoder;
- ``MODEL_CARD.md`` (from :func:`model_card`) and ``SHA256SUMS`` (written by ``archive.tar_gz``).

A run whose ``decoder.json`` names a file that is not among its artifacts raises ``ValueError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .archive import MANIFEST

FORMAT = 1
ACOUSTIC_DIR = "acoustic-model"
SETTINGS_FILE = "pocketsphinx.json"
CARD_FILE = "MODEL_CARD.md"
MLLR_FILE = "mllr_matrix"
#: decoder option of an adapted file -> the base model's file it replaces
REPLACES = {"mean": "means", "var": "variances", "sendump": "sendump", "tmat": "transition_matrices"}
SAMPLE_RATE = 16000
MAX_UTTERANCE_SECONDS = 30.0  # ml.transcribe: longer audio is split at silences and decoded piece by piece


@dataclass(frozen=True)
class Artifact:
    uri: str  # s3://bucket/key


@dataclass(frozen=True)
class BaseFile:
    name: str  # a file of the base acoustic model directory


Source = Artifact | BaseFile


@dataclass(frozen=True)
class Plan:
    files: list[tuple[str, Source]]  # archive path (under the root) -> where its bytes come from
    settings: dict[str, Any]


def archive_root(model_id: object) -> str:
    return f"voxtrain-model-{model_id}"


def plan(decoder: Mapping[str, Any], artifacts: Mapping[str, str], base_acoustic: Iterable[str]) -> Plan:
    """The archive's files and decoder settings (see module contract)."""
    by_name = {uri.rsplit("/", 1)[-1]: uri for uri in artifacts.values()}

    def artifact(name: str) -> Artifact:
        if name not in by_name:
            raise ValueError(f"the trained model's file {name} is missing from its artifacts")
        return Artifact(by_name[name])

    lm = decoder["lm"] if decoder["lm"] in by_name else decoder.get("lm_arpa") or decoder["lm"]
    files: list[tuple[str, Source]] = [(lm, artifact(lm))]
    if decoder.get("lm_arpa") and decoder["lm_arpa"] != lm:
        files.append((decoder["lm_arpa"], artifact(decoder["lm_arpa"])))
    files.append((decoder["dictionary"], artifact(decoder["dictionary"])))
    if "metrics.json" in by_name:
        files.append(("metrics.json", artifact("metrics.json")))
    adapted: dict[str, str] = dict(decoder.get("acoustic_files") or {})
    unknown = set(adapted) - set(REPLACES) - {"mllr"}
    if unknown:
        raise ValueError(f"unknown adapted acoustic files: {', '.join(sorted(unknown))}")
    replaced = {REPLACES[option]: name for option, name in adapted.items() if option in REPLACES}
    for name in sorted(base_acoustic):
        source: Source = artifact(replaced[name]) if name in replaced else BaseFile(name)
        files.append((f"{ACOUSTIC_DIR}/{name}", source))
    paths = {"hmm": ACOUSTIC_DIR, "lm": lm, "dict": decoder["dictionary"]}
    if "mllr" in adapted:
        files.append((f"{ACOUSTIC_DIR}/{MLLR_FILE}", artifact(adapted["mllr"])))
        paths["mllr"] = f"{ACOUSTIC_DIR}/{MLLR_FILE}"
    settings = {
        "format": FORMAT,
        "files": paths,
        "options": {"lw": float(decoder["lw"]), "wip": float(decoder["wip"]), **(decoder.get("search") or {})},
        "acoustic_model": decoder.get("acoustic_model", "pocketsphinx:en-us"),
        "audio": {
            "sample_rate": SAMPLE_RATE,
            "channels": 1,
            "sample_format": "s16le",
            "max_utterance_seconds": MAX_UTTERANCE_SECONDS,
            "note": "voxtrain converts any input to 16 kHz mono 16-bit PCM and decodes audio longer than "
            "max_utterance_seconds in pieces split at silences",
        },
        "usage": 'pocketsphinx.Decoder(**{k: str(root / v) for k, v in s["files"].items()}, **s["options"])',
    }
    return Plan(files, settings)


def settings_json(p: Plan) -> bytes:
    return (json.dumps(p.settings, indent=2) + "\n").encode()


def _acoustic_line(settings: Mapping[str, Any]) -> str:
    adapted = str(settings.get("acoustic_model", "")).partition("+")[2]
    if not adapted:
        return "the base CMU Sphinx en-US acoustic model, unchanged (no acoustic adaptation was shipped)"
    return f"the base CMU Sphinx en-US acoustic model adapted to the training audio with {adapted}"


def model_card(
    model_id: object, run_id: object, trained_at: datetime | None, exported_at: datetime, p: Plan, training_card: str
) -> str:
    """``MODEL_CARD.md``: provenance, base model and licences, then the card written at training time
    (data used, metrics, settings)."""
    s = p.settings
    options = ", ".join(f"{k} {v:g}" for k, v in s["options"].items())
    lines = [
        f"# voxtrain model {model_id} (exported)",
        "",
        f"- Training run: {run_id}; trained {trained_at.isoformat() if trained_at else 'n/a'}; "
        f"exported {exported_at.isoformat()}.",
        f"- Acoustic model (`{ACOUSTIC_DIR}/`): {_acoustic_line(s)}.",
        f"- Language model `{s['files']['lm']}` and lexicon `{s['files']['dict']}`: trained on your data "
        "(lexicon: CMUdict pronunciations plus learned ones for new words).",
        f"- Decoder settings (`{SETTINGS_FILE}`): {options}; audio {s['audio']['sample_rate']} Hz mono 16-bit.",
        f"- Checksums: `{MANIFEST}` (`sha256sum -c {MANIFEST}` in this directory).",
        "",
        "## Licences",
        "",
        "The acoustic model and the CMUdict pronunciations come from CMU Sphinx (Carnegie Mellon University, "
        "Alpha Cephei Inc.) under a BSD-style licence: redistribution in source or binary form must keep their "
        f"copyright notice and disclaimer (see `{ACOUSTIC_DIR}/README`); they come without warranty. The language "
        "model and the new pronunciations were estimated from your data and are yours.",
        "",
        "---",
        "",
        training_card.strip(),
        "",
    ]
    return "\n".join(lines)
