"""The files of a trained model directory and the decoder configuration they describe.

Contract: a model directory holds ``lm.arpa`` (portable), ``lm.bin`` (the same model in
PocketSphinx's binary format, what decoders load), ``lexicon.dict`` and ``decoder.json``
(``{"format": 1, "lm": "lm.bin", "lm_arpa": "lm.arpa", "dictionary": ..., "acoustic_model":
"pocketsphinx:en-us", "lw": ..., "wip": ..., "search": {PocketSphinx option: value}, "order": ...,
"sample_rate": 16000}``; a file without ``search`` decodes with PocketSphinx's default search), plus
``metrics.json`` and ``model_card.md`` for people. A directory without ``lm.bin`` still works
from ``lm.arpa``. :func:`decoder_config` turns a directory back into a
:class:`DecoderConfig`; ``None`` means the base model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from voxtrain_trainer.ml.audio import SAMPLE_RATE
from voxtrain_trainer.ml.base_model import base_model_files
from voxtrain_trainer.ml.decoder import AcousticFiles, DecoderConfig

LM_FILE = "lm.arpa"
LM_BIN_FILE = "lm.bin"
DICT_FILE = "lexicon.dict"
DECODER_FILE = "decoder.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "model_card.md"
FORMAT_VERSION = 1


def write_decoder_json(
    model_dir: Path,
    lw: float,
    wip: float,
    order: int,
    acoustic: AcousticFiles | None = None,
    adaptation: str | None = None,
    search: Mapping[str, int | float] | None = None,
) -> Path:
    """Write ``decoder.json`` for the LM, lexicon and adapted acoustic files in ``model_dir``."""
    path = model_dir / DECODER_FILE
    payload: dict[str, object] = {
        "format": FORMAT_VERSION,
        "lm": LM_BIN_FILE,
        "lm_arpa": LM_FILE,
        "dictionary": DICT_FILE,
        "acoustic_model": "pocketsphinx:en-us",
        "lw": lw,
        "wip": wip,
        "search": dict(search or {}),
        "order": order,
        "sample_rate": SAMPLE_RATE,
    }
    if acoustic is not None:
        payload["acoustic_model"] = f"pocketsphinx:en-us+{adaptation}"
        payload["acoustic_adaptation"] = adaptation
        payload["acoustic_files"] = {option: file.name for option, file in acoustic.items()}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def decoder_config(model_dir: Path | None) -> DecoderConfig:
    """The decoder configuration of a model directory, or of the base model for ``None``."""
    if model_dir is None:
        return DecoderConfig.base()
    path = Path(model_dir) / DECODER_FILE
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"{model_dir} is not a trained model: {DECODER_FILE} is missing") from exc
    if spec.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported model format {spec.get('format')!r}")
    lm = Path(model_dir) / spec["lm"]
    if not lm.exists() and spec.get("lm_arpa"):
        lm = Path(model_dir) / spec["lm_arpa"]
    acoustic = None
    if spec.get("acoustic_files"):
        files = {option: Path(model_dir) / name for option, name in spec["acoustic_files"].items()}
        missing = [f.name for f in files.values() if not f.exists()]
        if missing:
            raise ValueError(f"{model_dir}: adapted acoustic model files missing: {', '.join(missing)}")
        acoustic = AcousticFiles(**files)
    return DecoderConfig(
        lm=lm,
        dictionary=Path(model_dir) / spec["dictionary"],
        hmm=base_model_files().hmm,
        lw=float(spec["lw"]),
        wip=float(spec["wip"]),
        acoustic=acoustic,
        search=dict(spec.get("search") or {}),
    )
