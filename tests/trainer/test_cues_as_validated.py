"""The trainer reads every subtitle file the validator accepts, and finds the cues the validator counted.

Both read through the same parsers (``voxtrain_shared.subtitles``); this holds them to it on the
validator's golden corpus (valid and hostile .vtt/.srt files made from a seeded generator).
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

from tests.validator.golden_corpus import transcript_cases
from voxtrain_trainer.ml.transcripts import read_cues, read_utterances
from voxtrain_validator.rules import validate_transcript


def test_every_accepted_subtitle_file_is_read_with_the_cues_and_duration_the_validator_reported(
    tmp_path: Path,
) -> None:
    accepted = refused = 0
    for name, ext, content in transcript_cases():
        if ext not in (".vtt", ".srt", "vtt", "srt"):
            continue
        outcome = validate_transcript(io.BytesIO(content), ext)
        path = tmp_path / f"case{ext if ext.startswith('.') else '.' + ext}"
        path.write_bytes(content)
        if not outcome.passed:
            refused += 1
            continue
        accepted += 1
        cues = list(read_cues(path))
        assert len(cues) == outcome.metadata["cues"], name
        assert round(max(c.end for c in cues), 3) == outcome.metadata["duration_seconds"], name
        assert all(a.start <= b.start for a, b in itertools.pairwise(cues)), name
        assert sum(1 for _ in read_utterances(path)) == sum(1 for c in cues if c.text), name
    assert accepted >= 10 and refused >= 10  # the corpus has both
