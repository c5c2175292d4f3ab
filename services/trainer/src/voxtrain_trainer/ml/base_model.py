"""Where the base (shipped) PocketSphinx en-US model lives.

Contract: :func:`base_model_files` returns existing paths of the acoustic model directory, the
binary LM and the CMU dictionary that the ``pocketsphinx`` package ships; it raises
``FileNotFoundError`` naming the missing file otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pocketsphinx


@dataclass(frozen=True)
class BaseModelFiles:
    """The shipped en-US model: acoustic model dir, LM and dictionary."""

    hmm: Path
    lm: Path
    dictionary: Path


@lru_cache(maxsize=1)
def base_model_files() -> BaseModelFiles:
    """Paths of the model the pocketsphinx package ships (see module contract)."""
    root = Path(pocketsphinx.get_model_path()) / "en-us"
    files = BaseModelFiles(hmm=root / "en-us", lm=root / "en-us.lm.bin", dictionary=root / "cmudict-en-us.dict")
    for path in (files.hmm, files.lm, files.dictionary):
        if not path.exists():
            raise FileNotFoundError(f"pocketsphinx base model file missing: {path}")
    return files
