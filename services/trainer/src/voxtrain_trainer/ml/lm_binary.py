"""Convert an ARPA model to PocketSphinx's binary format, which a decoder loads ~10x faster.

Contract: :func:`convert_to_binary` reads ``arpa_path`` with PocketSphinx's own n-gram code and
writes the same model as ``.lm.bin``; a decoder gives the same results with either file (the
ARPA file stays the portable artifact, the binary one is what decoders load).
"""

from __future__ import annotations

from pathlib import Path

import pocketsphinx


def convert_to_binary(arpa_path: Path, bin_path: Path) -> Path:
    """Write ``arpa_path`` as a PocketSphinx binary LM at ``bin_path``; return ``bin_path``."""
    model = pocketsphinx.NGramModel.readfile(str(arpa_path))
    model.write(str(bin_path), pocketsphinx.NGramModel.str_to_type("bin"))
    return bin_path
