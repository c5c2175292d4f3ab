"""What the validator accepts, the trainer can finish: a sweep over real encodings of every accepted type.

Each file of :mod:`tests.trainer.audio_corpus` (WAV sample formats and codecs, MP3 flavours and tags, M4A codecs
and layouts, FLAC depths and layouts, and files whose content is not what their name says) goes through the
validator's ``validate_audio``. An accepted file then goes through the trainer's own decoding: the whole file
(``load_pcm``, ``stream_pcm``), its length as pairing and scheduling read it (``duration_seconds``), a segment
cut by offsets as manifest lines and cues cut it, and ``store_pairs``, which turns pairs into what acoustic
adaptation trains on. Everything must give 16 kHz mono audio as long as the validator said, and the segment
must be the audio at those offsets. A refused file must be refused with ``invalid_audio_format`` and a message
that names what the file is and what to do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.trainer import audio_corpus as corpus
from voxtrain_shared.vocab import ErrorCode
from voxtrain_trainer.audio_probe import duration_seconds
from voxtrain_trainer.ml.acoustic.utterances import store_pairs
from voxtrain_trainer.ml.audio import SAMPLE_RATE, load_pcm, read_wav, stream_pcm
from voxtrain_trainer.ml.types import AudioPair
from voxtrain_validator.rules import Outcome, validate_audio

# Refused files: what the message must say (what the file is, and what to do).
REFUSED: dict[str, tuple[str, ...]] = {
    "w64_named.wav": ("Sony Wave64", "named .wav", "Convert it to WAV"),
    "aiff_named.wav": ("AIFF", "named .wav", "Convert it to WAV"),
    "adts_named.m4a": ("raw AAC (ADTS)", "named .m4a", "Convert it to M4A"),
    "ogg_flac_named.flac": ("Ogg", "named .flac", "Convert it to FLAC"),
    "free_format_80k.mp3": ("free format", "Encode it again", "lame --decode"),
}
# How far the trainer's lengths may differ from the validator's decoded length: the validator counts every decoded
# sample, the trainer drops what a player drops (Opus pre-skip); container probes include an AAC encoder's priming.
DECODED_TOLERANCE_S = 0.02
PROBED_TOLERANCE_S = 0.15
SEGMENT = (0.5, 0.8)  # offset, duration: seconds
LAG_SEARCH = SAMPLE_RATE // 5  # a misplaced segment is found up to 0.2 s off


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("audio-corpus")
    corpus.speech_wav(directory)
    return directory


def made(case: corpus.Case, directory: Path) -> Path:
    try:
        return corpus.make(case, corpus.speech_wav(directory), directory)
    except corpus.MissingEncoder as exc:
        pytest.skip(str(exc))


def validate(path: Path) -> Outcome:
    with path.open("rb") as stream:
        return validate_audio(stream, path.suffix)


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2").astype(np.float64)


def best_lag(segment: np.ndarray, whole: np.ndarray, at: int) -> tuple[int, float]:
    """Where ``segment`` best matches ``whole`` relative to sample ``at``, and how well (normalised correlation)."""
    lo = max(at - LAG_SEARCH, 0)
    window = whole[lo : at + segment.size + LAG_SEARCH]
    dots = np.correlate(window, segment, mode="valid")
    energy = np.concatenate(([0.0], np.cumsum(window**2)))
    norms = np.sqrt(energy[segment.size :] - energy[: -segment.size]) * np.linalg.norm(segment)
    scores = dots / np.where(norms > 0, norms, 1.0)
    best = int(np.argmax(scores))
    return lo + best - at, float(scores[best])


@pytest.mark.parametrize("case", corpus.CASES, ids=[c.name for c in corpus.CASES])
def test_what_is_accepted_trains_and_what_is_refused_says_why(
    case: corpus.Case, corpus_dir: Path, tmp_path: Path
) -> None:
    path = made(case, corpus_dir)
    outcome = validate(path)

    if case.name in REFUSED:
        assert not outcome.passed, f"{case.name} was accepted: {outcome.metadata}"
        assert outcome.code is ErrorCode.INVALID_AUDIO_FORMAT
        for words in REFUSED[case.name]:
            assert words in (outcome.message or ""), outcome.message
        return

    assert outcome.passed, f"{case.name} was refused: {outcome.message}"
    said = outcome.metadata["duration_seconds"]
    assert 3.0 < said < 3.7, said  # ~3.5 s of speech

    whole = load_pcm(path)
    assert len(whole) / 2 / SAMPLE_RATE == pytest.approx(said, abs=DECODED_TOLERANCE_S)
    assert np.abs(samples(whole)).max() > 0.05 * 32767, "the decoded audio is silent"
    streamed = b"".join(stream_pcm(path))
    assert len(streamed) / 2 / SAMPLE_RATE == pytest.approx(said, abs=DECODED_TOLERANCE_S)
    assert duration_seconds(path) == pytest.approx(said, abs=PROBED_TOLERANCE_S)

    offset, duration = SEGMENT
    segment = samples(load_pcm(path, offset, duration))
    assert segment.size == round(duration * SAMPLE_RATE)
    lag, match = best_lag(segment, samples(whole), round(offset * SAMPLE_RATE))
    assert lag == 0, f"the segment at {offset} s is {lag / SAMPLE_RATE * 1000:+.1f} ms off"
    assert match > 0.8, f"the segment at {offset} s is not the audio there (correlation {match:.2f})"
    head = round(0.05 * SAMPLE_RATE)  # decoding started cold (no preroll), an MP3's first frames are noise
    start = round(offset * SAMPLE_RATE)
    assert np.corrcoef(segment[:head], samples(whole)[start : start + head])[0, 1] > 0.8, "the segment starts garbled"

    pairs = [AudioPair(path, "the whole file"), AudioPair(path, "a cue", offset=offset, duration=duration)]
    stored, skipped = store_pairs(pairs, tmp_path / "utterances", strict=True)
    assert skipped == []
    assert [u.seconds for u in stored] == [pytest.approx(said, abs=DECODED_TOLERANCE_S), duration]
    # stored through one open recording (the whole file, then the cue): the audio of a fresh cut, though not always
    # bit for bit — decoding may start from another packet (AAC drops its encoder delay from the first packet read
    # after opening), so the resampler runs at another phase, and a stateful decoder (ADPCM) from another state
    through_one, fresh = samples(read_wav(stored[1].wav)), samples(load_pcm(path, offset, duration))
    settle = round(0.025 * SAMPLE_RATE)
    assert through_one.size == fresh.size
    assert np.corrcoef(through_one[settle:], fresh[settle:])[0, 1] > 0.99
